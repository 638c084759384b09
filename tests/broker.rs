//! The broker's rules across real processes: foreign sessions, endpoints
//! that die, a service killed mid-run, and what a user sees of a remote
//! task (logs, metrics).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::*;
use ferry_client::{SubmitOptions, TaskInfo};
use ferry_proto::v1::{self as pb, endpoints_client::EndpointsClient};
use ferry_testkit::guest_bytes;
use tokio_stream::StreamExt;

use pi_estimate as estimate;

/// Waits until `done` holds of the service's status.
async fn until(
    client: &ferry_client::Client,
    what: &str,
    done: impl Fn(&pb::StatusResponse) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(s) = client.status().await
            && done(&s)
        {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn in_flight(s: &pb::StatusResponse, endpoint: &str) -> u32 {
    s.endpoints
        .iter()
        .find(|e| e.name == endpoint)
        .map_or(0, |e| e.in_flight)
}

/// An endpoint config lending `dir` (writable) to every function as `/marks`.
fn marks_config(dir: &Path, name: &str, port: u16) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("marks")).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\nservice = \"http://127.0.0.1:{port}\"\ngpu = \"none\"\n\
             scratch_dir = \"{0}/scratch\"\n\
             [[mounts]]\nhost = \"{0}/marks\"\nguest = \"/marks\"\nread_only = false\nfunctions = [\"*\"]\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

/// An endpoint started from a [`marks_config`].
fn marks_endpoint(config: &Path, cache: &Path, concurrency: u32, prefetch: u32) -> Proc {
    let (concurrency, prefetch) = (concurrency.to_string(), prefetch.to_string());
    Proc(
        ferry(&[
            "endpoint",
            "start",
            "--config",
            config.to_str().unwrap(),
            "--concurrency",
            &concurrency,
            "--prefetch",
            &prefetch,
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
        .spawn()
        .unwrap(),
    )
}

/// Executions per tag, from the files `mark` left.
fn executions(dir: &Path) -> HashMap<String, usize> {
    let mut runs = HashMap::new();
    for entry in std::fs::read_dir(dir.join("marks")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let tag = name.split('.').next().unwrap().to_owned();
        *runs.entry(tag).or_default() += 1;
    }
    runs
}

/// Submits `mark(/marks, i)` for each `i` below `n`, in batches.
async fn submit_marks(
    client: &ferry_client::Client,
    endpoint: &str,
    function: &str,
    n: u32,
    batch: usize,
) -> Vec<ferry_client::TaskFuture<ferry_client::WitResult<(), String>>> {
    let mut futures = Vec::with_capacity(n as usize);
    for chunk in (0..n).collect::<Vec<u32>>().chunks(batch) {
        futures.extend(
            client
                .submit_batch::<_, ferry_client::WitResult<(), String>>(
                    endpoint,
                    function,
                    "mark",
                    chunk.iter().map(|i| ("/marks", i.to_string())),
                )
                .await
                .unwrap(),
        );
    }
    futures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_session_cannot_forge_results_and_the_real_ones_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _ep = endpoint(port, "local", &dir.path().join("cache"), 1);
    let client = ready(port, "local", 1).await;
    let pi = client.register(&guest_bytes("pi")).await.unwrap();
    let seeds: Vec<u64> = (0..5).collect();
    let futures = client
        .submit_batch::<_, f64>(
            "local",
            &pi.id,
            "pi",
            seeds.iter().map(|&s| (2_000_000u64, s)),
        )
        .await
        .unwrap();
    let ids: Vec<String> = futures.iter().map(|f| f.task_id().to_owned()).collect();
    until(&client, "a task in flight", |s| in_flight(s, "local") > 0).await;

    // A second process, built from the proto alone and holding `local`'s
    // own credential (as a second agent of it would), says Hello as
    // `local`, takes no credits, and reports made-up results for every
    // task, with every lease number it might guess.
    let credential = ferry_proto::credentials::read(
        &common::config_dir().join("credentials"),
        &ferry_proto::credentials::endpoint_key(&format!("http://127.0.0.1:{port}"), "local"),
    )
    .expect("the endpoint saved the credential it registered");
    let channel = ferry_proto::dial(&format!("http://127.0.0.1:{port}"), &Default::default())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut rogue =
        EndpointsClient::new(ferry_proto::auth::conn(channel, Some(&credential)).unwrap());
    let forged = rmp_serde::to_vec(&-1.0f64).unwrap();
    let mut messages = vec![pb::EndpointMessage {
        kind: Some(pb::endpoint_message::Kind::Hello(pb::Hello {
            name: "local".into(),
            concurrency: 1000,
            ..Default::default()
        })),
    }];
    for lease in [0, 1, 2] {
        messages.push(pb::EndpointMessage {
            kind: Some(pb::endpoint_message::Kind::Results(pb::ResultBatch {
                outcomes: ids
                    .iter()
                    .map(|id| pb::TaskOutcome {
                        task_id: id.clone(),
                        lease,
                        outcome: Some(pb::task_outcome::Outcome::Result(forged.clone())),
                        ..Default::default()
                    })
                    .collect(),
            })),
        });
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for m in messages {
        tx.send(m).await.unwrap();
    }
    let mut replies = rogue
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // Its Welcome comes after the service has read its Hello; the results
    // follow on the same stream.
    assert!(replies.next().await.is_some());

    for (seed, f) in seeds.iter().zip(futures) {
        let v = tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(
            v,
            estimate::pi(2_000_000, *seed),
            "seed {seed}: the real result"
        );
    }
    let s = client.status().await.unwrap();
    let local = s.endpoints.iter().find(|e| e.name == "local").unwrap();
    assert_eq!(
        local.tasks_run, 5,
        "only the real endpoint's outcomes counted"
    );
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_dies_on_a_task_ends_it_as_endpoint_lost_and_the_rest_finish() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve_with(&dir.path().join("data"), port, &["--lease-timeout", "60s"]);
    let url = format!("http://127.0.0.1:{port}");
    let start = || {
        let mut c = ferry(&[
            "endpoint",
            "start",
            "--service",
            &url,
            "--name",
            "pool",
            "--concurrency",
            "2",
            "--gpu",
            "none",
            "--cache-dir",
            dir.path().join("cache").to_str().unwrap(),
        ]);
        c.env("FERRY_TEST_ABORT_ON_EXPORT", "boom");
        Proc(c.spawn().unwrap())
    };
    let mut ep = start();
    let client = ready(port, "pool", 1).await;
    let pi = client.register(&guest_bytes("pi")).await.unwrap();
    let faults = client.register(&guest_bytes("faults")).await.unwrap();
    let seeds: Vec<u64> = (0..20).collect();
    let (first, rest) = seeds.split_at(3);
    let mut pis = client
        .submit_batch::<_, f64>("pool", &pi.id, "pi", first.iter().map(|&s| (300_000u64, s)))
        .await
        .unwrap();
    let poison = client
        .submit::<_, ()>("pool", &faults.id, "boom", &("never runs",))
        .await
        .unwrap();
    pis.extend(
        client
            .submit_batch::<_, f64>("pool", &pi.id, "pi", rest.iter().map(|&s| (300_000u64, s)))
            .await
            .unwrap(),
    );
    // A supervisor, as systemd would be: the endpoint is started again each
    // time it dies, until the poison task has ended.
    let poison_id = poison.task_id().to_owned();
    let mut restarts = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let info: TaskInfo = client.task(&poison_id).await.unwrap();
        if info.state == pb::TaskState::Failed as i32 {
            let e = info.error.unwrap();
            assert_eq!(e.kind, "endpoint-lost", "{}", e.message);
            assert!(
                e.message.contains("3 times") && e.message.contains("pool"),
                "{}",
                e.message
            );
            assert_eq!(info.lost, 3);
            break;
        }
        if ep.0.try_wait().unwrap().is_some() {
            restarts += 1;
            assert!(restarts < 3, "the endpoint died more than 3 times");
            ep = start();
        }
        assert!(Instant::now() < deadline, "the poison task never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The third death may be recorded before it is seen here.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ep.0.try_wait().unwrap().is_none() && restarts < 3 {
        assert!(
            Instant::now() < deadline,
            "the endpoint outlived the third loss"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deaths = restarts + 1;
    assert_eq!(deaths, 3, "it took the endpoint down exactly 3 times");
    ep = start();
    for (seed, f) in seeds.iter().zip(pis) {
        let v = tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(v, estimate::pi(300_000, *seed), "seed {seed}");
    }
    drop(ep);
}

/// Executions counted per task on the endpoints' shared mount: with no
/// fault, every task runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_over_two_endpoints_each_run_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let config = marks_config(dir.path(), "pool", port);
    let _a = marks_endpoint(&config, &dir.path().join("a"), 2, 2);
    let _b = marks_endpoint(&config, &dir.path().join("b"), 2, 2);
    let client = ready(port, "pool", 2).await;
    let probe = client.register(&guest_bytes("files-probe")).await.unwrap();
    let n = 10_000;
    let futures = submit_marks(&client, "pool", &probe.id, n, 1000).await;
    for f in futures {
        Result::<(), String>::from(f.await.unwrap()).unwrap();
    }
    let runs = executions(dir.path());
    assert_eq!(runs.len(), n as usize, "every task ran");
    let twice: Vec<_> = runs.iter().filter(|(_, k)| **k > 1).collect();
    assert!(twice.is_empty(), "tasks that ran more than once: {twice:?}");
    let s = client.status().await.unwrap();
    let pool = s.endpoints.iter().find(|e| e.name == "pool").unwrap();
    assert_eq!(pool.tasks_run, n as u64);
}

/// `kill -9` of the service in the middle of 100,000 tasks: after a restart
/// every task succeeds once from the client's side, each future resolves
/// once, and what ran twice is only what was in flight at the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_killed_during_100k_tasks_loses_none_and_repeats_only_what_was_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut service = serve(&data, port);
    let config = marks_config(dir.path(), "local", port);
    let concurrency = 2;
    let prefetch = 2;
    let _ep = marks_endpoint(&config, &dir.path().join("cache"), concurrency, prefetch);
    let client = ready(port, "local", 1).await;
    let probe = client.register(&guest_bytes("files-probe")).await.unwrap();
    let n: u32 = 100_000;
    let futures = submit_marks(&client, "local", &probe.id, n, 5000).await;
    until(&client, "a fifth of the tasks done", |s| {
        s.tasks
            .iter()
            .any(|c| c.state == pb::TaskState::Succeeded as i32 && c.count >= u64::from(n / 5))
    })
    .await;
    service.kill9();
    let _service = serve(&data, port);
    // The same client and its futures: its watch stream comes back by itself.
    let mut resolved = 0;
    for f in futures {
        let r = tokio::time::timeout(Duration::from_secs(300), f)
            .await
            .expect("every future resolves")
            .unwrap();
        Result::<(), String>::from(r).unwrap();
        resolved += 1;
    }
    assert_eq!(resolved, n);
    let s = client.status().await.unwrap();
    let succeeded = s
        .tasks
        .iter()
        .find(|c| c.state == pb::TaskState::Succeeded as i32)
        .map_or(0, |c| c.count);
    assert_eq!(succeeded, u64::from(n), "each task succeeded once");
    let runs = executions(dir.path());
    let lost = (0..n)
        .filter(|i| !runs.contains_key(&i.to_string()))
        .count();
    let duplicates: usize = runs.values().map(|&k| k - 1).sum();
    let executions: usize = runs.values().sum();
    println!(
        "kill -9 during {n} tasks: executions {executions}, duplicates {duplicates}, lost {lost}"
    );
    let mut twice: Vec<(u32, Vec<String>)> = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("marks")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let tag = name.split('.').next().unwrap().to_owned();
        if runs[&tag] > 1 {
            let t: u32 = tag.parse().unwrap();
            match twice.iter_mut().find(|(k, _)| *k == t) {
                Some((_, v)) => v.push(name),
                None => twice.push((t, vec![name])),
            }
        }
    }
    twice.sort();
    println!("ran twice: {twice:?}");
    assert_eq!(lost, 0);
    assert!(
        duplicates <= (concurrency + prefetch) as usize,
        "{duplicates} tasks ran twice; at most the {} held by the endpoint at the kill may",
        concurrency + prefetch
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_logs_shows_a_remote_tasks_output_and_metrics_parse() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let _service = serve_with(&dir.path().join("data"), port, &["--metrics", &metrics]);
    let _ep = endpoint(port, "local", &dir.path().join("cache"), 1);
    let client = ready(port, "local", 1).await;
    let faults = client.register(&guest_bytes("faults")).await.unwrap();
    let hello = client.register(&guest_bytes("hello")).await.unwrap();
    let chatty = client
        .submit_with::<_, u32>(
            "local",
            &faults.id,
            "chatty",
            &(3u32,),
            &SubmitOptions::default(),
        )
        .await
        .unwrap();
    let chatty_id = chatty.task_id().to_owned();
    assert_eq!(chatty.await.unwrap(), 3);
    let greet = client
        .submit::<_, String>("local", &hello.id, "greet", &("logs",))
        .await
        .unwrap();
    let greet_id = greet.task_id().to_owned();
    assert_eq!(greet.await.unwrap(), "Hello, logs!");

    let url = format!("http://127.0.0.1:{port}");
    let out = common::command()
        .args(["--service", &url, "logs", &chatty_id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("stdout line 0") && stdout.contains("stdout line 2"),
        "{stdout}"
    );
    assert!(stderr.contains("stderr line 1"), "{stderr}");
    let out = common::command()
        .args(["--service", &url, "logs", &greet_id])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("greeting") && stderr.contains("logs"),
        "{stderr}"
    );
    // A task that fails keeps what it printed and logged before it did.
    let noisy = client
        .submit_with::<_, ()>(
            "local",
            &faults.id,
            "noisy-boom",
            &("out of cheese",),
            &SubmitOptions::default(),
        )
        .await
        .unwrap();
    let noisy_id = noisy.task_id().to_owned();
    assert!(noisy.await.is_err(), "noisy-boom must fail");
    let out = common::command()
        .args(["--service", &url, "logs", &noisy_id])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("about to fail: out of cheese"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("failing") && stderr.contains("out of cheese"),
        "stderr: {stderr}"
    );

    // /metrics, read as Prometheus reads it.
    let body = http_get(&metrics, "/metrics").await;
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| s.value.clone())
    };
    assert!(
        matches!(value("ferry_tasks", Some(("state", "succeeded"))), Some(prometheus_parse::Value::Gauge(v)) if v == 2.0),
        "{body}"
    );
    assert!(
        matches!(value("ferry_sessions", Some(("endpoint", "local"))), Some(prometheus_parse::Value::Gauge(v)) if v == 1.0),
        "{body}"
    );
    assert!(
        value("ferry_leases_expired_total", None).is_some(),
        "{body}"
    );
    assert!(
        matches!(value("ferry_commit_seconds", None), Some(prometheus_parse::Value::Histogram(h)) if !h.is_empty()),
        "{body}"
    );
    assert!(
        http_get(&metrics, "/nope")
            .await
            .contains("only GET /metrics")
    );
}

async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// Reflection answers as `grpc.reflection.v1` and as `v1alpha`, which
/// Python's grpcio-reflection and older grpcurl builds speak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_ferrys_services_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let channel = loop {
        match ferry_proto::dial(&url, &Default::default())
            .unwrap()
            .connect()
            .await
        {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the service did not come up: {e}"),
        }
    };
    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut replies = alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("{reply:?}")
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"ferry.v1.Tasks"), "{names:?}");

    let mut stable = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = stable
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    assert!(
        format!("{reply:?}").contains("ferry.v1.Endpoints"),
        "{reply:?}"
    );
}

