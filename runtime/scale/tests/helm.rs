//! The Helm chart (`deploy/helm/ferry`), linted and rendered by a real helm
//! (`.ci/setup` puts one at `target/tools/helm/helm`; `FERRY_HELM` names
//! another): the service as a StatefulSet with a claim for its store, the
//! endpoint manager as a Deployment with its config, its rights and its
//! secrets, with TLS off and on, with secrets created and referenced, and
//! with GPU workers. No cluster is involved: what is checked is what the
//! chart would ask one for, and that the Kubernetes provider reads the
//! config the chart writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry_scale::KubernetesConfig;
use serde_yaml::Value;

const RELEASE: &str = "fab";
const NAMESPACE: &str = "science";
/// What the chart's names start with: the release name, then the chart's.
const FULL: &str = "fab-ferry";
const CREDENTIAL: &str = "ferryep_7_s3cret";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    workspace().join("deploy/helm/ferry")
}

/// A helm binary, run with its own cache and config directories so that
/// nothing of this machine's helm set-up counts.
struct Helm {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// The helm to use; none here is a printed skip, except under `CI=true`.
    fn find(test: &str) -> Option<Helm> {
        let bin = match std::env::var_os("FERRY_HELM") {
            Some(p) => PathBuf::from(p),
            None => workspace().join("target/tools/helm/helm"),
        };
        if !bin.is_file() {
            assert!(
                std::env::var_os("CI").is_none_or(|v| v != "true"),
                "{test}: no helm at {} (FERRY_HELM, else target/tools/helm/helm), and CI=true needs one: bash .ci/setup fetches it",
                bin.display()
            );
            eprintln!(
                "{test}: skipped, no helm at {} (bash .ci/setup fetches one; FERRY_HELM names another)",
                bin.display()
            );
            return None;
        }
        let home = tempfile::tempdir().expect("a directory for helm's own files");
        Some(Helm { bin, home })
    }

    fn run(&self, args: &[&str]) -> Output {
        let h = self.home.path();
        Command::new(&self.bin)
            .args(args)
            .env("HELM_CACHE_HOME", h.join("cache"))
            .env("HELM_CONFIG_HOME", h.join("config"))
            .env("HELM_DATA_HOME", h.join("data"))
            .env("KUBECONFIG", h.join("no-kubeconfig"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }

    /// `helm template` of the chart into the test namespace with `values`
    /// (`--set`, `--set-file`, … pairs); the documents it prints.
    fn template(&self, values: &[&str]) -> Rendered {
        let out = self.template_output(values);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "helm template {values:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Rendered::parse(&stdout)
    }

    fn template_output(&self, values: &[&str]) -> Output {
        let chart = chart();
        let mut args = vec![
            "template",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
        ];
        args.extend_from_slice(values);
        self.run(&args)
    }
}

/// The manifests one `helm template` rendered.
struct Rendered {
    docs: Vec<Value>,
}

impl Rendered {
    fn parse(text: &str) -> Rendered {
        let mut docs = Vec::new();
        for d in serde_yaml::Deserializer::from_str(text) {
            let v = <Value as serde::Deserialize>::deserialize(d)
                .unwrap_or_else(|e| panic!("helm printed YAML that does not parse: {e}\n{text}"));
            if !v.is_null() {
                docs.push(v);
            }
        }
        Rendered { docs }
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    /// The one manifest of `kind`.
    fn one(&self, kind: &str) -> &Value {
        let all = self.all(kind);
        assert_eq!(
            all.len(),
            1,
            "one {kind} expected, got {}: {:?}",
            all.len(),
            self.kinds()
        );
        all[0]
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.all(kind)
            .into_iter()
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name} in {:?}", self.kinds()))
    }

    /// (kind, name) of every manifest.
    fn kinds(&self) -> BTreeSet<(String, String)> {
        self.docs
            .iter()
            .map(|d| (text(&d["kind"]).to_owned(), name(d).to_owned()))
            .collect()
    }

    /// The manager's config, parsed as the endpoint will parse it.
    fn endpoint_toml(&self) -> toml::Table {
        let cm = self.one("ConfigMap");
        let t = text(&cm["data"]["endpoint.toml"]);
        toml::from_str(t).unwrap_or_else(|e| panic!("endpoint.toml is not TOML: {e}\n{t}"))
    }
}

/// `[provider.kubernetes]` as the Kubernetes provider itself reads it
/// (unknown keys refused).
fn provider_config(t: &toml::Table) -> KubernetesConfig {
    toml_at(t, &["provider", "kubernetes"])
        .clone()
        .try_into()
        .unwrap_or_else(|e| panic!("the provider refuses [provider.kubernetes]: {e}"))
}

fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("a string expected, got {v:?}"))
}

