#![allow(dead_code)]

use std::sync::Arc;

use ferry_host::{CallOptions, Error, Function, Host, HostConfig, Limits, Outcome};

pub fn host() -> Host {
    Host::new(HostConfig::default()).expect("host")
}

pub fn load(host: &Host, guest: &str) -> Arc<Function> {
    host.load(&ferry_testkit::guest_bytes(guest))
        .expect("load guest")
}

/// Calls `export` with JSON-text arguments; returns the JSON result.
pub async fn call_json(
    host: &Host,
    f: &Function,
    export: &str,
    args: &[&str],
    limits: &Limits,
) -> Result<(serde_json::Value, Outcome), Error> {
    let export = f.export(export)?;
    let vals = export.args_from_json_strs(args)?;
    let out = host
        .call(f, export, &vals, limits, &CallOptions::default())
        .await?;
    Ok((export.result_to_json(out.result.as_ref())?, out))
}
