//! Cold starts: the first call of a component no endpoint has seen (fetch,
//! compile, run), and the first call after an endpoint restarts with its
//! compiled cache warm (start, dial, handshake, load from the cache, run).

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_client::{Client, ClientTls};
use ferry_endpoint::EndpointConfig;

use crate::report::{Figure, Report};

/// Submit to result of `runs` components new to every endpoint: `noop` with
/// a custom section no run has used, so that each has an id of its own.
pub(crate) async fn first_call(
    client: &Client,
    endpoint: &str,
    noop: &[u8],
    runs: u32,
    report: &mut Report,
) -> anyhow::Result<()> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let mut times = Vec::with_capacity(runs as usize);
    for run in 0..runs {
        let bytes = crate::service::padded(noop, noop.len() + 64, stamp.wrapping_add(run));
        let f = client.register(&bytes).await?;
        let start = Instant::now();
        client
            .submit::<_, ()>(endpoint, &f.id, "noop", &())
            .await?
            .await?;
        times.push(start.elapsed());
    }
    report.check(
        "cold start",
        format!("{runs} components new to `{endpoint}` ran"),
        true,
    );
    report.add(Figure::seconds(
        "cold start",
        "first call of a new component: fetch, compile, run",
        &times,
    ));
    Ok(())
}

/// A task queued for endpoint `cold`, then the endpoint started on a cache
/// that holds the component compiled: from the start to the result, `runs`
/// times.
pub(crate) async fn restart(
    client: &Client,
    url: &str,
    tls: &ClientTls,
    dir: &Path,
    f: &str,
    runs: u32,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (_, credential) = client.register_endpoint("cold", false).await?;
    let mut config = EndpointConfig::new("cold", url.to_owned());
    config.credential = Some(credential);
    config.tls = tls.clone();
    config.cache_dir = Some(dir.join("cold-cache"));
    config.gpu = ferry_host::GpuChoice::None;
    // The first start fetches and compiles into the cache.
    let endpoint = Running::start(&config);
    client
        .submit::<_, ()>("cold", f, "noop", &())
        .await?
        .await?;
    endpoint.stop(client).await?;
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let queued = client.submit::<_, ()>("cold", f, "noop", &()).await?;
        let start = Instant::now();
        let endpoint = Running::start(&config);
        queued.await?;
        times.push(start.elapsed());
        endpoint.stop(client).await?;
    }
    report.check(
        "cold start",
        format!("{runs} tasks queued for a stopped endpoint ran once it restarted"),
        true,
    );
    report.add(
        Figure::seconds(
            "cold start",
            "endpoint restart to the first result, compiled cache warm",
            &times,
        )
        .target("≤ 2 ms", 0.002, false),
    );
    Ok(())
}

/// An endpoint running in this process.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn start(config: &EndpointConfig) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(ferry_endpoint::run(config.clone(), async {
            let _ = stopped.await;
        }));
        Running { stop, task }
    }

    /// Stops it, and waits until the service has seen its session end, so
    /// that the next task queues instead of going to a closing session.
    async fn stop(self, client: &Client) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = client.status().await?;
            if !status
                .endpoints
                .iter()
                .any(|e| e.name == "cold" && e.sessions > 0)
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the service still counts a session of `cold` 30 s after it stopped"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