fn name(v: &Value) -> &str {
    text(&v["metadata"]["name"])
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("a list expected, got {v:?}"))
        .iter()
        .map(text)
        .collect()
}

/// The pod template's first container.
fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

fn env<'a>(c: &'a Value, var: &str) -> Option<&'a Value> {
    c["env"].as_sequence()?.iter().find(|e| e["name"] == var)
}

fn volume<'a>(workload: &'a Value, vol: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .and_then(|vs| vs.iter().find(|v| v["name"] == vol))
        .unwrap_or_else(|| panic!("no volume {vol} in {}", name(workload)))
}

fn mount_path<'a>(c: &'a Value, vol: &str) -> Option<&'a str> {
    c["volumeMounts"]
        .as_sequence()?
        .iter()
        .find(|m| m["name"] == vol)
        .map(|m| text(&m["mountPath"]))
}

/// `args` holds `flag` followed by `value`.
fn has_flag(args: &[&str], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

fn toml_str<'a>(t: &'a toml::Table, path: &[&str]) -> &'a str {
    toml_at(t, path)
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string", path.join(".")))
}

fn toml_at<'a>(t: &'a toml::Table, path: &[&str]) -> &'a toml::Value {
    let (last, tables) = path.split_last().unwrap();
    let mut at = t;
    for k in tables {
        at = at
            .get(*k)
            .and_then(toml::Value::as_table)
            .unwrap_or_else(|| panic!("endpoint.toml has no table {k}"));
    }
    at.get(*last)
        .unwrap_or_else(|| panic!("endpoint.toml has no {}", path.join(".")))
}

/// A Secret's value under `key`, decoded.
fn secret_value(secret: &Value, key: &str) -> String {
    let b64 = text(&secret["data"][key]);
    String::from_utf8(base64_decode(b64)).expect("a text secret")
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("not base64: {s}")) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_mapping().expect("a selector");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels[k.as_str().unwrap()] == *v)
}

fn credential_value() -> String {
    format!("endpoint.credential.value={CREDENTIAL}")
}

