//! The `env` capability end to end: a guest sees the variables granted to
//! its function, and no others, not even the host's own.

mod common;

use common::{host, load};
use ferry_host::{CallOptions, EnvVar, Lent, Limits, Scope};

#[tokio::test]
async fn a_guest_sees_only_the_variables_granted_to_its_function() {
    let host = host();
    let f = load(&host, "files-probe");
    let id = f.id().to_hex();
    let export = f.export("env-var").unwrap();
    let options = CallOptions {
        env: vec![
            Lent::to_all(EnvVar::new("MODE", "fast").unwrap()),
            Lent::to(
                EnvVar::new("TOKEN", "for-this-one").unwrap(),
                Scope::functions([id.as_str()]),
            ),
            Lent::to(
                EnvVar::new("OTHER", "for-another").unwrap(),
                Scope::functions(["0".repeat(64)]),
            ),
        ],
        ..CallOptions::default()
    };
    let get = |name: &str| {
        let vals = export
            .args_from_json_strs(&[&serde_json::Value::from(name).to_string()])
            .unwrap();
        let (host, f, options) = (host.clone(), f.clone(), options.clone());
        async move {
            let out = host
                .call(&f, export, &vals, &Limits::default(), &options)
                .await
                .unwrap();
            export.result_to_json(out.result.as_ref()).unwrap()
        }
    };
    assert_eq!(get("MODE").await, "fast");
    assert_eq!(get("TOKEN").await, "for-this-one");
    assert!(get("OTHER").await.is_null(), "granted to another function");
    assert!(std::env::var_os("PATH").is_some());
    assert!(get("PATH").await.is_null(), "the host's own environment");
    // The advertisement names the variables and their scopes, never values.
    let offers = format!("{:?}", host.advertise(&options));
    assert!(
        offers.contains("TOKEN") && !offers.contains("for-this-one"),
        "{offers}"
    );
}
