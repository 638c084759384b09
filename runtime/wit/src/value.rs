//! A component value without a runtime: what the codec reads and writes,
//! and what a runtime lowers into a call.

/// One value of a [`WitType`](crate::WitType). The cases and their names
/// follow the component model's value kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    S8(i8),
    U8(u8),
    S16(i16),
    U16(u16),
    S32(i32),
    U32(u32),
    S64(i64),
    U64(u64),
    Float32(f32),
    Float64(f64),
    Char(char),
    String(String),
    /// A `list<u8>`, a byte each: every `list<u8>` is held so (never as a
    /// `List` of `U8`s), since a value per element would take 32 times the
    /// bytes.
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Record(Vec<(String, Value)>),
    Tuple(Vec<Value>),
    Variant(String, Option<Box<Value>>),
    Enum(String),
    Option(Option<Box<Value>>),
    Result(Result<Option<Box<Value>>, Option<Box<Value>>>),
    Flags(Vec<String>),
}