#[test]
fn the_chart_lints_strictly() {
    let Some(helm) = Helm::find("the_chart_lints_strictly") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pem = pems(dir.path());
    let chart = chart();
    let cred = credential_value();
    let sets: [Vec<&str>; 3] = [
        vec!["--set", &cred],
        vec![
            "--set",
            &cred,
            "--set",
            "tls.enabled=true",
            "--set-file",
            &pem.cert,
            "--set-file",
            &pem.key,
            "--set-file",
            &pem.ca,
        ],
        vec![
            "--set",
            "endpoint.credential.existingSecret=ferry-endpoint",
            "--set",
            "endpoint.workers.gpus=1",
        ],
    ];
    for values in sets {
        let mut args = vec![
            "lint",
            "--strict",
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
        ];
        args.extend_from_slice(&values);
        let out = helm.run(&args);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("0 chart(s) failed"),
            "helm lint --strict {values:?}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_defaults_render_the_service_the_manager_and_its_rights() {
    let Some(helm) = Helm::find("the_defaults_render_the_service_the_manager_and_its_rights")
    else {
        return;
    };
    let r = helm.template(&["--set", &credential_value()]);
    let kinds: BTreeSet<(String, String)> = [
        ("ConfigMap", format!("{FULL}-manager")),
        ("Deployment", format!("{FULL}-manager")),
        ("Role", format!("{FULL}-manager")),
        ("RoleBinding", format!("{FULL}-manager")),
        ("Secret", format!("{FULL}-endpoint")),
        ("Service", FULL.to_owned()),
        ("Service", format!("{FULL}-headless")),
        ("ServiceAccount", format!("{FULL}-manager")),
        ("ServiceAccount", format!("{FULL}-worker")),
        ("StatefulSet", FULL.to_owned()),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(r.kinds(), kinds);
    for d in &r.docs {
        assert_eq!(d["metadata"]["namespace"], NAMESPACE, "{}", name(d));
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/instance"],
            RELEASE,
            "{}",
            name(d)
        );
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "Helm",
            "{}",
            name(d)
        );
    }

    // The service: one replica, its store on a claimed volume, plaintext
    // only because it is told to be (--insecure), listening beyond loopback.
    let sts = r.one("StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(
        sts["spec"]["serviceName"],
        format!("{FULL}-headless").as_str()
    );
    let claims = sts["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .expect("volumeClaimTemplates");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["metadata"]["name"], "data");
    assert_eq!(
        claims[0]["spec"]["resources"]["requests"]["storage"],
        "20Gi"
    );
    assert_eq!(
        strings(&claims[0]["spec"]["accessModes"]),
        ["ReadWriteOnce"]
    );
    let service = container(sts);
    assert_eq!(mount_path(service, "data"), Some("/var/lib/ferry"));
    assert_eq!(
        env(service, "FERRY_DATA_DIR").map(|e| &e["value"]),
        Some(&Value::from("/var/lib/ferry"))
    );
    let args = strings(&service["args"]);
    assert_eq!(args[0], "serve");
    assert!(has_flag(&args, "--listen", "0.0.0.0:7171"), "{args:?}");
    assert!(has_flag(&args, "--durability", "strict"), "{args:?}");
    assert!(args.contains(&"--insecure"), "{args:?}");
    assert!(!args.contains(&"--tls-cert"), "{args:?}");
    assert_eq!(service["ports"][0]["containerPort"], 7171);
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    assert!(selects(&sts["spec"]["selector"]["matchLabels"], pod_labels));

    // Both Services reach the service's pod on 7171; one is headless.
    let cluster_ip = r.named("Service", FULL);
    let headless = r.named("Service", &format!("{FULL}-headless"));
    assert_eq!(cluster_ip["spec"]["type"], "ClusterIP");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    for s in [cluster_ip, headless] {
        assert_eq!(s["spec"]["ports"][0]["port"], 7171, "{}", name(s));
        assert!(selects(&s["spec"]["selector"], pod_labels), "{}", name(s));
    }
    let manager = r.one("Deployment");
    assert!(
        !selects(
            &cluster_ip["spec"]["selector"],
            &manager["spec"]["template"]["metadata"]["labels"]
        ),
        "the Service must not send clients to the manager"
    );

    // The manager: one at a time, under its own account, with its config
    // and the credential.
    assert_eq!(manager["spec"]["replicas"], 1);
    assert_eq!(manager["spec"]["strategy"]["type"], "Recreate");
    let pod = &manager["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"],
        format!("{FULL}-manager").as_str()
    );
    let m = container(manager);
    let args = strings(&m["args"]);
    assert!(
        has_flag(&args, "--config", "/etc/ferry/endpoint.toml"),
        "{args:?}"
    );
    assert_eq!(mount_path(m, "config"), Some("/etc/ferry/endpoint.toml"));
    assert_eq!(
        volume(manager, "config")["configMap"]["name"],
        name(r.one("ConfigMap"))
    );
    let cred = env(m, "FERRY_ENDPOINT_CREDENTIAL").expect("the credential's variable");
    let secret = r.one("Secret");
    assert_eq!(cred["valueFrom"]["secretKeyRef"]["name"], name(secret));
    assert_eq!(cred["valueFrom"]["secretKeyRef"]["key"], "credential");
    assert_eq!(secret_value(secret, "credential"), CREDENTIAL);
    assert!(env(m, "FERRY_CA").is_none());
    assert_eq!(m["image"], "ferry/endpoint:0.1.0");
    assert_eq!(service["image"], "ferry/service:0.1.0");

    // Its rights: Jobs made, watched and deleted, pods read; nothing else.
    let role = r.one("Role");
    let rules = role["rules"].as_sequence().expect("rules");
    let verbs = |group: &str, resource: &str| -> BTreeSet<String> {
        rules
            .iter()
            .filter(|rule| {
                strings(&rule["apiGroups"]).contains(&group)
                    && strings(&rule["resources"]).contains(&resource)
            })
            .flat_map(|rule| strings(&rule["verbs"]))
            .map(str::to_owned)
            .collect()
    };
    let want = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(
        verbs("batch", "jobs"),
        want(&["create", "delete", "get", "list", "watch"])
    );
    assert_eq!(verbs("", "pods"), want(&["get", "list", "watch"]));
    let resources: BTreeSet<&str> = rules
        .iter()
        .flat_map(|rule| strings(&rule["resources"]))
        .collect();
    assert_eq!(
        resources,
        BTreeSet::from(["jobs", "pods"]),
        "no secrets, no more"
    );
    let binding = r.one("RoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], name(role));
    let subjects = binding["subjects"].as_sequence().expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], format!("{FULL}-manager").as_str());
    assert_eq!(subjects[0]["namespace"], NAMESPACE);
    let worker = r.named("ServiceAccount", &format!("{FULL}-worker"));
    assert_eq!(worker["automountServiceAccountToken"], false);

    // The config: the endpoint, and workers in the release's namespace
    // running the endpoint's image.
    let t = r.endpoint_toml();
    assert_eq!(toml_str(&t, &["name"]), "k8s");
    assert_eq!(
        toml_str(&t, &["service"]),
        format!("http://{FULL}.{NAMESPACE}.svc:7171")
    );
    assert_eq!(toml_str(&t, &["provider", "kind"]), "kubernetes");
    for (key, want) in [
        ("min_blocks", 0),
        ("init_blocks", 0),
        ("max_blocks", 4),
        ("workers_per_block", 1),
        ("worker_slots", 4),
    ] {
        assert_eq!(
            toml_at(&t, &["provider", key]).as_integer(),
            Some(want),
            "{key}"
        );
    }
    assert_eq!(
        toml_at(&t, &["provider", "parallelism"]).as_float(),
        Some(1.0)
    );
    assert_eq!(toml_str(&t, &["provider", "max_idletime"]), "2m");
    assert_eq!(toml_str(&t, &["provider", "period"]), "5s");
    let k = |key: &str| toml_str(&t, &["provider", "kubernetes", key]).to_owned();
    assert_eq!(k("namespace"), NAMESPACE);
    assert_eq!(k("image"), "ferry/endpoint:0.1.0");
    assert_eq!(k("image_pull_policy"), "IfNotPresent");
    assert_eq!(k("cpu"), "2");
    assert_eq!(k("memory"), "4Gi");
    assert_eq!(k("walltime"), "12h");
    assert_eq!(k("service_account"), name(worker));
    assert_eq!(k("credential_secret"), name(secret));
    assert_eq!(
        toml_at(&t, &["provider", "kubernetes", "gpus"]).as_integer(),
        Some(0)
    );
    let kube = toml_at(&t, &["provider", "kubernetes"]).as_table().unwrap();
    assert!(!kube.contains_key("ca_secret"), "no TLS, no CA: {kube:?}");
    assert!(
        kube["node_selector"]
            .as_table()
            .is_some_and(toml::Table::is_empty)
    );
    let c = provider_config(&t);
    assert_eq!(c.namespace, NAMESPACE);
    assert_eq!(c.image, "ferry/endpoint:0.1.0");
    assert_eq!(c.cpu.as_deref(), Some("2"));
    assert_eq!(c.memory.as_deref(), Some("4Gi"));
    assert_eq!(c.credential_secret.as_deref(), Some(name(secret)));
    assert_eq!(c.service_account.as_deref(), Some(name(worker)));
    assert_eq!(c.walltime.as_deref(), Some("12h"));
    assert_eq!(c.ca_secret, None);
}

