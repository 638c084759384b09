//! TLS across processes: `ferry serve` with a self-signed certificate or a
//! CA-signed one (and mutual TLS), a real endpoint dialling `https://`, and
//! clients that trust the wrong roots or speak plaintext to it.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use ferry_client::{Client, ClientError, ClientTls};
use ferry_testkit::guest_bytes;
use pi_estimate as estimate;

fn https(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// The admin token that a loopback `ferry serve` saved for `url`.
fn saved_token(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = ferry_proto::credentials::read(&config_dir().join("credentials"), url) {
            return t;
        }
        assert!(Instant::now() < deadline, "no token was saved for {url}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a file the service writes at start (its self-signed
/// certificate).
fn wait_for(path: &Path) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(b) = std::fs::read(path)
            && !b.is_empty()
        {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects once the service answers a call and `endpoint` (if any) has a
/// session.
async fn ready(url: &str, token: &str, tls: &ClientTls, endpoint: Option<&str>) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(c) = Client::connect_with(url, Some(token), tls).await
            && let Ok(s) = c.status().await
            && endpoint.is_none_or(|n| s.endpoints.iter().any(|e| e.name == n && e.sessions > 0))
        {
            return c;
        }
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ferry ARGS` against `url`, with the environment's TLS settings cleared.
fn ferry_at(url: &str, token: &str, args: &[&str]) -> std::process::Output {
    command()
        .args(args)
        .env("FERRY_SERVICE", url)
        .env("FERRY_TOKEN", token)
        .env_remove(ferry_proto::tls::CA_ENV)
        .env_remove(ferry_proto::tls::CLIENT_CERT_ENV)
        .env_remove(ferry_proto::tls::CLIENT_KEY_ENV)
        .output()
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_over_tls_trusts_the_self_signed_certificate_passed_with_ca() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut service = Proc(
        ferry(&[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
            "--self-signed",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap(),
    );
    // The banner names the certificate by the SHA-256 fingerprint of the
    // file it made.
    let mut banner = String::new();
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(service.0.stdout.take().unwrap()));
    while !banner.contains("SHA-256") {
        banner = lines.next().expect("the banner ended").unwrap();
    }
    let cert_path = data.join("tls/self-signed.pem");
    let cert = wait_for(&cert_path);
    let print = ferry_proto::tls::fingerprint(&cert).unwrap();
    assert!(banner.contains(&print), "{banner} lacks {print}");
    assert_eq!(print.len(), 32 * 3 - 1, "{print}");
    let url = https(port);
    let token = saved_token(&url);

    // A real endpoint dials https:// and trusts the certificate by --ca.
    let cache = dir.path().join("cache");
    let _endpoint = Proc(
        ferry(&[
            "endpoint",
            "start",
            "--service",
            &url,
            "--ca",
            cert_path.to_str().unwrap(),
            "--name",
            "local",
            "--concurrency",
            "2",
            "--gpu",
            "none",
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
        .spawn()
        .unwrap(),
    );
    let tls = ClientTls::system().with_ca_pem(&cert);
    let client = ready(&url, &token, &tls, Some("local")).await;
    let pi = client.register(&guest_bytes("pi")).await.unwrap();
    let task = client
        .submit::<_, f64>("local", &pi.id, "pi", &(20_000u64, 11u64))
        .await
        .unwrap();
    assert_eq!(task.await.unwrap(), estimate::pi(20_000, 11));

    // The CLI, with --ca: it works. Without it, the system roots do not
    // know the certificate, and the error says what to pass.
    let ca = cert_path.to_str().unwrap();
    let out = ferry_at(&url, &token, &["--ca", ca, "whoami"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("admin"), "{}", text(&out));
    let out = ferry_at(&url, &token, &["whoami"]);
    assert!(
        !out.status.success(),
        "an untrusted certificate was accepted"
    );
    assert!(
        text(&out).contains("not trusted") && text(&out).contains("--ca"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_told_that_the_service_speaks_tls_and_the_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let _service = serve_with(&data, port, &["--self-signed"]);
    let cert = wait_for(&data.join("tls/self-signed.pem"));
    let token = saved_token(&https(port));
    ready(
        &https(port),
        &token,
        &ClientTls::system().with_ca_pem(&cert),
        None,
    )
    .await;

    // http:// to a TLS port: the service answers that it speaks TLS.
    let plain = format!("http://127.0.0.1:{port}");
    let out = ferry_at(&plain, &token, &["status"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("speaks TLS only") && text(&out).contains("https://"),
        "{}",
        text(&out)
    );
    let client = Client::connect_with(&plain, Some(&token), &ClientTls::system())
        .await
        .unwrap();
    match client.status().await {
        Err(ClientError::Service { code, message }) => {
            assert_eq!(code, tonic::Code::Unavailable);
            assert!(message.contains("https://"), "{message}");
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }

    // https:// to a plaintext service: the client says it is not TLS.
    let plain_port = free_port();
    let _plain = serve(&dir.path().join("plain"), plain_port);
    let plain_token = saved_token(&format!("http://127.0.0.1:{plain_port}"));
    let out = ferry_at(&https(plain_port), &plain_token, &["status"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not answer TLS"), "{}", text(&out));
}

/// A CA, a service certificate for 127.0.0.1 and a client certificate, all
/// signed by it, written as PEM files under `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
    let (client_cert, client_key) = leaf(vec!["client".into()]);
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", &ca.pem()),
        cert: write("service.pem", &cert),
        key: write("service.key", &key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate_signed_by_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let port = free_port();
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let _service = serve_with(
        &dir.path().join("data"),
        port,
        &[
            "--tls-cert",
            &path(&pki.cert),
            "--tls-key",
            &path(&pki.key),
            "--client-ca",
            &path(&pki.ca),
        ],
    );
    let url = https(port);
    let token = saved_token(&url);
    let ca = std::fs::read(&pki.ca).unwrap();
    let with_cert = ClientTls::system().with_ca_pem(&ca).with_identity_pem(
        std::fs::read(&pki.client_cert).unwrap(),
        std::fs::read(&pki.client_key).unwrap(),
    );
    let me = ready(&url, &token, &with_cert, None)
        .await
        .whoami()
        .await
        .unwrap();
    assert!(me.admin);

    // The same token, the right CA, no client certificate: refused in the
    // handshake, before any call.
    let without = ClientTls::system().with_ca_pem(&ca);
    let refused = match Client::connect_with(&url, Some(&token), &without).await {
        Err(e) => e.to_string(),
        Ok(c) => match c.whoami().await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a client without a certificate was served"),
        },
    };
    assert!(
        refused.to_ascii_lowercase().contains("certificate"),
        "{refused}"
    );

    // The CLI, with the certificate and with the CA from the environment.
    let out = command()
        .args([
            "--client-cert",
            &path(&pki.client_cert),
            "--client-key",
            &path(&pki.client_key),
            "whoami",
        ])
        .env("FERRY_SERVICE", &url)
        .env("FERRY_TOKEN", &token)
        .env(ferry_proto::tls::CA_ENV, &pki.ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn plaintext_beyond_loopback_is_refused_without_insecure() {
    let dir = tempfile::tempdir().unwrap();
    for command_name in ["up", "serve"] {
        let data = dir.path().join(command_name);
        let out = command()
            .args([
                command_name,
                "--listen",
                "0.0.0.0:0",
                "--data-dir",
                data.to_str().unwrap(),
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "`ferry {command_name}` started");
        let said = text(&out);
        assert!(
            said.contains("will not serve plaintext on 0.0.0.0:0")
                && said.contains("--insecure")
                && said.contains("--self-signed"),
            "{said}"
        );
        // Refused before anything was made.
        assert!(!data.exists(), "{command_name} made {}", data.display());
    }
    // A certificate file that is not one is named.
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let out = command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().join("bogus-data").to_str().unwrap(),
            "--tls-cert",
            bogus.to_str().unwrap(),
            "--tls-key",
            bogus.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("holds no PEM certificate"),
        "{}",
        text(&out)
    );
}
