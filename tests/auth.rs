//! Identities across processes: a real `ferry serve` and `ferry endpoint
//! start`, and clients presenting no token, bad tokens, or another user's.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferry_client::{BlobRef, Client, ClientError, SubmitOptions, WitResult};
use ferry_proto::v1::{self as pb, endpoints_client::EndpointsClient, tasks_client::TasksClient};
use ferry_testkit::guest_bytes;
use pi_estimate as estimate;
use tonic::Code;

/// What a refused call came back with.
fn code<T>(r: Result<T, ClientError>) -> (Code, String) {
    match r {
        Err(ClientError::Service { code, message }) => (code, message),
        Err(other) => panic!("expected a refusal by the service, got {other:?}"),
        Ok(_) => panic!("expected a refusal, but the call was allowed"),
    }
}

async fn connect(port: u16, token: Option<&str>) -> Client {
    Client::connect_as(format!("http://127.0.0.1:{port}"), token)
        .await
        .unwrap()
}

async fn raw(port: u16, token: Option<&str>) -> ferry_proto::auth::Conn {
    let channel = ferry_proto::dial(&format!("http://127.0.0.1:{port}"), &Default::default())
        .unwrap()
        .connect()
        .await
        .unwrap();
    ferry_proto::auth::conn(channel, token).unwrap()
}

