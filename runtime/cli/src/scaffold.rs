//! `ferry new NAME`: a function crate that builds both ways out of the box.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct NewArgs {
    /// Crate and WIT package name: lowercase letters, digits and `-`.
    name: String,
    /// Directory to create (default: `./NAME`).
    #[arg(long)]
    path: Option<PathBuf>,
    /// The ferry guest SDK (`guest-sdk/` of a ferry checkout) to depend on.
    #[arg(long, env = "FERRY_GUEST_SDK")]
    sdk: Option<PathBuf>,
}

/// The SDK of the checkout this binary was built from, if it is still there.
fn default_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk");
    sdk.join("wit")
        .is_dir()
        .then(|| sdk.canonicalize().unwrap_or(sdk))
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.split('-').all(|part| {
        part.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if !ok {
        bail!(
            "`{name}` is not a valid function name: use lowercase words of letters and digits \
             joined by `-`, each starting with a letter (e.g. `demo-fn`)"
        );
    }
    Ok(())
}

pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("`{}` already exists and is not empty", dir.display());
    }
    let sdk = match args.sdk.clone().or_else(default_sdk) {
        Some(sdk) if sdk.join("wit").is_dir() => sdk.canonicalize().unwrap_or(sdk),
        Some(sdk) => bail!(
            "`{}` is not the ferry guest SDK (no `wit/` inside)",
            sdk.display()
        ),
        None => bail!("cannot find the ferry guest SDK; pass --sdk PATH/TO/ferry/guest-sdk"),
    };
    let files = render(&args.name, &sdk);
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let wasm = args.name.replace('-', "_");
    println!("created function `{}` in {}", args.name, dir.display());
    println!();
    println!("  cd {}", dir.display());
    println!("  cargo component build --release");
    println!("  ferry run target/wasm32-wasip1/release/{wasm}.wasm greet '\"world\"'");
    println!();
    println!("or, without cargo-component:");
    println!("  cargo build --release --target wasm32-wasip2");
    println!("  ferry run target/wasm32-wasip2/release/{wasm}.wasm greet '\"world\"'");
    Ok(ExitCode::SUCCESS)
}

fn render(name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
ferry-guest = {{ path = "{sdk}" }}
wit-bindgen = {{ version = "0.61", default-features = false, features = ["macros", "realloc"] }}

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = "debuginfo"

# A function crate is its own workspace, wherever it is created.
[workspace]
"#,
        sdk = sdk.display().to_string().replace('\\', "/"),
    );
    let wit = format!(
        r#"package local:{name};

world {name} {{
    /// Replace with your function's own typed exports.
    export greet: func(name: string) -> string;
}}
"#
    );
    let lib = format!(
        r#"//! A ferry function. Its exports are declared in `wit/world.wit`.

wit_bindgen::generate!({{ path: "wit", world: "{name}" }});

struct Function;

impl Guest for Function {{
    fn greet(name: String) -> String {{
        ferry_guest::log::info("greeting");
        format!("Hello, {{name}}!")
    }}
}}

export!(Function);
"#
    );
    vec![
        ("Cargo.toml", cargo),
        ("wit/world.wit", wit),
        ("src/lib.rs", lib),
        (
            ".gitignore",
            "/target\n# Written by `cargo component build`; unused: exports come from wit_bindgen::generate!\n/src/bindings.rs\n".to_owned(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_wit_identifiers() {
        assert!(check_name("demo-fn").is_ok());
        assert!(check_name("kmeans2").is_ok());
        for bad in ["Demo", "demo_fn", "2fast", "-x", "a--b", ""] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("not a valid function name"), "{bad}: {err}");
        }
    }
}
