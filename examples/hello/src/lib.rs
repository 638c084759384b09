//! The smallest useful ferry function.

wit_bindgen::generate!({ path: "wit", world: "hello" });

struct Hello;

impl Guest for Hello {
    fn greet(name: String) -> String {
        ferry_guest::log::emit(
            ferry_guest::log::Level::Info,
            "greeting",
            &[("name", &name)],
        );
        format!("Hello, {name}!")
    }
}

export!(Hello);
