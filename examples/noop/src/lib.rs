//! Does nothing, for measuring what the fabric itself costs.

wit_bindgen::generate!({ path: "wit", world: "noop" });

struct Noop;

impl Guest for Noop {
    fn noop() {}
}

export!(Noop);
