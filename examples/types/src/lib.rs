//! Exports every WIT value type so the host's conversions can be tested.

wit_bindgen::generate!({ path: "wit", world: "types-test" });

use exports::ferry_examples::types::types::{Color, Everything, Guest, Permissions, Point, Shape};

struct Types;

impl Guest for Types {
    fn echo_bool(v: bool) -> bool {
        v
    }
    #[allow(clippy::too_many_arguments)]
    fn echo_ints(
        a: i8,
        b: u8,
        c: i16,
        d: u16,
        e: i32,
        f: u32,
        g: i64,
        h: u64,
    ) -> (i8, u8, i16, u16, i32, u32, i64, u64) {
        (a, b, c, d, e, f, g, h)
    }
    fn echo_floats(a: f32, b: f64) -> (f32, f64) {
        (a, b)
    }
    fn echo_char(c: char) -> char {
        c
    }
    fn echo_string(s: String) -> String {
        s
    }
    fn echo_bytes(b: Vec<u8>) -> Vec<u8> {
        b
    }
    fn fill(n: u32, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i.wrapping_mul(31) as u8) ^ seed).collect()
    }
    fn echo_point(p: Point) -> Point {
        p
    }
    fn echo_shape(s: Shape) -> Shape {
        s
    }
    fn echo_color(c: Color) -> Color {
        c
    }
    fn echo_option(o: Option<String>) -> Option<String> {
        o
    }
    fn echo_result(r: Result<u32, String>) -> Result<u32, String> {
        r
    }
    fn echo_flags(p: Permissions) -> Permissions {
        p
    }
    fn echo_everything(e: Everything) -> Everything {
        e
    }
    fn sum(values: Vec<u32>) -> u64 {
        values.iter().map(|&v| u64::from(v)).sum()
    }
    fn area(s: Shape) -> f64 {
        match s {
            Shape::Circle(r) => std::f64::consts::PI * r * r,
            Shape::Rectangle(p) => f64::from(p.x) * f64::from(p.y),
            Shape::Empty => 0.0,
        }
    }
    fn check(fail: bool) -> Result<(), String> {
        if fail {
            Err("asked to fail".into())
        } else {
            Ok(())
        }
    }
    fn nothing() {}
}

export!(Types);
