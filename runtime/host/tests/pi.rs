mod common;

use common::*;
use ferry_host::Limits;

#[tokio::test]
async fn pi_is_accurate_and_deterministic() {
    let host = host();
    let f = load(&host, "pi");
    let (a, _) = call_json(&host, &f, "pi", &["1000000", "42"], &Limits::default())
        .await
        .unwrap();
    let (b, _) = call_json(&host, &f, "pi", &["1000000", "42"], &Limits::default())
        .await
        .unwrap();
    let (c, _) = call_json(&host, &f, "pi", &["1000000", "43"], &Limits::default())
        .await
        .unwrap();
    let a = a.as_f64().unwrap();
    assert!((a - std::f64::consts::PI).abs() <= 0.01, "pi(10^6) = {a}");
    assert_eq!(a, b.as_f64().unwrap(), "same seed, same answer");
    assert_ne!(a, c.as_f64().unwrap(), "another seed, another sample");
}
