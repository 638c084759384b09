//! The Job a block becomes, read back as typed objects; the states Jobs map
//! to; and the provider against a stand-in API server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

fn block(id: &str) -> BlockSpec {
    BlockSpec {
        block: id.into(),
        workers: 3,
        command: vec![
            "/usr/local/bin/ferry-endpoint".into(),
            "worker".into(),
            "--name".into(),
            "hpc lab".into(),
        ],
        env: BTreeMap::from([
            ("FERRY_SERVICE".to_owned(), "https://ferry:7443".to_owned()),
            ("FERRY_BLOCK".to_owned(), id.to_owned()),
            (CREDENTIAL_ENV.to_owned(), "s3cret-token".to_owned()),
        ]),
        work_dir: "/tmp/ferry-blocks".into(),
    }
}

fn config() -> KubernetesConfig {
    KubernetesConfig {
        image: "registry.example/ferry-worker:1.0".into(),
        ..KubernetesConfig::default()
    }
}

fn pod_spec(job: &Job) -> &PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn container(job: &Job) -> &Container {
    &pod_spec(job).containers[0]
}

fn env_of(job: &Job) -> Vec<&EnvVar> {
    container(job).env.iter().flatten().collect()
}

fn quantities(q: &Option<BTreeMap<String, Quantity>>) -> BTreeMap<&str, &str> {
    q.iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_str()))
        .collect()
}

#[test]
fn odd_block_ids_make_valid_distinct_job_names() {
    assert_eq!(job_name("ep-7"), "ferry-ep-7");
    let long = "x".repeat(100);
    let ids = [
        "ep-7",
        "EP-7",
        "ep_7",
        "ep.7",
        "--ep 7--",
        "Ünïcode-blöck",
        "",
        "-",
        long.as_str(),
        &format!("{long}-1"),
        &format!("{long}-2"),
        "a/b:c@d",
    ];
    let mut names = std::collections::BTreeSet::new();
    for id in ids {
        let name = job_name(id);
        assert!(is_dns_label(&name), "`{id}` gave `{name}`");
        assert!(name.starts_with("ferry-"), "{name}");
        assert!(names.insert(name.clone()), "`{id}` gave `{name}` twice");
        let job = job_for(&config(), &block(id));
        assert_eq!(job.metadata.name.as_deref(), Some(name.as_str()));
        let labels = job.metadata.labels.as_ref().unwrap();
        assert!(is_label_value(&labels[BLOCK_LABEL]), "{labels:?}");
    }
    // The same id, the same name: a retried submit does not make a second Job.
    assert_eq!(job_name("EP-7"), job_name("EP-7"));
    assert!(job_name(&long).len() <= 63);
}

#[test]
fn a_block_becomes_one_job_with_every_setting() {
    let c = KubernetesConfig {
        namespace: "science".into(),
        image_pull_policy: Some("IfNotPresent".into()),
        cpu: Some("2".into()),
        memory: Some("4Gi".into()),
        gpus: 1,
        node_selector: BTreeMap::from([("pool".to_owned(), "gpu".to_owned())]),
        service_account: Some("ferry-worker".into()),
        walltime: Some("1h30m".into()),
        labels: BTreeMap::from([
            ("team".to_owned(), "astro".to_owned()),
            // The provider's own labels win.
            (BLOCK_LABEL.to_owned(), "not-this".to_owned()),
        ]),
        ..config()
    };
    let job = job_for(&c, &block("ep-4"));
    assert_eq!(job.metadata.name.as_deref(), Some("ferry-ep-4"));
    assert_eq!(job.metadata.namespace.as_deref(), Some("science"));
    let labels = BTreeMap::from([
        (NAME_LABEL.to_owned(), "ferry-worker".to_owned()),
        (BLOCK_LABEL.to_owned(), "ep-4".to_owned()),
        ("team".to_owned(), "astro".to_owned()),
    ]);
    assert_eq!(job.metadata.labels.as_ref(), Some(&labels));

    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.parallelism, Some(3));
    assert_eq!(spec.completions, Some(3));
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(5400));
    assert_eq!(spec.ttl_seconds_after_finished, Some(600));
    assert_eq!(
        spec.template.metadata.as_ref().unwrap().labels.as_ref(),
        Some(&labels)
    );

    let pod = pod_spec(&job);
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("ferry-worker"));
    assert_eq!(
        pod.node_selector
            .as_ref()
            .unwrap()
            .get("pool")
            .map(String::as_str),
        Some("gpu")
    );
    assert_eq!(pod.containers.len(), 1);
    assert!(pod.volumes.is_none());

    let w = container(&job);
    assert_eq!(w.name, "worker");
    assert_eq!(
        w.image.as_deref(),
        Some("registry.example/ferry-worker:1.0")
    );
    assert_eq!(w.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(w.command.as_ref(), Some(&block("ep-4").command));
    let resources = w.resources.as_ref().unwrap();
    assert_eq!(
        quantities(&resources.requests),
        BTreeMap::from([("cpu", "2"), ("memory", "4Gi")])
    );
    assert_eq!(
        quantities(&resources.limits),
        BTreeMap::from([("cpu", "2"), ("memory", "4Gi"), ("nvidia.com/gpu", "1")])
    );

    // Without a credential Secret the block's environment goes as it is, sorted.
    let env: Vec<(&str, Option<&str>)> = env_of(&job)
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(
        env,
        [
            ("FERRY_BLOCK", Some("ep-4")),
            (CREDENTIAL_ENV, Some("s3cret-token")),
            ("FERRY_SERVICE", Some("https://ferry:7443")),
        ]
    );
}

