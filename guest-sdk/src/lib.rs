//! Safe wrappers over the `ferry:host` imports for functions that run on ferry.
//!
//! A function crate declares its own exports with `wit_bindgen::generate!` and
//! calls into the endpoint through this crate. The two sets of bindings carry
//! their own component-type sections, which the component linker merges, so a
//! function never has to repeat ferry's WIT.
//!
//! ```ignore
//! ferry_guest::log::info("loaded model");
//! ferry_guest::log::progress(3, 10, "batches");
//! ```

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "ferry:host/guest",
    });
}

/// Structured logging and progress, collected per task by the endpoint.
pub mod log {
    use crate::bindings::ferry::host::log as host;
    pub use crate::bindings::ferry::host::log::Level;

    /// Emits one line at `level` with `key = value` fields.
    pub fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        host::emit(level, message, &fields);
    }

    /// Emits a debug line.
    pub fn debug(message: &str) {
        emit(Level::Debug, message, &[]);
    }

    /// Emits an info line.
    pub fn info(message: &str) {
        emit(Level::Info, message, &[]);
    }

    /// Emits a warning.
    pub fn warn(message: &str) {
        emit(Level::Warn, message, &[]);
    }

    /// Emits an error line (the task still decides whether it fails).
    pub fn error(message: &str) {
        emit(Level::Error, message, &[]);
    }

    /// Reports `done` units of work out of `total`.
    pub fn progress(done: u64, total: u64, message: &str) {
        host::progress(done, total, message);
    }
}
