//! A service and a local endpoint in one process, on loopback: what `ferry
//! up` runs, and what the benchmarks measure against.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_client::{Client, ClientTls};
use ferry_endpoint::EndpointConfig;
use ferry_service::{Service, ServiceConfig};

/// A service and a local endpoint in this process.
pub struct Fabric {
    pub url: String,
    /// The admin's token: the first start's, kept in the data directory.
    pub token: String,
    /// Whether this start made the first admin (and so the token).
    pub first_start: bool,
    /// How a client of this process trusts the service (its local
    /// endpoint's own settings).
    pub tls: ClientTls,
    /// The credential of the `local` endpoint, for more sessions of it (a
    /// second endpoint serving the same queue).
    pub endpoint_credential: String,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Fabric {
    pub async fn start(
        dir: &Path,
        listen: SocketAddr,
        concurrency: Option<u32>,
    ) -> anyhow::Result<Fabric> {
        Fabric::start_with(ServiceConfig::new(dir), listen, concurrency, None).await
    }

    /// Starts with `config`. When it serves TLS, the local endpoint dials
    /// `https://` and trusts `endpoint_tls`, else the served certificate
    /// itself (a self-signed one).
    pub async fn start_with(
        config: ServiceConfig,
        listen: SocketAddr,
        concurrency: Option<u32>,
        endpoint_tls: Option<ClientTls>,
    ) -> anyhow::Result<Fabric> {
        let dir = config.data_dir.clone();
        let served_tls = config.tls.as_ref().map(|t| t.cert_pem.clone());
        let service = Service::open(config)?;
        let made = service.bootstrap()?;
        let first_start = made.is_some();
        let token = match made {
            Some(t) => t,
            None => admin_token(&dir)?,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let (url, tls) = match &served_tls {
            Some(cert) => (
                format!("https://{addr}"),
                endpoint_tls.unwrap_or_else(|| ClientTls::system().with_ca_pem(cert)),
            ),
            None => (format!("http://{addr}"), ClientTls::system()),
        };
        let mut endpoint = EndpointConfig::new("local", url.clone());
        endpoint.tls = tls.clone();
        let endpoint_credential = service.own_endpoint("local")?;
        endpoint.credential = Some(endpoint_credential.clone());
        endpoint.cache_dir = Some(dir.join("endpoint-cache"));
        // Same machine: the endpoint reads the service's blobs in place.
        endpoint.shared_blob_store = Some(dir.join("blobs"));
        // A synthetic camera, so that camera functions run anywhere.
        endpoint.cameras.push(ferry_endpoint::CameraConfig {
            open: ferry_host::OpenAt::FirstUse,
            ..ferry_endpoint::CameraConfig::from_spec("pattern=test-pattern:1280x720@30")?
        });
        if let Some(c) = concurrency {
            endpoint.concurrency = c.max(1);
        }
        let (stop, rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            tokio::select! {
                _ = rx.wait_for(|s| *s) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        let tasks = vec![
            tokio::spawn(service.serve(listener, stopped(rx.clone()))),
            tokio::spawn(ferry_endpoint::run(endpoint, stopped(rx))),
        ];
        Ok(Fabric {
            url,
            token,
            first_start,
            tls,
            endpoint_credential,
            stop,
            tasks,
        })
    }

    /// Runs until ctrl-c (or [`Fabric::stop`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        for t in self.tasks {
            t.await??;
        }
        Ok(())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }
}

/// The admin token a service's first start left in its data directory.
pub fn admin_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(ferry_service::ADMIN_TOKEN_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the admin token {} (made on the service's first start)",
            path.display()
        )
    })?;
    Ok(text.trim().to_owned())
}

/// Connects with `token` once the service answers and its `local` endpoint
/// is online.
pub async fn connect_when_ready(url: &str, token: &str, tls: &ClientTls) -> anyhow::Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = Client::connect_with(url, Some(token), tls).await
            && let Ok(s) = c.status().await
            && s.endpoints.iter().any(|e| e.name == "local" && e.online)
        {
            return Ok(c);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the fabric at {url} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