/// PEM files, and the `--set-file` pairs that give them to the chart.
struct Pems {
    cert: String,
    key: String,
    ca: String,
}

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBservice\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHkey\n-----END PRIVATE KEY-----\n";
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n";

fn pems(dir: &Path) -> Pems {
    let file = |n: &str, body: &str| {
        let p = dir.join(n);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    Pems {
        cert: format!("tls.cert={}", file("tls.crt", CERT)),
        key: format!("tls.key={}", file("tls.key", KEY)),
        ca: format!("tls.ca={}", file("ca.crt", CA)),
    }
}

#[test]
fn tls_is_served_and_trusted_from_the_secret_the_chart_makes() {
    let Some(helm) = Helm::find("tls_is_served_and_trusted_from_the_secret_the_chart_makes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pem = pems(dir.path());
    let cred = credential_value();
    let r = helm.template(&[
        "--set",
        &cred,
        "--set",
        "tls.enabled=true",
        "--set-file",
        &pem.cert,
        "--set-file",
        &pem.key,
        "--set-file",
        &pem.ca,
    ]);
    assert_eq!(r.all("Secret").len(), 2, "{:?}", r.kinds());
    let tls = r.named("Secret", &format!("{FULL}-tls"));
    assert_eq!(tls["type"], "kubernetes.io/tls");
    assert_eq!(secret_value(tls, "tls.crt"), CERT);
    assert_eq!(secret_value(tls, "tls.key"), KEY);
    assert_eq!(secret_value(tls, "ca.crt"), CA);

    // The service serves the certificate, and says nothing of --insecure.
    let sts = r.one("StatefulSet");
    let service = container(sts);
    let args = strings(&service["args"]);
    assert!(
        has_flag(&args, "--tls-cert", "/etc/ferry/tls/tls.crt"),
        "{args:?}"
    );
    assert!(
        has_flag(&args, "--tls-key", "/etc/ferry/tls/tls.key"),
        "{args:?}"
    );
    assert!(!args.contains(&"--insecure"), "{args:?}");
    assert_eq!(mount_path(service, "tls"), Some("/etc/ferry/tls"));
    assert_eq!(volume(sts, "tls")["secret"]["secretName"], name(tls));

    // The manager trusts the CA, and is given the CA alone.
    let manager = r.one("Deployment");
    let m = container(manager);
    assert_eq!(
        env(m, "FERRY_CA").map(|e| &e["value"]),
        Some(&Value::from("/etc/ferry/tls/ca.crt"))
    );
    assert_eq!(mount_path(m, "ca"), Some("/etc/ferry/tls"));
    let ca = &volume(manager, "ca")["secret"];
    assert_eq!(ca["secretName"], name(tls));
    let items = ca["items"].as_sequence().expect("only some keys");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["key"], "ca.crt");

    // Endpoints dial https, and the workers get the CA's Secret.
    let t = r.endpoint_toml();
    assert_eq!(
        toml_str(&t, &["service"]),
        format!("https://{FULL}.{NAMESPACE}.svc:7171")
    );
    assert_eq!(
        toml_str(&t, &["provider", "kubernetes", "ca_secret"]),
        name(tls)
    );
    assert_eq!(provider_config(&t).ca_secret.as_deref(), Some(name(tls)));
}

#[test]
fn existing_secrets_are_referenced_and_gpu_workers_asked_for() {
    let Some(helm) = Helm::find("existing_secrets_are_referenced_and_gpu_workers_asked_for") else {
        return;
    };
    let r = helm.template(&[
        "--set",
        "endpoint.credential.existingSecret=ferry-endpoint",
        "--set",
        "tls.enabled=true",
        "--set",
        "tls.existingSecret=ferry-tls",
        "--set",
        "endpoint.workers.gpus=1",
        "--set",
        "endpoint.provider.parallelism=0.5",
        "--set-json",
        r#"endpoint.workers.nodeSelector={"nvidia.com/gpu.present":"true","kubernetes.io/arch":"amd64"}"#,
        "--set",
        "endpoint.nodeSelector.node-role=control",
    ]);
    assert!(
        r.all("Secret").is_empty(),
        "existing Secrets are not made again: {:?}",
        r.kinds()
    );
    let manager = r.one("Deployment");
    let m = container(manager);
    let cred = env(m, "FERRY_ENDPOINT_CREDENTIAL").expect("the credential's variable");
    assert_eq!(cred["valueFrom"]["secretKeyRef"]["name"], "ferry-endpoint");
    assert_eq!(volume(manager, "ca")["secret"]["secretName"], "ferry-tls");
    assert_eq!(
        manager["spec"]["template"]["spec"]["nodeSelector"]["node-role"],
        "control"
    );
    let sts = r.one("StatefulSet");
    assert_eq!(volume(sts, "tls")["secret"]["secretName"], "ferry-tls");
    assert!(
        sts["spec"]["template"]["spec"]["nodeSelector"].is_null(),
        "the manager's nodeSelector is its own"
    );

    let t = r.endpoint_toml();
    let k = |key: &str| toml_at(&t, &["provider", "kubernetes", key]);
    assert_eq!(k("credential_secret").as_str(), Some("ferry-endpoint"));
    assert_eq!(k("ca_secret").as_str(), Some("ferry-tls"));
    assert_eq!(k("gpus").as_integer(), Some(1));
    let selector = k("node_selector").as_table().expect("node_selector");
    assert_eq!(selector.len(), 2, "{selector:?}");
    assert_eq!(
        selector["nvidia.com/gpu.present"].as_str(),
        Some("true"),
        "a quoted key with dots stays one key"
    );
    assert_eq!(selector["kubernetes.io/arch"].as_str(), Some("amd64"));
    assert_eq!(
        toml_at(&t, &["provider", "parallelism"]).as_float(),
        Some(0.5)
    );
    let c = provider_config(&t);
    assert_eq!(c.gpus, 1);
    assert_eq!(
        c.node_selector
            .get("nvidia.com/gpu.present")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(c.credential_secret.as_deref(), Some("ferry-endpoint"));
    assert_eq!(c.ca_secret.as_deref(), Some("ferry-tls"));
}

#[test]
fn workers_elsewhere_take_their_rights_and_account_with_them() {
    let Some(helm) = Helm::find("workers_elsewhere_take_their_rights_and_account_with_them") else {
        return;
    };
    let r = helm.template(&[
        "--set",
        &credential_value(),
        "--set",
        "endpoint.workers.namespace=batch",
        "--set",
        "endpoint.workers.image=registry.example.org/ferry/endpoint:gpu",
    ]);
    let t = r.endpoint_toml();
    assert_eq!(
        toml_str(&t, &["provider", "kubernetes", "namespace"]),
        "batch"
    );
    assert_eq!(
        toml_str(&t, &["provider", "kubernetes", "image"]),
        "registry.example.org/ferry/endpoint:gpu"
    );
    for kind in ["Role", "RoleBinding"] {
        assert_eq!(r.one(kind)["metadata"]["namespace"], "batch", "{kind}");
    }
    let binding = r.one("RoleBinding");
    assert_eq!(
        binding["subjects"][0]["namespace"], NAMESPACE,
        "the manager stays in the release's namespace"
    );
    let worker = r.named("ServiceAccount", &format!("{FULL}-worker"));
    assert_eq!(worker["metadata"]["namespace"], "batch");
    assert_eq!(
        r.one("Deployment")["metadata"]["namespace"],
        NAMESPACE,
        "the manager runs where the release is"
    );
}

#[test]
fn what_must_be_given_is_named_when_missing() {
    let Some(helm) = Helm::find("what_must_be_given_is_named_when_missing") else {
        return;
    };
    let out = helm.template_output(&[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rendered without a credential");
    assert!(said.contains("endpoint.credential.value"), "{said}");
    assert!(said.contains("existingSecret"), "{said}");

    let out = helm.template_output(&["--set", &credential_value(), "--set", "tls.enabled=true"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "TLS rendered without a certificate");
    assert!(said.contains("tls.cert"), "{said}");

    let out = helm.template_output(&[
        "--set",
        &credential_value(),
        "--set",
        "endpoint.provider.parallelism=1.5",
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "parallelism 1.5 rendered");
    assert!(said.contains("parallelism"), "{said}");

    // The service alone needs no credential, and asks for no rights.
    let r = helm.template(&["--set", "endpoint.enabled=false"]);
    let kinds: BTreeSet<&str> = r.docs.iter().map(|d| text(&d["kind"])).collect();
    assert_eq!(kinds, BTreeSet::from(["Service", "StatefulSet"]));
}