#[test]
fn a_plain_config_asks_for_no_resources() {
    let job = job_for(&config(), &block("ep-1"));
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.active_deadline_seconds, None);
    let pod = pod_spec(&job);
    assert_eq!(pod.node_selector, None);
    assert_eq!(pod.service_account_name, None);
    assert_eq!(container(&job).resources, None);
    assert_eq!(container(&job).volume_mounts, None);
    // A GPU alone is a limit; its request follows it.
    let gpus = job_for(
        &KubernetesConfig {
            gpus: 2,
            ..config()
        },
        &block("ep-1"),
    );
    let r = container(&gpus).resources.clone().unwrap();
    assert_eq!(r.requests, None);
    assert_eq!(
        quantities(&r.limits),
        BTreeMap::from([("nvidia.com/gpu", "2")])
    );
}

#[test]
fn a_credential_secret_keeps_the_credential_out_of_the_job() {
    let c = KubernetesConfig {
        credential_secret: Some("ferry-credential".into()),
        ..config()
    };
    let job = job_for(&c, &block("ep-2"));
    let creds: Vec<&EnvVar> = env_of(&job)
        .into_iter()
        .filter(|e| e.name == CREDENTIAL_ENV)
        .collect();
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert_eq!(creds[0].value, None);
    let r = creds[0]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(r.name, "ferry-credential");
    assert_eq!(r.key, "credential");
    let names: Vec<&str> = env_of(&job).iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["FERRY_BLOCK", CREDENTIAL_ENV, "FERRY_SERVICE"]);
    // Nowhere in what is sent to the cluster.
    let sent = k8s_openapi::serde_json::to_string(&job).unwrap();
    assert!(!sent.contains("s3cret-token"), "{sent}");
}

#[test]
fn the_ca_secret_is_mounted_and_named() {
    let c = KubernetesConfig {
        ca_secret: Some("ferry-ca".into()),
        ..config()
    };
    let job = job_for(&c, &block("ep-3"));
    let volumes = pod_spec(&job).volumes.as_ref().unwrap();
    assert_eq!(volumes.len(), 1);
    assert_eq!(
        volumes[0].secret.as_ref().unwrap().secret_name.as_deref(),
        Some("ferry-ca")
    );
    let mounts = container(&job).volume_mounts.as_ref().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].name, volumes[0].name);
    assert_eq!(mounts[0].mount_path, "/etc/ferry/ca");
    assert_eq!(mounts[0].read_only, Some(true));
    let ca = env_of(&job)
        .into_iter()
        .find(|e| e.name == "FERRY_CA")
        .unwrap();
    assert_eq!(ca.value.as_deref(), Some("/etc/ferry/ca/ca.crt"));
}

#[test]
fn walltimes_are_read() {
    for (text, secs) in [
        ("3600", 3600),
        ("1h", 3600),
        ("30m", 1800),
        ("90s", 90),
        ("1h30m", 5400),
        (" 2d ", 172_800),
    ] {
        assert_eq!(parse_walltime(text), Ok(secs), "{text}");
    }
    for bad in [
        "",
        "0",
        "0m",
        "-5",
        "1.5h",
        "h",
        "1x",
        "1h30",
        "99999999999999999999d",
    ] {
        assert!(parse_walltime(bad).is_err(), "{bad}");
    }
}

