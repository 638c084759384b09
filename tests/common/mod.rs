//! Real processes for the end-to-end tests: `ferry serve` and `ferry
//! endpoint start` on loopback, killed when dropped.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_client::Client;

/// A child process killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn kill9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

/// Where this test process's `ferry` children keep their credentials (each
/// loopback `ferry serve` saves its admin token there), apart from the
/// user's own.
pub fn config_dir() -> &'static Path {
    static DIR: std::sync::LazyLock<std::path::PathBuf> = std::sync::LazyLock::new(|| {
        let d =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    &DIR
}

/// `ferry`, with this test process's credentials and no token from the
/// environment.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.env("FERRY_CONFIG_DIR", config_dir())
        .env_remove("FERRY_TOKEN");
    c
}

/// The token the service on `port` saved for itself.
pub fn token(port: u16) -> Option<String> {
    ferry_proto::credentials::read(
        &config_dir().join("credentials"),
        &format!("http://127.0.0.1:{port}"),
    )
}

/// A client of the service on `port`, with its admin token.
pub async fn client(port: u16) -> Result<Client, ferry_client::ClientError> {
    Client::connect_as(format!("http://127.0.0.1:{port}"), token(port).as_deref()).await
}

/// A raw connection to the service on `port`, with its admin token.
pub async fn channel(port: u16) -> ferry_proto::auth::Conn {
    let channel = ferry_proto::dial(&format!("http://127.0.0.1:{port}"), &Default::default())
        .unwrap()
        .connect()
        .await
        .unwrap();
    ferry_proto::auth::conn(channel, token(port).as_deref()).unwrap()
}

/// A `ferry` child. Its log goes to `$FERRY_TEST_LOGS/<n>-<command>.log`
/// when that is set (with `RUST_LOG` as given), and nowhere otherwise.
pub fn ferry(args: &[&str]) -> Command {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut c = command();
    c.args(args).stdin(Stdio::null()).stdout(Stdio::null());
    let log = std::env::var_os("FERRY_TEST_LOGS").and_then(|dir| {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(
            "{}-{n}-{}.log",
            std::process::id(),
            args.first().unwrap_or(&"ferry")
        );
        std::fs::File::create(Path::new(&dir).join(name)).ok()
    });
    match log {
        Some(f) => c.stderr(f),
        None => c.stderr(Stdio::null()),
    };
    c
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn serve(data: &Path, port: u16) -> Proc {
    serve_with(data, port, &[])
}

pub fn serve_with(data: &Path, port: u16, extra: &[&str]) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &listen,
    ];
    args.extend_from_slice(extra);
    Proc(ferry(&args).spawn().unwrap())
}

pub fn endpoint(port: u16, name: &str, cache: &Path, concurrency: u32) -> Proc {
    endpoint_with(port, name, cache, concurrency, &["--gpu", "none"])
}

pub fn endpoint_with(
    port: u16,
    name: &str,
    cache: &Path,
    concurrency: u32,
    extra: &[&str],
) -> Proc {
    let url = format!("http://127.0.0.1:{port}");
    let concurrency = concurrency.to_string();
    let mut args = vec![
        "endpoint",
        "start",
        "--service",
        &url,
        "--name",
        name,
        "--concurrency",
        &concurrency,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Proc(ferry(&args).spawn().unwrap())
}

/// Connects once the service answers, and once `sessions` agents of
/// `endpoint` are online.
pub async fn ready(port: u16, endpoint: &str, sessions: u32) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(c) = client(port).await
            && let Ok(s) = c.status().await
            && s.endpoints
                .iter()
                .any(|e| e.name == endpoint && e.sessions >= sessions)
        {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "fabric on port {port} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn count(client: &Client, state: ferry_client::State) -> u64 {
    let s = client.status().await.unwrap();
    s.tasks
        .iter()
        .find(|c| c.state == state as i32)
        .map_or(0, |c| c.count)
}
