//! Task graphs across real processes: references as arguments, resolved in
//! the service; lazy failure; type checks at submit; a service restart.

mod common;

use std::time::Duration;

use common::*;
use ferry_client::{Client, ClientError, Graph, SubmitOptions, TaskRef, WitResult};
use ferry_testkit::guest_bytes;

async fn probe(client: &Client) -> String {
    client
        .register(&guest_bytes("dataflow-probe"))
        .await
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_runs_in_the_service_while_the_client_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _a = endpoint(port, "left", &dir.path().join("a"), 2);
    let _b = endpoint(port, "right", &dir.path().join("b"), 2);
    ready(port, "left", 1).await;
    let d_id = {
        // This client submits the whole diamond, then goes away.
        let client = ready(port, "right", 1).await;
        let f = probe(&client).await;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            % 1000;
        let mut g = Graph::new();
        let a = g.add("left", &f, "slow", &(seed, 300u32)).unwrap();
        let b = g.add("right", &f, "square", &(&a,)).unwrap();
        let c = g.add("left", &f, "add", &(&a, 10i64)).unwrap();
        let d = g
            .add(
                "right",
                &f,
                "sum-pair",
                &(serde_json::json!({"left": b, "right": c}),),
            )
            .unwrap();
        assert_eq!(d, TaskRef::to("#3"));
        let ids = client.submit_graph(g).await.unwrap();
        assert_eq!(ids.len(), 4);
        let info = client.task(&ids[3]).await.unwrap();
        assert_eq!(
            info.state,
            ferry_client::State::WaitingForDependencies as i32
        );
        assert_eq!(info.depends_on, vec![ids[1].clone(), ids[2].clone()]);
        std::fs::write(dir.path().join("seed"), seed.to_string()).unwrap();
        ids[3].clone()
    };
    // A new process fetches d later.
    let seed: i64 = std::fs::read_to_string(dir.path().join("seed"))
        .unwrap()
        .parse()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let out = common::command()
        .args(["--service", &url, "result", &d_id, "--wait"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(got, seed * seed + seed + 10);

    // `ferry graph` shows d's ancestors and their states.
    let out = common::command()
        .args(["--service", &url, "graph", &d_id])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches("succeeded").count(),
        5,
        "d, b, c, and a twice:\n{text}"
    );
    assert!(text.contains("sum-pair") && text.contains("slow"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_fan_out_and_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _a = endpoint(port, "pool", &dir.path().join("a"), 2);
    let client = ready(port, "pool", 1).await;
    let f = probe(&client).await;
    let root = client
        .submit::<_, i64>("pool", &f, "add", &(3i64, 4i64))
        .await
        .unwrap();
    let n = 10_000i64;
    let leaves = client
        .submit_batch::<_, i64>("pool", &f, "add", (0..n).map(|i| (root.arg(), i)))
        .await
        .unwrap();
    let refs: Vec<TaskRef> = leaves.iter().map(|l| l.arg()).collect();
    let total: i64 = client
        .submit("pool", &f, "sum", &(refs,))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(total, 7 * n + n * (n - 1) / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_middle_node_fails_exactly_its_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _a = endpoint(port, "pool", &dir.path().join("a"), 2);
    let client = ready(port, "pool", 1).await;
    let f = probe(&client).await;
    let top = client
        .submit::<_, i64>("pool", &f, "add", &(1i64, 1i64))
        .await
        .unwrap();
    // Middle nodes: one returns err (2 is bad), the other is fine.
    let bad = client
        .submit::<_, WitResult<i64, String>>("pool", &f, "checked", &(top.arg(), 2i64))
        .await
        .unwrap();
    let good = client
        .submit::<_, WitResult<i64, String>>("pool", &f, "checked", &(top.arg(), 99i64))
        .await
        .unwrap();
    let below_bad = client
        .submit::<_, i64>("pool", &f, "square", &(bad.arg(),))
        .await
        .unwrap();
    let deeper = client
        .submit::<_, i64>("pool", &f, "add", &(below_bad.arg(), 1i64))
        .await
        .unwrap();
    let below_good = client
        .submit::<_, i64>("pool", &f, "square", &(good.arg(),))
        .await
        .unwrap();
    let (bad_id, below_bad_id) = (bad.task_id().to_owned(), below_bad.task_id().to_owned());
    assert_eq!(below_good.await.unwrap(), 4);
    match below_bad.await {
        Err(ClientError::Task { kind, message, .. }) => {
            assert_eq!(kind, "dependency");
            assert_eq!(
                message,
                format!("dependency {bad_id} failed: 2 is the bad value")
            );
        }
        other => panic!("{other:?}"),
    }
    match deeper.await {
        Err(ClientError::Task { message, .. }) => assert!(
            message.starts_with(&format!(
                "dependency {below_bad_id} failed: dependency {bad_id}"
            )),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(Result::from(good.await.unwrap()), Ok(2));
    // A cancelled producer cancels what waits for it.
    let long = client
        .submit::<_, i64>("pool", &f, "slow", &(5i64, 3000u32))
        .await
        .unwrap();
    let after = client
        .submit::<_, i64>("pool", &f, "square", &(long.arg(),))
        .await
        .unwrap();
    client.cancel(long.task_id()).await.unwrap();
    match after.await {
        Err(ClientError::Task { kind, .. }) => assert_eq!(kind, "cancelled"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_are_checked_at_submit() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _a = endpoint(port, "pool", &dir.path().join("a"), 1);
    let client = ready(port, "pool", 1).await;
    let f = probe(&client).await;
    let text = client
        .submit::<_, String>("pool", &f, "greeting", &("ada",))
        .await
        .unwrap();
    let e = client
        .submit::<_, i64>("pool", &f, "square", &(text.arg(),))
        .await
        .err()
        .expect("a string result where s64 is expected");
    let ClientError::Service { code, message } = e else {
        panic!("{e:?}")
    };
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert_eq!(
        message,
        format!(
            "argument `x` expects s64, but task {} (`greeting`) gives string",
            text.task_id()
        )
    );
    let e = client
        .submit::<_, i64>("pool", &f, "square", &(TaskRef::to("no-such-task"),))
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("refers to task no-such-task, which does not exist"),
        "{e}"
    );
    // Nested: a list element must fit the list's element type.
    let e = client
        .submit::<_, i64>("pool", &f, "sum", &(vec![text.arg()],))
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("argument `xs`[0] expects s64"),
        "{e}"
    );
    // From the CLI, as JSON.
    let n = client
        .submit::<_, i64>("pool", &f, "add", &(20i64, 1i64))
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let arg = format!(r#"{{"$task": "{}"}}"#, n.task_id());
    let out = common::command()
        .args([
            "--service",
            &url,
            "call",
            "--endpoint",
            "pool",
            &f,
            "square",
            &arg,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "441");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_survives_a_service_killed_mid_run() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let mut service = serve(&data, port);
    let _a = endpoint(port, "pool", &dir.path().join("a"), 2);
    let client = ready(port, "pool", 1).await;
    let f = probe(&client).await;
    // A chain of slow links: the kill lands in the middle of it.
    let mut g = Graph::new();
    let mut last = g.add("pool", &f, "slow", &(1i64, 200u32)).unwrap();
    for _ in 0..6 {
        let next = g.add("pool", &f, "add", &(&last, 1i64)).unwrap();
        last = g.add("pool", &f, "slow", &(&next, 200u32)).unwrap();
    }
    let ids = client.submit_graph(g).await.unwrap();
    // The kill lands once some links have finished and others have not.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while tasks_run(&client, "pool").await < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the chain made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let info = client.task(ids.last().unwrap()).await.unwrap();
    assert_ne!(
        info.state,
        ferry_client::State::Succeeded as i32,
        "the chain must still be running at the kill"
    );
    service.kill9();
    drop(client);
    let _service = serve(&data, port);
    let client = ready(port, "pool", 1).await;
    let end: i64 = client.result(ids.last().unwrap()).await.unwrap();
    assert_eq!(end, 7);
}

async fn tasks_run(client: &Client, endpoint: &str) -> u64 {
    let s = client.status().await.unwrap();
    s.endpoints
        .iter()
        .find(|e| e.name == endpoint)
        .map_or(0, |e| e.tasks_run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memoized_results_run_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _a = endpoint(port, "pool", &dir.path().join("a"), 1);
    let client = ready(port, "pool", 1).await;
    let f = probe(&client).await;
    let memo = SubmitOptions::default().memoized();
    let x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        % 1_000_000;
    let square = |x: i64, options: SubmitOptions| {
        let (client, f) = (client.clone(), f.clone());
        async move {
            let t = client
                .submit_with::<_, i64>("pool", &f, "square", &(x,), &options)
                .await
                .unwrap();
            let id = t.task_id().to_owned();
            let v = t.await.unwrap();
            (v, client.task(&id).await.unwrap())
        }
    };
    let (v, first) = square(x, memo.clone()).await;
    assert_eq!(v, x * x);
    assert!(!first.cache_hit);
    let ran = tasks_run(&client, "pool").await;
    let (v, second) = square(x, memo.clone()).await;
    assert_eq!(v, x * x);
    assert!(second.cache_hit, "the status says it was a cache hit");
    assert_eq!(tasks_run(&client, "pool").await, ran, "nothing ran");
    let (v, other) = square(x + 1, memo.clone()).await;
    assert_eq!(v, (x + 1) * (x + 1));
    assert!(!other.cache_hit, "one argument byte changed: a miss");
    assert_eq!(tasks_run(&client, "pool").await, ran + 1);
    // Without asking, nothing is memoized; per function it is.
    let (_, plain) = square(x, SubmitOptions::default()).await;
    assert!(!plain.cache_hit);
    client.memoize(&f, true).await.unwrap();
    let (_, by_function) = square(x, SubmitOptions::default()).await;
    assert!(by_function.cache_hit);
    // A consumer in a graph is keyed by its filled-in arguments.
    let producer = client
        .submit::<_, i64>("pool", &f, "add", &(x, 0i64))
        .await
        .unwrap();
    let consumer = client
        .submit::<_, i64>("pool", &f, "square", &(producer.arg(),))
        .await
        .unwrap();
    let id = consumer.task_id().to_owned();
    assert_eq!(consumer.await.unwrap(), x * x);
    assert!(client.task(&id).await.unwrap().cache_hit);
    // `ferry cache clear` forgets.
    let url = format!("http://127.0.0.1:{port}");
    let out = common::command()
        .args(["--service", &url, "cache", "clear"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("forgot "));
    client.memoize(&f, false).await.unwrap();
    let (_, after) = square(x, memo).await;
    assert!(!after.cache_hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_rerun_what_may_be_retried_and_lost_endpoints_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = dir.path().join("endpoint.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"pool\"\n[[mounts]]\nhost = \"{}\"\nguest = \"/state\"\nread_only = false\nfunctions = [\"*\"]\n",
            state.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let extra = ["--gpu", "none", "--config", config.to_str().unwrap()];
    let mut a = endpoint_with(port, "pool", &dir.path().join("a"), 4, &extra);
    let _b = endpoint_with(port, "pool", &dir.path().join("b"), 4, &extra);
    let client = ready(port, "pool", 2).await;
    let f = probe(&client).await;

    // retry_on names kinds of the one vocabulary: a misspelt kind, or one
    // that cannot end differently on a second run, is refused at submit.
    for (kinds, needle) in [
        (&["tiemout"][..], "`tiemout` is not a failure kind"),
        (&["bad-arguments"][..], "would fail the same way again"),
    ] {
        let e = client
            .submit_with::<_, u32>(
                "pool",
                &f,
                "flaky",
                &("/state/never",),
                &SubmitOptions::default().retry(1, kinds),
            )
            .await
            .map(|_| ())
            .unwrap_err();
        match e {
            ClientError::Service { code, message } => {
                assert_eq!(code, tonic::Code::InvalidArgument, "{message}");
                assert!(message.contains(needle), "{message}");
                assert!(
                    message.contains("timeout") && message.contains("trap"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // A trap is retried only when asked.
    let once = client
        .submit::<_, u32>("pool", &f, "flaky", &("/state/plain",))
        .await
        .unwrap();
    match once.await {
        Err(ClientError::Task { kind, .. }) => assert_eq!(kind, "trap"),
        other => panic!("{other:?}"),
    }
    let retried = client
        .submit_with::<_, u32>(
            "pool",
            &f,
            "flaky",
            &("/state/retried",),
            &SubmitOptions::default().retry(2, &["trap"]),
        )
        .await
        .unwrap();
    let id = retried.task_id().to_owned();
    assert_eq!(retried.await.unwrap(), 1);
    assert_eq!(client.task(&id).await.unwrap().attempts, 1);
    // A timeout retried once and still too slow fails after two runs.
    let mut slow = SubmitOptions::default().retry(1, &["timeout"]);
    slow.limits = Some(ferry_proto::v1::Limits {
        timeout_ms: 200,
        ..Default::default()
    });
    let t = client
        .submit_with::<_, i64>("pool", &f, "slow", &(1i64, 5000u32), &slow)
        .await
        .unwrap();
    let id = t.task_id().to_owned();
    match t.await {
        Err(ClientError::Task { kind, .. }) => assert_eq!(kind, "timeout"),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.task(&id).await.unwrap().attempts, 1);

    // One of two endpoints killed mid-run: every task still completes once.
    let before = tasks_run(&client, "pool").await;
    let tasks = client
        .submit_batch_with::<_, i64>(
            "pool",
            &f,
            "slow",
            (0..40i64).map(|i| (i, 150u32)),
            &SubmitOptions::default().retry(2, &["timeout"]),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while tasks_run(&client, "pool").await < before + 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill9();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), i as i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_across_two_endpoints_and_only_the_summary_returns() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _a = endpoint(port, "maker", &dir.path().join("a"), 1);
    let _b = endpoint(port, "cruncher", &dir.path().join("b"), 1);
    ready(port, "maker", 1).await;
    let client = ready(port, "cruncher", 1).await;
    let url = format!("http://127.0.0.1:{port}");
    let out = common::command()
        .args([
            "--service",
            &url,
            "demo",
            "pipeline",
            "--generate-on",
            "maker",
            "--cluster-on",
            "cruncher",
            "--points",
            "30000",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("30000 points in 7 clusters"), "{text}");
    let last = text
        .split("`ferry graph ")
        .nth(1)
        .and_then(|t| t.split('`').next())
        .unwrap();
    let summary = client.task(last).await.unwrap();
    assert_eq!(summary.export, "summarise");
    assert_eq!(summary.endpoint, "maker");
    let cluster = client.task(&summary.depends_on[0]).await.unwrap();
    assert_eq!(
        (cluster.export.as_str(), cluster.endpoint.as_str()),
        ("cluster", "cruncher")
    );
    let generate = client.task(&cluster.depends_on[0]).await.unwrap();
    assert_eq!(generate.export, "generate");
    let sizes: Vec<u64> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("center "))
        .map(|l| l.split_whitespace().rev().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes.len(), 7);
    assert_eq!(sizes.iter().sum::<u64>(), 30_000);
}