#[test]
fn config_is_read_from_toml_and_checked() {
    #[derive(Deserialize)]
    struct Endpoint {
        provider: Providers,
    }
    #[derive(Deserialize)]
    struct Providers {
        kubernetes: KubernetesConfig,
    }
    let e: Endpoint = toml::from_str(
        r#"
        [provider.kubernetes]
        image = "registry.example/ferry-worker:1.0"
        namespace = "science"
        cpu = "2"
        memory = "4Gi"
        gpus = 1
        walltime = "30m"
        credential_secret = "ferry-credential"
        node_selector = { pool = "gpu" }
        labels = { team = "astro" }
        "#,
    )
    .unwrap();
    let c = e.provider.kubernetes;
    assert_eq!(c.namespace, "science");
    assert_eq!(c.gpus, 1);
    assert_eq!(c.walltime.as_deref(), Some("30m"));
    assert_eq!(c.node_selector["pool"], "gpu");
    assert_eq!(c.labels["team"], "astro");
    assert_eq!(c.service_account, None);
    let p = KubernetesProvider::new(c).unwrap();
    assert_eq!(p.kind(), "kubernetes");

    let d: KubernetesConfig = toml::from_str("image = \"w:1\"").unwrap();
    assert_eq!(d.namespace, "default");
    assert_eq!(d.gpus, 0);

    let e = toml::from_str::<KubernetesConfig>("image = \"w:1\"\ngpu = 1").unwrap_err();
    assert!(e.to_string().contains("gpu"), "{e}");

    let refused = |c: KubernetesConfig, setting: &str| {
        let e = KubernetesProvider::new(c).err().unwrap().to_string();
        assert!(e.contains(&format!("`{setting}`")), "{e}");
    };
    refused(KubernetesConfig::default(), "image");
    refused(toml::from_str("namespace = \"x\"").unwrap(), "image");
    refused(
        KubernetesConfig {
            image: "  ".into(),
            ..config()
        },
        "image",
    );
    refused(
        KubernetesConfig {
            walltime: Some("soon".into()),
            ..config()
        },
        "walltime",
    );
    refused(
        KubernetesConfig {
            namespace: "Science".into(),
            ..config()
        },
        "namespace",
    );
    refused(
        KubernetesConfig {
            image_pull_policy: Some("always".into()),
            ..config()
        },
        "image_pull_policy",
    );
    refused(
        KubernetesConfig {
            credential_secret: Some(String::new()),
            ..config()
        },
        "credential_secret",
    );
}

fn job_with(status: Option<JobStatus>) -> Job {
    Job {
        status,
        ..job_for(&config(), &block("ep-9"))
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(Into::into),
        message: message.map(Into::into),
        ..JobCondition::default()
    }
}

fn ended(conditions: Vec<JobCondition>) -> JobState {
    state_of(&job_with(Some(JobStatus {
        conditions: Some(conditions),
        ..JobStatus::default()
    })))
}

#[test]
fn job_states_follow_counts_and_conditions() {
    assert_eq!(state_of(&job_with(None)), JobState::Pending);
    assert_eq!(
        state_of(&job_with(Some(JobStatus::default()))),
        JobState::Pending
    );
    // Pods made but none ready: still waiting for a node or an image.
    let waiting = JobStatus {
        active: Some(3),
        ready: Some(0),
        ..JobStatus::default()
    };
    assert_eq!(state_of(&job_with(Some(waiting))), JobState::Pending);
    let ready = JobStatus {
        active: Some(3),
        ready: Some(1),
        ..JobStatus::default()
    };
    assert_eq!(state_of(&job_with(Some(ready))), JobState::Running);
    // A cluster that does not count ready pods: active is running.
    let active = JobStatus {
        active: Some(1),
        ..JobStatus::default()
    };
    assert_eq!(state_of(&job_with(Some(active))), JobState::Running);
    let some_done = JobStatus {
        active: Some(2),
        ready: Some(0),
        succeeded: Some(1),
        ..JobStatus::default()
    };
    assert_eq!(state_of(&job_with(Some(some_done))), JobState::Running);

    assert_eq!(
        ended(vec![condition("Complete", "True", None, None)]),
        JobState::Ended(JobEnd::Completed)
    );
    assert_eq!(
        ended(vec![condition(
            "Failed",
            "True",
            Some("DeadlineExceeded"),
            Some("Job was active longer than specified deadline"),
        )]),
        JobState::Ended(JobEnd::TimedOut)
    );
    assert_eq!(
        ended(vec![
            condition("Suspended", "False", None, None),
            condition(
                "Failed",
                "True",
                Some("BackoffLimitExceeded"),
                Some("Job has reached the specified backoff limit"),
            ),
        ]),
        JobState::Ended(JobEnd::Failed(
            "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
        ))
    );
    assert_eq!(
        ended(vec![condition("Failed", "True", None, None)]),
        JobState::Ended(JobEnd::Failed("the Job failed".into()))
    );
    // A condition that is not (yet) true ends nothing.
    assert_eq!(
        ended(vec![condition("Complete", "False", None, None)]),
        JobState::Pending
    );

    let mut deleting = job_with(Some(JobStatus {
        active: Some(1),
        ..JobStatus::default()
    }));
    deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    assert_eq!(state_of(&deleting), JobState::Ended(JobEnd::Cancelled));
}