/// Lets every user submit to `endpoint`, and adds the users `ada` and `bob`:
/// their clients.
async fn ada_and_bob(admin: &Client, port: u16, endpoint: &str) -> (Client, Client) {
    admin
        .set_endpoint_policy(
            endpoint,
            ferry_client::EndpointPolicy {
                submitters: vec!["*".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut users = Vec::new();
    for name in ["ada", "bob"] {
        admin.add_user(name, false).await.unwrap();
        let (_, token) = admin.create_token(Some(name), "", None).await.unwrap();
        users.push(connect(port, Some(&token)).await);
    }
    let bob = users.pop().unwrap();
    (users.pop().unwrap(), bob)
}

/// Runs a `ferry` command against the service on `port` with `token`.
fn ferry_as(port: u16, token: &str, args: &[&str]) -> std::process::Output {
    command()
        .args(args)
        .env("FERRY_SERVICE", format!("http://127.0.0.1:{port}"))
        .env("FERRY_TOKEN", token)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_callers_without_a_valid_token_or_the_right_user() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _endpoint = endpoint(port, "local", &dir.path().join("cache"), 2);
    let admin = ready(port, "local", 1).await;

    // Users and tokens, made with the CLI as an operator would.
    let admin_token = token(port).unwrap();
    for user in ["ada", "bob"] {
        let out = ferry_as(port, &admin_token, &["user", "add", user]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let new_token = |user: &str, extra: &[&str]| {
        let mut args = vec!["token", "create", "--user", user];
        args.extend_from_slice(extra);
        let out = ferry_as(port, &admin_token, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // `local` registered itself with the admin's token: everyone may use it.
    let out = ferry_as(
        port,
        &admin_token,
        &["endpoint", "policy", "local", "--submitters", "*"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ada_token = new_token("ada", &[]);
    let bob_token = new_token("bob", &[]);
    let expired = new_token("ada", &["--expires", "1ms"]);
    let revoked = new_token("ada", &[]);
    let revoked_id = revoked.split('_').nth(1).unwrap().to_owned();
    let out = ferry_as(port, &admin_token, &["token", "revoke", &revoked_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut forged = ada_token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });

    let ada = connect(port, Some(&ada_token)).await;
    let me = ada.whoami().await.unwrap();
    assert_eq!((me.user.as_str(), me.admin), ("ada", false));
    let pi = ada.register(&guest_bytes("pi")).await.unwrap();
    let task = ada
        .submit::<_, f64>("local", &pi.id, "pi", &(10_000u64, 7u64))
        .await
        .unwrap();
    let task_id = task.task_id().to_owned();
    assert_eq!(task.await.unwrap(), estimate::pi(10_000, 7));
    let blob = ada.upload_bytes(b"ada's data").await.unwrap();

    // The expired token's millisecond has passed by now; make sure.
    let deadline = Instant::now() + Duration::from_secs(5);
    while connect(port, Some(&expired)).await.whoami().await.is_ok() {
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let strangers: [(&str, Option<&str>, &str); 5] = [
        ("no token", None, "no token"),
        ("garbage", Some("hunter2"), "not a ferry token"),
        ("wrong secret", Some(&forged), "not valid"),
        ("expired", Some(&expired), "expired"),
        ("revoked", Some(&revoked), "revoked"),
    ];
    let mut table: Vec<(String, &str, Code)> = Vec::new();
    let by_rpc =
        |t: &mut Vec<(String, &str, Code)>| t.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (who, token, why) in strangers {
        let c = connect(port, token).await;
        let mut refused = |rpc: &str, (got, message): (Code, String)| {
            assert_eq!(got, Code::Unauthenticated, "{who}: {rpc}: {message}");
            assert!(message.contains(why), "{who}: {rpc}: {message}");
            table.push((rpc.to_owned(), who, got));
        };
        refused(
            "Tasks.Submit",
            code(
                c.submit::<_, f64>("local", &pi.id, "pi", &(1u64, 1u64))
                    .await,
            ),
        );
        refused("Tasks.Get", code(c.task(&task_id).await));
        refused("Tasks.Cancel", code(c.cancel(&task_id).await));
        refused("Tasks.List", code(c.list_tasks(&[], "", "", 10).await));
        refused("Tasks.ClearCache", code(c.clear_cache().await));
        refused("Tasks.Status", code(c.status().await));
        refused(
            "Functions.Register",
            code(c.register(&guest_bytes("pi")).await),
        );
        refused("Functions.List", code(c.functions().await));
        refused(
            "Blobs.Get",
            code(c.download(&blob.blob.hash, dir.path().join("x")).await),
        );
        refused("Blobs.Put", code(c.upload_bytes(b"x").await));
        refused("Blobs.Gc", code(c.gc_blobs(Duration::ZERO, true).await));
        refused("Auth.WhoAmI", code(c.whoami().await));
        refused(
            "Auth.CreateToken",
            code(c.create_token(None, "", None).await),
        );
        let mut tasks = TasksClient::new(raw(port, token).await);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(pb::WatchRequest {
            task_ids: vec![task_id.clone()],
        })
        .await
        .unwrap();
        let e = tasks
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap_err();
        refused("Tasks.Watch", (e.code(), e.message().to_owned()));
        let mut endpoints = EndpointsClient::new(raw(port, token).await);
        let e = endpoints
            .fetch_component(pb::FetchComponentRequest { id: pi.id.clone() })
            .await
            .unwrap_err();
        refused(
            "Endpoints.FetchComponent",
            (e.code(), e.message().to_owned()),
        );
        let e = endpoints
            .session(tokio_stream::iter([hello("local")]))
            .await
            .unwrap_err();
        refused("Endpoints.Session", (e.code(), e.message().to_owned()));
    }

    // Only `local`'s credential serves `local`: not an admin's token, and
    // not another endpoint's credential.
    let url = format!("http://127.0.0.1:{port}");
    let local_credential = ferry_proto::credentials::read(
        &config_dir().join("credentials"),
        &ferry_proto::credentials::endpoint_key(&url, "local"),
    )
    .expect("the endpoint saved the credential it registered");
    for (who, token, name) in [
        ("admin token", &admin_token, "local"),
        ("local's credential", &local_credential, "other"),
    ] {
        let mut endpoints = EndpointsClient::new(raw(port, Some(token)).await);
        let e = endpoints
            .session(tokio_stream::iter([hello(name)]))
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{who}: {e:?}");
        table.push(("Endpoints.Session".into(), who, e.code()));
    }
    let as_endpoint = connect(port, Some(&local_credential)).await;
    let (got, message) = code(
        as_endpoint
            .submit::<_, f64>("local", &pi.id, "pi", &(1u64, 1u64))
            .await,
    );
    assert_eq!(got, Code::PermissionDenied, "{message}");
    assert!(message.contains("only serves"), "{message}");
    table.push(("Tasks.Submit".into(), "local's credential", got));

    // Bob is known, but none of this is his.
    let bob = connect(port, Some(&bob_token)).await;
    let mut denied = |rpc: &str, (got, message): (Code, String), why: &str| {
        assert_eq!(got, Code::PermissionDenied, "bob: {rpc}: {message}");
        assert!(message.contains(why), "bob: {rpc}: {message}");
        table.push((rpc.to_owned(), "another user", got));
    };
    denied("Tasks.Get", code(bob.task(&task_id).await), "another user");
    denied(
        "Tasks.Cancel",
        code(bob.cancel(&task_id).await),
        "another user",
    );
    denied(
        "Tasks.ClearCache",
        code(bob.clear_cache().await),
        "only an admin",
    );
    denied(
        "Blobs.Gc",
        code(bob.gc_blobs(Duration::ZERO, false).await),
        "only an admin",
    );
    denied(
        "Blobs.Pin",
        code(bob.pin_blob(&blob.blob.hash, true).await),
        "only an admin",
    );
    denied(
        "Functions.Memoize",
        code(bob.memoize(&pi.id, true).await),
        "only an admin",
    );
    denied(
        "Auth.AddUser",
        code(bob.add_user("eve", true).await),
        "only an admin",
    );
    denied(
        "Auth.CreateToken",
        code(bob.create_token(Some("ada"), "", None).await),
        "only an admin",
    );
    denied(
        "Auth.RevokeToken",
        code(bob.revoke_token(&me.token_id).await),
        "only an admin",
    );
    // His future of her task ends, refused, and his watch stream lives on.
    match bob.result::<f64>(&task_id).await {
        Err(ClientError::Task {
            kind: ferry_client::FailureKind::Denied,
            message,
            ..
        }) => denied(
            "Tasks.Watch",
            (Code::PermissionDenied, message),
            "another user",
        ),
        other => panic!("bob's future: {other:?}"),
    }
    let own = bob
        .submit::<_, f64>("local", &pi.id, "pi", &(1_000u64, 2u64))
        .await
        .unwrap();
    assert_eq!(own.await.unwrap(), estimate::pi(1_000, 2));
    // Nor may he feed her result into a task of his.
    let (got, message) = code(
        bob.submit_json(
            "local",
            &pi.id,
            "pi",
            &format!(r#"[{{"$task": "{task_id}"}}, 1]"#),
            &SubmitOptions::default(),
        )
        .await,
    );
    denied("Tasks.Submit (her result)", (got, message), "another user");
    let mut endpoints = EndpointsClient::new(raw(port, Some(&bob_token)).await);
    let e = endpoints
        .fetch_component(pb::FetchComponentRequest { id: pi.id.clone() })
        .await
        .map(|_| ())
        .unwrap_err();
    denied(
        "Endpoints.FetchComponent",
        (e.code(), e.message().to_owned()),
        "only an admin",
    );
    let e = endpoints
        .session(tokio_stream::iter([hello("local")]))
        .await
        .map(|_| ())
        .unwrap_err();
    denied(
        "Endpoints.Session",
        (e.code(), e.message().to_owned()),
        "takes its credential",
    );

    // Her blob is, to him, not there.
    let (got, m) = code(bob.download(&blob.blob.hash, dir.path().join("hers")).await);
    assert_eq!(got, Code::NotFound, "{m}");
    table.push(("Blobs.Get".into(), "another user", got));
    assert_eq!(bob.blob_size(&blob.blob.hash).await.unwrap(), None);
    table.push(("Blobs.Stat (absent)".into(), "another user", Code::NotFound));

    // His lists hold nothing of hers.
    let mine = bob.list_tasks(&[], "", "", 100).await.unwrap().tasks;
    assert_eq!(mine.len(), 1, "his own task alone: {mine:?}");
    assert_ne!(mine[0].id, task_id);
    let hers = ada.list_tasks(&[], "", "", 100).await.unwrap().tasks;
    assert_eq!(hers.len(), 1);
    assert_eq!(admin.task(&task_id).await.unwrap().id, task_id);

    by_rpc(&mut table);
    println!("{:<28} {:<14} CODE", "RPC", "CALLER");
    for (rpc, who, c) in &table {
        println!("{rpc:<28} {who:<14} {c:?}");
    }
    println!("{} requests tried, {} refused", table.len(), table.len());
}

fn hello(name: &str) -> pb::EndpointMessage {
    pb::EndpointMessage {
        kind: Some(pb::endpoint_message::Kind::Hello(pb::Hello {
            name: name.into(),
            concurrency: 1,
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_memoized_result_never_answers_another() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _endpoint = endpoint(port, "local", &dir.path().join("cache"), 2);
    let admin = ready(port, "local", 1).await;
    admin
        .set_endpoint_policy(
            "local",
            ferry_client::EndpointPolicy {
                submitters: vec!["*".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut clients = Vec::new();
    for user in ["ada", "bob"] {
        admin.add_user(user, false).await.unwrap();
        let (_, t) = admin.create_token(Some(user), "", None).await.unwrap();
        clients.push(connect(port, Some(&t)).await);
    }
    let pi = clients[0].register(&guest_bytes("pi")).await.unwrap();
    let run = |c: &Client| {
        let c = c.clone();
        let id = pi.id.clone();
        async move {
            let f = c
                .submit_with::<_, f64>(
                    "local",
                    &id,
                    "pi",
                    &(20_000u64, 3u64),
                    &SubmitOptions::default().memoized(),
                )
                .await
                .unwrap();
            let tid = f.task_id().to_owned();
            let v = f.await.unwrap();
            (v, c.task(&tid).await.unwrap().cache_hit)
        }
    };
    let (a1, hit) = run(&clients[0]).await;
    assert!(!hit);
    let (a2, hit) = run(&clients[0]).await;
    assert!(hit, "her second call is answered from her memo");
    assert_eq!(a1, a2);
    let (b1, hit) = run(&clients[1]).await;
    assert!(!hit, "his identical call runs: her result is not his");
    assert_eq!(b1, a1);
    let (_, hit) = run(&clients[1]).await;
    assert!(hit, "and then he has his own");

    // Functions are shared by hash, but each lists what they registered.
    let listed = |fs: Vec<pb::FunctionInfo>| fs.into_iter().map(|f| f.id).collect::<Vec<_>>();
    assert_eq!(
        listed(clients[0].functions().await.unwrap()),
        vec![pi.id.clone()]
    );
    assert!(listed(clients[1].functions().await.unwrap()).is_empty());
    let again = clients[1].register(&guest_bytes("pi")).await.unwrap();
    assert!(!again.uploaded, "known by hash: nothing uploaded");
    assert_eq!(
        listed(clients[1].functions().await.unwrap()),
        vec![pi.id.clone()]
    );
    let (c, m) = code(clients[1].all_functions().await);
    assert_eq!(c, Code::PermissionDenied, "{m}");
    assert!(
        listed(admin.all_functions().await.unwrap()).contains(&pi.id),
        "an admin sees every function"
    );

    // The audit trail names who did what; a forged token is there too.
    let forged = connect(port, Some("ferry_nobody_0000")).await;
    let _ = code(forged.functions().await);
    let path = dir.path().join("data").join(ferry_service::AUDIT_LOG_FILE);
    let wanted = |lines: &[serde_json::Value]| {
        let has = |event: &str, user: &str| {
            lines
                .iter()
                .any(|l| l["event"] == event && l["user"] == user)
        };
        has("register", "ada")
            && has("register", "bob")
            && has("submit", "ada")
            && has("submit", "bob")
            && has("unauthenticated", "")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each audit line is JSON"))
            .collect();
        if wanted(&lines) || Instant::now() > deadline {
            break lines;
        }
        tokio::task::yield_now().await;
    };
    assert!(wanted(&lines), "{lines:#?}");
    let submit = lines
        .iter()
        .find(|l| l["event"] == "submit" && l["user"] == "bob")
        .unwrap();
    assert_eq!(submit["endpoint"], "local");
    assert_eq!(submit["function"], pi.id.as_str());
    assert_eq!(submit["export"], "pi");
    let uploads: Vec<bool> = lines
        .iter()
        .filter(|l| l["event"] == "register")
        .map(|l| l["uploaded"].as_bool().unwrap())
        .collect();
    assert_eq!(uploads, [true, false], "ada uploaded; bob's was known");
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("ferry_nobody_0000"),
        "no secret is written to the trail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_ends_its_open_watch_and_session() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let admin = {
        // No endpoint yet: the service alone.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(c) = client(port).await
                && c.status().await.is_ok()
            {
                break c;
            }
            assert!(Instant::now() < deadline, "the service did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // An endpoint serving with the credential its registration printed.
    let (_, credential) = admin.register_endpoint("worker", false).await.unwrap();
    let mut worker = endpoint_with(
        port,
        "worker",
        &dir.path().join("cache"),
        1,
        &["--gpu", "none", "--credential", &credential],
    );
    let admin = ready(port, "worker", 1).await;
    admin.add_user("ada", false).await.unwrap();
    admin
        .set_endpoint_policy(
            "worker",
            ferry_client::EndpointPolicy {
                submitters: vec!["ada".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (info, ada_token) = admin.create_token(Some("ada"), "", None).await.unwrap();
    let ada = connect(port, Some(&ada_token)).await;
    let pi = ada.register(&guest_bytes("pi")).await.unwrap();
    let first = ada
        .submit::<_, f64>("worker", &pi.id, "pi", &(1_000u64, 1u64))
        .await
        .unwrap();
    assert_eq!(first.await.unwrap(), estimate::pi(1_000, 1));

    // Ada watches a task that will not finish soon.
    let long = ada
        .submit::<_, f64>("worker", &pi.id, "pi", &(400_000_000u64, 1u64))
        .await
        .unwrap();
    let mut tasks = TasksClient::new(raw(port, Some(&ada_token)).await);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::WatchRequest {
        task_ids: vec![long.task_id().to_owned()],
    })
    .await
    .unwrap();
    let mut events = tasks
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    admin.revoke_token(&info.id).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => break None,
                Err(s) => break Some(s),
            }
        }
    })
    .await
    .expect("the watch ends");
    let s = end.expect("with a status");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    assert!(s.message().contains("revoked"), "{s:?}");
    drop(tx);

    // The worker's credential, rotated: its session ends and the agent
    // stops, saying why, instead of knocking forever.
    admin.cancel(long.task_id()).await.unwrap();
    admin.register_endpoint("worker", true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = worker.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the endpoint kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let s = admin.status().await.unwrap();
    let w = s.endpoints.iter().find(|e| e.name == "worker").unwrap();
    assert_eq!(w.sessions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoints_owner_decides_who_submits_which_functions_and_what_limits() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let _local = endpoint(port, "local", &dir.path().join("local"), 1);
    let admin = ready(port, "local", 1).await;
    let mut tokens = Vec::new();
    for user in ["ada", "bob"] {
        admin.add_user(user, false).await.unwrap();
        tokens.push(admin.create_token(Some(user), "", None).await.unwrap().1);
    }
    // Ada registers her lab's endpoint with the CLI and starts it with the
    // credential it printed.
    let out = ferry_as(port, &tokens[0], &["endpoint", "register", "lab"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let credential = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(credential.starts_with("ferryep_"), "{credential}");
    let _lab = endpoint_with(
        port,
        "lab",
        &dir.path().join("lab"),
        1,
        &["--gpu", "none", "--credential", &credential],
    );
    ready(port, "lab", 1).await;
    let ada = connect(port, Some(&tokens[0])).await;
    let bob = connect(port, Some(&tokens[1])).await;
    let pi = ada.register(&guest_bytes("pi")).await.unwrap();
    let faults = ada.register(&guest_bytes("faults")).await.unwrap();
    let v: f64 = ada
        .submit("lab", &pi.id, "pi", &(1_000u64, 1u64))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(v, estimate::pi(1_000, 1));
    // By default she alone may submit.
    let (got, message) = code(
        bob.submit::<_, f64>("lab", &pi.id, "pi", &(1u64, 1u64))
            .await,
    );
    assert_eq!(got, Code::PermissionDenied, "{message}");
    assert!(
        message.contains("may not submit to endpoint `lab`"),
        "{message}"
    );
    // Bob may not set her policy.
    let (got, _) = code(
        bob.set_endpoint_policy("lab", ferry_client::EndpointPolicy::default())
            .await,
    );
    assert_eq!(got, Code::PermissionDenied);

    let out = ferry_as(
        port,
        &tokens[0],
        &[
            "endpoint",
            "policy",
            "lab",
            "--submitters",
            "bob",
            "--allow-function",
            &pi.id,
            "--max-timeout",
            "10s",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: f64 = bob
        .submit("lab", &pi.id, "pi", &(1_000u64, 2u64))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(v, estimate::pi(1_000, 2));
    let (got, message) = code(
        bob.submit::<_, ()>("lab", &faults.id, "boom", &("x",))
            .await,
    );
    assert_eq!(got, Code::PermissionDenied, "{message}");
    assert!(
        message.contains(&faults.id),
        "names the function: {message}"
    );
    let long = SubmitOptions {
        limits: Some(ferry_client::Limits {
            timeout_ms: 60_000,
            ..Default::default()
        }),
        ..SubmitOptions::default()
    };
    let (got, message) = code(
        bob.submit_with::<_, f64>("lab", &pi.id, "pi", &(1u64, 1u64), &long)
            .await,
    );
    assert_eq!(got, Code::InvalidArgument, "{message}");
    assert!(message.contains("ceiling of 10.000s"), "{message}");
    // Nothing refused was queued.
    let s = admin.status().await.unwrap();
    let lab = s.endpoints.iter().find(|e| e.name == "lab").unwrap();
    assert_eq!(lab.queued, 0);
    let listed = bob.endpoints().await.unwrap();
    assert_eq!(listed.len(), 1, "bob sees the endpoint he may use");
    assert_eq!(listed[0].owner, "ada");

    // Ada sees what runs on her endpoint, none of it Bob's data; Bob sees
    // none of hers, and of the endpoints only the one he may use.
    let on_lab = ada.list_tasks(&[], "lab", "", 100).await.unwrap().tasks;
    assert_eq!(on_lab.len(), 2, "hers and his: {on_lab:?}");
    let his = bob.list_tasks(&[], "", "", 100).await.unwrap().tasks;
    assert_eq!(his.len(), 1);
    let seen = ada.task(&his[0].id).await.unwrap();
    assert_eq!(seen.state(), ferry_client::State::Succeeded);
    assert!(seen.result.is_empty() && seen.output.is_none(), "{seen:?}");
    assert!(!bob.task(&his[0].id).await.unwrap().result.is_empty());
    let hers = on_lab.iter().find(|t| t.id != his[0].id).unwrap();
    let (got, _) = code(bob.task(&hers.id).await);
    assert_eq!(got, Code::PermissionDenied);
    let names = |s: &pb::StatusResponse| -> Vec<String> {
        s.endpoints.iter().map(|e| e.name.clone()).collect()
    };
    assert_eq!(names(&bob.status().await.unwrap()), vec!["lab"]);
    let mut all = names(&admin.status().await.unwrap());
    all.sort();
    assert_eq!(all, vec!["lab", "local"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_checks_its_owners_rules_again_whatever_the_service_admits() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    let pi_bytes = guest_bytes("pi");
    let pi_id = blake3::hash(&pi_bytes).to_hex().to_string();
    // Its own config says: pi alone, for ada alone.
    let _guarded = endpoint_with(
        port,
        "guarded",
        &dir.path().join("cache"),
        1,
        &[
            "--gpu",
            "none",
            "--submitter",
            "ada",
            "--allow-function",
            &pi_id,
        ],
    );
    let admin = ready(port, "guarded", 1).await;
    // The service's policy lets everyone submit anything.
    let (ada, bob) = &ada_and_bob(&admin, port, "guarded").await;
    let pi = ada.register(&pi_bytes).await.unwrap();
    let faults = ada.register(&guest_bytes("faults")).await.unwrap();
    let v: f64 = ada
        .submit("guarded", &pi.id, "pi", &(1_000u64, 1u64))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(v, estimate::pi(1_000, 1));
    let denied = |r: Result<f64, ClientError>| match r {
        Err(ClientError::Task { kind, message, .. }) => {
            assert_eq!(kind, ferry_client::FailureKind::Denied, "{message}");
            message
        }
        other => panic!("expected the endpoint to refuse, got {other:?}"),
    };
    let m = denied(
        bob.submit::<_, f64>("guarded", &pi.id, "pi", &(1_000u64, 1u64))
            .await
            .unwrap()
            .await,
    );
    assert!(m.contains("runs no tasks for user `bob`"), "{m}");
    let m = denied(
        ada.submit::<_, f64>("guarded", &faults.id, "boom", &("x",))
            .await
            .unwrap()
            .await,
    );
    assert!(m.contains(&faults.id), "names the function: {m}");
    // And it keeps serving.
    let v: f64 = ada
        .submit("guarded", &pi.id, "pi", &(1_000u64, 2u64))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(v, estimate::pi(1_000, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_a_quota_the_answer_names_it_and_the_client_waits_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve_with(
        &dir.path().join("data"),
        port,
        &[
            "--quota-queued",
            "2",
            "--quota-rps",
            "2",
            "--quota-upload",
            "1KiB",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let admin = loop {
        if let Ok(c) = client(port).await
            && c.whoami().await.is_ok()
        {
            break c;
        }
        assert!(Instant::now() < deadline, "the service did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    admin.add_user("ada", false).await.unwrap();
    admin.register_endpoint("idle", false).await.unwrap();
    admin
        .set_endpoint_policy(
            "idle",
            ferry_client::EndpointPolicy {
                submitters: vec!["*".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (_, token) = admin.create_token(Some("ada"), "", None).await.unwrap();
    let pi = admin.register(&guest_bytes("pi")).await.unwrap();
    let ada = connect(port, Some(&token))
        .await
        .with_quota_patience(Duration::ZERO);

    // Requests a second: a burst of two, then refused, naming the quota.
    let mut refused = None;
    for _ in 0..10 {
        if let Err(e) = ada.whoami().await {
            refused = Some(e.to_string());
            break;
        }
    }
    let m = refused.expect("ten calls at once pass a quota of two a second");
    assert!(m.contains("quota requests-per-second (2)"), "{m}");
    assert!(m.contains("ResourceExhausted"), "{m}");

    // Bytes uploaded an hour: an upload past the quota is refused outright,
    // even by a patient client (no wait would let it through).
    let patient = connect(port, Some(&token)).await;
    let m = patient
        .upload_bytes(&[7u8; 4096])
        .await
        .unwrap_err()
        .to_string();
    assert!(m.contains("quota upload-bytes-per-hour (1024)"), "{m}");

    // Unfinished tasks: two wait for an endpoint that never comes; a third
    // is refused, naming the quota ...
    let mut queued = Vec::new();
    for seed in 0..2u64 {
        queued.push(
            patient
                .submit::<_, f64>("idle", &pi.id, "pi", &(10u64, seed))
                .await
                .unwrap(),
        );
    }
    let m = loop {
        match ada
            .submit::<_, f64>("idle", &pi.id, "pi", &(10u64, 9u64))
            .await
        {
            Err(e) if e.to_string().contains("requests-per-second") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => break e.to_string(),
            Ok(_) => panic!("a third task passed a quota of two"),
        }
    };
    assert!(
        m.contains("quota queued-tasks (2) reached for user `ada`"),
        "{m}"
    );
    // ... and a patient client backs off until one ends, then goes in.
    let third = tokio::spawn({
        let patient = patient.clone();
        let id = pi.id.clone();
        async move {
            patient
                .submit::<_, f64>("idle", &id, "pi", &(10u64, 3u64))
                .await
                .map(|f| f.task_id().to_owned())
        }
    });
    admin.cancel(queued[0].task_id()).await.unwrap();
    let id = tokio::time::timeout(Duration::from_secs(60), third)
        .await
        .expect("the backed-off submission went in once there was room")
        .unwrap()
        .unwrap();
    assert_eq!(
        admin.task(&id).await.unwrap().state(),
        ferry_client::State::WaitingForEndpoint
    );
}

/// `n` bytes no other test makes.
fn fresh(n: usize, seed: u8) -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut bytes = nanos.to_le_bytes().to_vec();
    bytes.resize(n, seed);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_is_read_by_its_uploader_and_the_owner_of_the_task_that_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve_with(&dir.path().join("data"), port, &["--quota-blobs", "1MiB"]);
    let _endpoint = endpoint(port, "local", &dir.path().join("cache"), 2);
    let admin = ready(port, "local", 1).await;
    let (ada, bob) = &ada_and_bob(&admin, port, "local").await;
    let probe = admin.register(&guest_bytes("blob-probe")).await.unwrap();
    let checksum = |c: &Client, blob: &BlobRef| {
        let args = format!(r#"[{{"hash":"{}","size":{}}}, 0]"#, blob.hash, blob.size);
        let (c, id) = (c.clone(), probe.id.clone());
        async move {
            c.submit_json("local", &id, "checksum", &args, &SubmitOptions::default())
                .await
        }
    };

    // Hers: he neither sees it, nor fetches it, nor has a task read it.
    let secret = fresh(5000, 1);
    let hers = ada.upload_bytes(&secret).await.unwrap().blob;
    assert_eq!(ada.blob_size(&hers.hash).await.unwrap(), Some(5000));
    assert_eq!(bob.blob_size(&hers.hash).await.unwrap(), None);
    let (got, m) = code(bob.download(&hers.hash, dir.path().join("stolen")).await);
    assert_eq!(got, Code::NotFound, "{m}");
    assert!(m.contains("unknown blob"), "{m}");
    assert!(!dir.path().join("stolen").exists());
    let (got, m) = code(checksum(bob, &hers).await);
    assert_eq!(got, Code::NotFound, "{m}");
    assert!(m.contains("may name only blobs"), "{m}");
    // Her own task reads it.
    let id = checksum(ada, &hers).await.unwrap();
    let r: WitResult<String, String> = ada.result(&id).await.unwrap();
    assert_eq!(Result::from(r).unwrap(), hers.hash);
    // The same bytes, uploaded by him, prove he has them: now he may.
    let his = bob.upload_bytes(&secret).await.unwrap();
    assert_eq!(his.blob.hash, hers.hash);
    assert_eq!(bob.blob_size(&hers.hash).await.unwrap(), Some(5000));

    // What her task writes is hers; his identical task's output is his
    // too, though the service had the bytes already.
    let generate = |c: &Client| {
        let (c, id) = (c.clone(), probe.id.clone());
        async move {
            let r: WitResult<BlobRef, String> = c
                .submit("local", &id, "generate", &(3000u64, 77u64))
                .await
                .unwrap()
                .await
                .unwrap();
            Result::from(r).unwrap()
        }
    };
    let made = generate(ada).await;
    assert_eq!(ada.blob_size(&made.hash).await.unwrap(), Some(3000));
    assert_eq!(bob.blob_size(&made.hash).await.unwrap(), None);
    let again = generate(bob).await;
    assert_eq!(again.hash, made.hash);
    assert_eq!(bob.blob_size(&made.hash).await.unwrap(), Some(3000));
    let back = dir.path().join("back");
    bob.download(&made.hash, &back).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap().len(), 3000);
    // An admin reads any blob.
    assert_eq!(admin.blob_size(&hers.hash).await.unwrap(), Some(5000));

    // Blob-store bytes: she holds 8000, and 600000 more that no task names;
    // half a mebibyte more is refused, naming the quota, at once (no wait
    // frees room), and nothing is kept.
    let loose = ada.upload_bytes(&fresh(600_000, 2)).await.unwrap();
    let half = fresh(1 << 19, 3);
    let m = ada.upload_bytes(&half).await.unwrap_err().to_string();
    assert!(m.contains("quota blob-store-bytes (1048576)"), "{m}");
    assert!(m.contains("608000 bytes"), "{m}");
    let half_hash = blake3::hash(&half).to_hex().to_string();
    assert_eq!(admin.blob_size(&half_hash).await.unwrap(), None);
    // A gc removes what no task names, and her bytes are free again.
    let report = admin.gc_blobs(Duration::ZERO, false).await.unwrap();
    assert!(
        report.removed_hashes.contains(&loose.blob.hash),
        "{report:?}"
    );
    assert_eq!(ada.blob_size(&hers.hash).await.unwrap(), Some(5000));
    let kept = ada.upload_bytes(&half).await.unwrap();
    assert_eq!(kept.blob.size, 1 << 19);
}