/// `group` and `none` durability say what they do not keep, when the
/// service starts and in `ferry status`; `strict` says it is strict.
#[test]
fn relaxed_durability_says_what_it_does_not_keep_at_start_and_in_status() {
    use std::io::BufRead;
    for (mode, loses) in [
        (
            "group",
            "a crash loses up to 100 ms of acknowledged task changes",
        ),
        (
            "none",
            "a restart loses every task, result, registered function",
        ),
        ("strict", ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let data = dir.path().join("data");
        let args = [
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
            "--durability",
            mode,
        ];
        let mut child = ferry(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let _service = Proc(child);
        // The banner ends with the line that names the URL; the durability
        // line, if any, follows it at once.
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let served = line.starts_with("ferry service on");
            banner.push(line);
            if served {
                break;
            }
        }
        if !loses.is_empty() {
            let next = lines.next().unwrap().unwrap();
            assert!(
                next.starts_with(&format!("durability {mode}: ")) && next.contains(loses),
                "{mode}: {banner:?} then {next:?}"
            );
        }
        // Past the banner the port is bound: `status` is answered.
        let out = command()
            .arg("status")
            .env("FERRY_SERVICE", format!("http://{listen}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = text.lines().next().unwrap_or_default();
        if loses.is_empty() {
            assert_eq!(first, "durability: strict", "{text}");
        } else {
            assert!(
                first.starts_with(&format!("durability: {mode}: ")) && first.contains(loses),
                "{text}"
            );
        }
    }
}