/// One request the stand-in API server saw: method, path, body.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// An API server that knows one running Job, `ferry-ep-1` in `science`,
/// creates what it is sent, and forbids deleting `ferry-ep-3`.
async fn api_server() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut head = String::new();
                    if read.read_line(&mut head).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        read.read_line(&mut line).await.unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    read.read_exact(&mut body).await.unwrap();
                    let body = String::from_utf8(body).unwrap();
                    let mut words = head.split_whitespace();
                    let method = words.next().unwrap().to_owned();
                    let target = words.next().unwrap();
                    let path = target.split('?').next().unwrap().to_owned();
                    let (code, reply) = answer(&method, &path, &body);
                    log.lock().unwrap().push((method, path, body));
                    let response = format!(
                        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    write.write_all(response.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (url, seen)
}

fn answer(method: &str, path: &str, body: &str) -> (u16, String) {
    const JOBS: &str = "/apis/batch/v1/namespaces/science/jobs";
    let status = |code: u16, reason: &str, message: &str| {
        let s = format!(
            r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"{message}","reason":"{reason}","code":{code}}}"#
        );
        (code, s)
    };
    let running = || {
        let mut job = job_for(
            &KubernetesConfig {
                namespace: "science".into(),
                ..config()
            },
            &block("ep-1"),
        );
        job.status = Some(JobStatus {
            active: Some(3),
            ready: Some(3),
            ..JobStatus::default()
        });
        k8s_openapi::serde_json::to_string(&job).unwrap()
    };
    match (method, path.strip_prefix(JOBS)) {
        ("POST", Some("")) => (201, body.to_owned()),
        ("GET", Some("/ferry-ep-1")) | ("DELETE", Some("/ferry-ep-1")) => (200, running()),
        ("DELETE", Some("/ferry-ep-3")) => status(
            403,
            "Forbidden",
            "jobs.batch \\\"ferry-ep-3\\\" is forbidden: User \\\"ferry\\\" cannot delete resource \\\"jobs\\\"",
        ),
        (_, Some(name)) => status(
            404,
            "NotFound",
            &format!(
                "jobs.batch \\\"{}\\\" not found",
                name.trim_start_matches('/')
            ),
        ),
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

#[tokio::test]
async fn the_provider_creates_reads_and_deletes_jobs() {
    let (url, seen) = api_server().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let p = KubernetesProvider::with_client(
        KubernetesConfig {
            namespace: "science".into(),
            credential_secret: Some("ferry-credential".into()),
            ..config()
        },
        client,
    )
    .unwrap();
    let run = async {
        let id = p.submit(&block("ep-1")).await.unwrap();
        assert_eq!(id, JobId("ferry-ep-1".into()));
        let states = p
            .status(&[id.clone(), JobId("ferry-ep-2".into())])
            .await
            .unwrap();
        assert_eq!(
            states,
            [JobState::Running, JobState::Ended(JobEnd::Vanished)]
        );
        p.cancel(&id).await.unwrap();
        // Already gone: nothing left to end.
        p.cancel(&JobId("ferry-ep-2".into())).await.unwrap();
        let e = p
            .cancel(&JobId("ferry-ep-3".into()))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("`ferry-ep-3`") && e.contains("forbidden"), "{e}");
        assert!(!e.contains("Status {"), "{e}");
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the provider answered");

    let seen = seen.lock().unwrap();
    let (method, path, body) = &seen[0];
    assert_eq!(method, "POST");
    assert_eq!(path, "/apis/batch/v1/namespaces/science/jobs");
    let sent: Job = k8s_openapi::serde_json::from_str(body).unwrap();
    assert_eq!(sent, job_for(&p.config, &block("ep-1")));
    assert!(!body.contains("s3cret-token"), "{body}");
    let delete = seen
        .iter()
        .find(|(m, p, _)| m == "DELETE" && p.ends_with("/ferry-ep-1"))
        .unwrap();
    assert!(delete.2.contains("Background"), "{}", delete.2);
}
