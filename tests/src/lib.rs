//! Harness for end-to-end tests: each test gets its own namespace on the real API server and its own
//! operator process watching only that namespace, so tests run in parallel and can kill and restart
//! "their" operator. Everything is asserted through the real APIs: the Engine's view of Swarm objects
//! and the status the API server stores.
//!
//! Needs the environment `scripts/test.sh` brings up (KUBECONFIG, DOCKER_HOST, test images, CRDs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    future::Future,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    models::{Service, Task, TaskState},
    query_parameters::{ListServicesOptions, ListTasksOptions},
};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use rand::Rng;
use swarm_operator_crds::SwarmService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const OWNER_UID: &str = "swarmoperator.io/owner-uid";
pub const OWNER_NAMESPACE: &str = "swarmoperator.io/owner-namespace";
/// Label on the SwarmClusters a test makes: each test's operator serves only its own
/// (`--cluster-selector`), as SwarmClusters are cluster-scoped and shared by every test.
pub const CLUSTER_LABEL: &str = "e2e.swarmoperator.io/namespace";

pub struct TestEnv {
    pub client: Client,
    pub docker: Docker,
    pub namespace: String,
    /// Unique per test; prefix Swarm object names with it, the swarm is shared.
    pub prefix: String,
    operator: Option<Child>,
    /// Further replicas of the operator (see `start_standby`).
    standbys: Vec<Child>,
    operator_starts: u32,
    operator_log: PathBuf,
    /// Port of the operator's /metrics, /healthz and /readyz.
    pub metrics_port: u16,
    /// RUST_LOG of the operators this test starts.
    pub rust_log: String,
    /// The API server this test and its operators use, when not the shared one (KUBECONFIG).
    kubeconfig: Option<PathBuf>,
    /// The identity the operators run as, when not the test's (a ServiceAccount token's kubeconfig).
    pub operator_kubeconfig: Option<PathBuf>,
    /// The namespaces the operators watch: the test's own unless changed.
    pub watched: Vec<String>,
    /// Further namespaces of this test ([`TestEnv::another_namespace`]), cleaned up with it.
    others: Vec<String>,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory of the workspace's debug binaries (swarm-operator, kubectl-swarm).
pub fn binaries() -> PathBuf {
    workspace().join("target/debug")
}

/// `kubectl swarm ARGS` as a user runs it (kubectl finds the plugin on PATH), with the test's
/// KUBECONFIG or `kubeconfig`.
pub fn kubectl_swarm_command(args: &[&str], kubeconfig: Option<&std::path::Path>) -> Command {
    let path = format!(
        "{}:{}",
        binaries().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(kubectl_bin());
    command.env("PATH", path).arg("swarm").args(args);
    if let Some(k) = kubeconfig {
        command.env("KUBECONFIG", k);
    }
    command
}

/// `kubectl swarm ARGS`: (success, stdout, stderr).
pub fn kubectl_swarm(args: &[&str], kubeconfig: Option<&std::path::Path>) -> (bool, String, String) {
    let out = kubectl_swarm_command(args, kubeconfig).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

pub fn kubectl_bin() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

impl TestEnv {
    pub async fn new(test: &str) -> TestEnv {
        Self::on(test, None).await
    }

    /// A test on the API server of `kubeconfig` (e.g. a [`PrivateApiServer`]) instead of the shared one.
    pub async fn on(test: &str, kubeconfig: Option<PathBuf>) -> TestEnv {
        let client = match &kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path).unwrap();
                let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
                    .await
                    .unwrap();
                Client::try_from(config).unwrap()
            }
            None => Client::try_default()
                .await
                .expect("KUBECONFIG must point at the test API server: run scripts/test.sh"),
        };
        let docker = Docker::connect_with_defaults()
            .unwrap()
            .negotiate_version()
            .await
            .expect("Docker Engine");
        let suffix: String = (0..4)
            .map(|_| rand::rng().random_range(b'a'..=b'z') as char)
            .collect();
        let namespace = format!("e2e-{test}-{suffix}");
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let prefix = format!("{}-{suffix}", &test[..test.len().min(12)]);
        let metrics_port = free_port();
        TestEnv {
            client,
            docker,
            prefix,
            operator: None,
            standbys: Vec::new(),
            operator_starts: 0,
            operator_log: PathBuf::new(),
            metrics_port,
            rust_log: "info,swarm_operator=debug,kube=warn".into(),
            kubeconfig,
            operator_kubeconfig: None,
            watched: vec![namespace.clone()],
            others: Vec::new(),
            namespace,
        }
    }

    /// kubectl on this test's API server.
    fn kubectl_command(&self) -> Command {
        let mut command = Command::new(kubectl_bin());
        if let Some(path) = &self.kubeconfig {
            command.arg("--kubeconfig").arg(path);
        }
        command
    }

    pub fn services(&self) -> Api<SwarmService> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Starts the operator binary watching this test's namespace; its log goes to target/e2e-logs/.
    pub fn start_operator(&mut self) {
        self.start_operator_with(&["--resync-seconds", "30"]);
    }

    /// Starts the operator with extra flags.
    pub fn start_operator_with(&mut self, flags: &[&str]) {
        assert!(self.operator.is_none(), "operator already running");
        let identity = format!("{}-a", self.namespace);
        self.operator = Some(self.spawn_operator(&identity, self.metrics_port, flags));
        self.operator_log = self.log_file();
    }

    /// What this test's (first) operator has logged in its current run.
    pub fn operator_log(&self) -> String {
        std::fs::read_to_string(&self.operator_log).unwrap_or_default()
    }

    fn log_file(&self) -> PathBuf {
        let file = format!("{}-{}.log", self.namespace, self.operator_starts);
        workspace().join("target/e2e-logs").join(file)
    }

    /// Starts a second replica (another pod, to leader election) with `flags`; returns the port of
    /// its metrics. It runs until the test ends.
    pub fn start_standby(&mut self, flags: &[&str]) -> u16 {
        let port = free_port();
        let identity = format!("{}-b", self.namespace);
        let child = self.spawn_operator(&identity, port, flags);
        self.standbys.push(child);
        port
    }

    fn spawn_operator(&mut self, identity: &str, metrics_port: u16, flags: &[&str]) -> Child {
        let bin = std::env::var("SWARM_OPERATOR_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace().join("target/debug/swarm-operator"));
        let logs = workspace().join("target/e2e-logs");
        std::fs::create_dir_all(&logs).unwrap();
        self.operator_starts += 1;
        let log = std::fs::File::create(self.log_file()).unwrap();
        let mut command = Command::new(&bin);
        if let Some(path) = self.operator_kubeconfig.as_ref().or(self.kubeconfig.as_ref()) {
            command.env("KUBECONFIG", path);
        }
        command
            .args([
                "--namespace",
                &self.watched.join(","),
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--cluster-selector",
                &format!("{CLUSTER_LABEL}={}", self.namespace),
                // Each test's operator leads on its own Lease.
                "--leader-election-namespace",
                &self.namespace,
            ])
            .args(flags)
            .env("RUST_LOG", &self.rust_log)
            .env("POD_NAME", identity)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (cargo build first)", bin.display()))
    }

    /// Process ID of this test's (first) operator.
    pub fn operator_pid(&self) -> Option<u32> {
        self.operator.as_ref().map(Child::id)
    }

    /// Removes the swarm's `kind` object `id` (`docker KIND rm`) once nothing uses it any more.
    pub async fn docker_rm_when_free(&self, kind: &str, id: &str, limit: Duration) {
        self.wait_for(&format!("{kind} {id} free to remove"), limit, || async {
            let out = Command::new("docker").args([kind, "rm", id]).output().unwrap();
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        })
        .await;
    }

    /// Waits until this test's namespace is gone (deleted by the controller manager).
    pub async fn wait_namespace_gone(&self, limit: Duration) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        self.wait_for("the namespace gone", limit, || async {
            match namespaces
                .get_opt(&self.namespace)
                .await
                .map_err(|e| e.to_string())?
            {
                None => Ok(()),
                Some(ns) => Err(format!("{:?}", ns.status)),
            }
        })
        .await;
    }

    /// Sends `signal` (STOP, CONT, ...) to this test's (first) operator: SIGSTOP freezes it as a
    /// long GC pause, a stalled VM or a suspended container would.
    pub fn signal_operator(&self, signal: &str) {
        let pid = self.operator_pid().expect("operator running").to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Asks the operator to stop (SIGTERM), as Kubernetes does when it deletes the pod; returns
    /// how it exited and how long it took, or `None` if it still ran after `limit` (then killed).
    pub async fn stop_operator(&mut self, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let mut child = self.operator.take()?;
        let start = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM");
        while start.elapsed() < limit {
            if let Some(exit) = child.try_wait().unwrap() {
                return Some((exit, start.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Kills the operator at once (SIGKILL), as a crash or an evicted pod would.
    pub fn kill_operator(&mut self) {
        if let Some(mut child) = self.operator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Creates or updates the object from YAML with server-side apply, as `kubectl apply --server-side`.
    pub async fn apply(&self, yaml: &str) -> SwarmService {
        let obj: SwarmService = serde_yaml_ng::from_str(yaml).unwrap();
        let name = obj.metadata.name.clone().unwrap();
        let mut value = serde_json::to_value(&obj).unwrap();
        value["metadata"]["namespace"] = self.namespace.clone().into();
        self.services()
            .patch(
                &name,
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(value),
            )
            .await
            .unwrap()
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        let out = self
            .kubectl_command()
            .args(["-n", &self.namespace])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `kubectl apply` of `manifest` in this namespace; with `dry_run`, on the server only.
    /// Returns kubectl's stderr as the error.
    pub fn kubectl_apply(&self, manifest: &str, dry_run: bool) -> Result<(), String> {
        self.kubectl_apply_in(&self.namespace, manifest, dry_run)
    }

    /// `kubectl apply` of `manifest` in `namespace`; with `dry_run`, on the server only.
    pub fn kubectl_apply_in(&self, namespace: &str, manifest: &str, dry_run: bool) -> Result<(), String> {
        use std::io::Write;
        let mut args = vec!["-n", namespace, "apply", "-f", "-"];
        if dry_run {
            args.push("--dry-run=server");
        }
        let mut child = self
            .kubectl_command()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Polls `check` every 500 ms until it yields a value; panics with `what` and the last state after
    /// `limit`. A bound on waiting, not a performance assertion.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let start = Instant::now();
        loop {
            match check().await {
                Ok(v) => return v,
                Err(last) if start.elapsed() > limit => {
                    panic!("timed out after {limit:?} waiting for {what}; last: {last}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Waits until the SwarmService is Ready for its current generation.
    pub async fn wait_ready(&self, name: &str, limit: Duration) -> SwarmService {
        self.wait_for(&format!("SwarmService {name} Ready"), limit, || async {
            let svc = self.services().get(name).await.map_err(|e| e.to_string())?;
            let status = svc.status.clone().unwrap_or_default();
            let ready = condition(&svc, "Ready").is_some_and(|c| c.status == "True");
            if ready && status.observed_generation == svc.metadata.generation {
                Ok(svc)
            } else {
                Err(format!("{:?}", svc.status))
            }
        })
        .await
    }

    /// The Swarm service named exactly `name`, as the Engine reports it.
    pub async fn swarm_service(&self, name: &str) -> Option<Service> {
        services_named(&self.docker, name).await.into_iter().next()
    }

    /// The Swarm service as the Engine writes it (`docker service inspect`): bollard's models drop
    /// keys the Engine spells differently (ContainerSpec.Healthcheck), so spec checks read this.
    pub fn swarm_service_json(&self, name: &str) -> serde_json::Value {
        let out = Command::new("docker")
            .args(["service", "inspect", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker service inspect {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        all.remove(0)
    }

    /// Swarm services labelled as made for this test's namespace.
    pub async fn owned_services(&self) -> Vec<Service> {
        let label = format!("{OWNER_NAMESPACE}={}", self.namespace);
        let filters = HashMap::from([("label".to_string(), vec![label])]);
        self.docker
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                status: None,
            }))
            .await
            .unwrap()
    }

    /// Tasks of the service that are running and meant to run.
    pub async fn running_tasks(&self, service: &str) -> Vec<Task> {
        let filters = HashMap::from([
            ("service".to_string(), vec![service.to_string()]),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ]);
        let tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .unwrap_or_default();
        tasks
            .into_iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .collect()
    }
}

impl TestEnv {
    /// Creates a Swarm service directly through the Engine API, as someone outside swarm-operator
    /// would: one replica of `image`, with `labels` and no owner labels. Returns its ID.
    pub async fn create_unmanaged_service(&self, name: &str, image: &str, labels: &[(&str, &str)]) -> String {
        let spec = bollard::models::ServiceSpec {
            name: Some(name.to_string()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            task_template: Some(bollard::models::TaskSpec {
                container_spec: Some(bollard::models::TaskSpecContainerSpec {
                    image: Some(image.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(bollard::models::ServiceSpecMode {
                replicated: Some(bollard::models::ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.docker.create_service(spec, None).await.unwrap().id.unwrap()
    }
}

/// A free port for an operator to serve its metrics on.
/// A kubeconfig for the test API server (KUBECONFIG's) that authenticates with `token` only,
/// written as `dir/<file>`.
pub fn token_kubeconfig(token: &str, dir: &std::path::Path, file: &str) -> PathBuf {
    let admin = std::env::var("KUBECONFIG").expect("KUBECONFIG: run scripts/test.sh");
    let mut config: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(admin).unwrap()).unwrap();
    let users = config["users"].as_array_mut().unwrap();
    users.truncate(1);
    users[0]["user"] = serde_json::json!({ "token": token });
    let path = dir.join(file);
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    path
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Helm chart's directory.
pub fn chart() -> String {
    workspace().join("charts/swarm-operator").display().to_string()
}

/// helm (HELM, built by scripts/helm-bin.sh) with `args`, on the test API server (KUBECONFIG).
pub fn helm(args: &[&str]) -> Output {
    let bin = std::env::var("HELM").unwrap_or_else(|_| "helm".into());
    Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/test.sh sets HELM from scripts/helm-bin.sh)"))
}

/// A test image built by scripts/images.sh.
pub fn test_image(tag: &str) -> String {
    format!("swarm-operator-test/whoami:{tag}")
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.kill_operator();
        for mut standby in self.standbys.drain(..) {
            let _ = standby.kill();
            let _ = standby.wait();
        }
        let _ = self
            .kubectl_command()
            .args(["delete", "swarmclusters", "--wait=false", "-l"])
            .arg(format!("{CLUSTER_LABEL}={}", self.namespace))
            .output();
        // Leave nothing of this test on the shared swarm, whatever its outcome.
        remove_swarm_objects_of(&self.namespace);
        for other in &self.others {
            remove_swarm_objects_of(other);
            let _ = self
                .kubectl_command()
                .args(["delete", "namespace", other, "--wait=false"])
                .output();
        }
    }
}

/// Removes the swarm's objects that resources of `namespace` made. Services first: networks,
/// secrets and configs in use cannot go.
fn remove_swarm_objects_of(namespace: &str) {
    {
        let label = format!("label={OWNER_NAMESPACE}={namespace}");
        for kind in ["service", "secret", "config", "network"] {
            let Ok(out) = Command::new("docker")
                .args([kind, "ls", "-q", "--filter", &label])
                .output()
            else {
                continue;
            };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                if kind == "network" {
                    // Tasks leave their networks a moment after their service is gone.
                    std::thread::sleep(Duration::from_secs(2));
                }
                let _ = Command::new("docker").args([kind, "rm"]).args(&ids).output();
            }
        }
    }
}

impl TestEnv {
    /// Creates namespace `<test namespace>-<suffix>`, removed (with its swarm objects) with the test.
    pub async fn another_namespace(&mut self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.namespace);
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        self.others.push(name.clone());
        name
    }

    /// Waits until condition `type_` is True with `reason`; returns its message.
    pub async fn wait_condition(&self, name: &str, type_: &str, reason: &str, limit: Duration) -> String {
        self.wait_for(&format!("{type_}/{reason} on {name}"), limit, || async {
            let svc = self.services().get(name).await.map_err(|e| e.to_string())?;
            match condition(&svc, type_) {
                Some(c) if c.status == "True" && c.reason == reason => Ok(c.message.clone()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    /// Events recorded on this namespace's objects with `reason`, as (type, note).
    pub async fn events(&self, reason: &str) -> Vec<(String, String)> {
        self.event_series(reason)
            .await
            .into_iter()
            .map(|(type_, note, _)| (type_, note))
            .collect()
    }

    /// Events recorded on this namespace's objects with `reason`, as (type, note, how many
    /// occurrences the Event stands for: its series count, else 1).
    pub async fn event_series(&self, reason: &str) -> Vec<(String, String, i32)> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let all = api.list(&Default::default()).await.unwrap().items;
        all.into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| {
                let count = e.series.as_ref().map_or(1, |s| s.count);
                (e.type_.unwrap_or_default(), e.note.unwrap_or_default(), count)
            })
            .collect()
    }

    /// Where any of `values` (or its base64) shows: this test's operator logs, the events of the
    /// namespace and of `default`, the swarmoperator.io resources as stored (spec and status), the labels of the
    /// swarm's secrets, and the labels of this test's Swarm services and their containers.
    /// Empty when nowhere.
    pub async fn places_showing(&self, values: &[&str]) -> Vec<String> {
        use base64::Engine as _;
        let logs: String = std::fs::read_dir(workspace().join("target/e2e-logs"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&self.namespace))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        let stdout = |out: Output| String::from_utf8_lossy(&out.stdout).into_owned();
        // Events about cluster-scoped SwarmClusters go to `default`.
        let events = stdout(self.kubectl(&["get", "events", "-o", "json"]))
            + &stdout(self.kubectl(&["get", "events", "-n", "default", "-o", "json"]));
        let resources = stdout(self.kubectl(&["get", "swarm", "-o", "json"]));
        let services: Vec<_> = self
            .owned_services()
            .await
            .into_iter()
            .filter_map(|s| s.spec)
            .map(|s| {
                let container = s.task_template.and_then(|t| t.container_spec);
                (s.labels, container.and_then(|c| c.labels))
            })
            .collect();
        let labels =
            docker(&["secret", "ls", "--format", "{{.Name}} {{.Labels}}"]) + &format!("{services:?}");
        let mut found = Vec::new();
        for value in values {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
            for (place, text) in [
                ("operator log", &logs),
                ("events", &events),
                ("resources", &resources),
                ("swarm labels", &labels),
            ] {
                if text.contains(*value) || text.contains(&encoded) {
                    found.push(format!("{value} in the {place}"));
                }
            }
        }
        found
    }

    /// Runs the docker CLI (a change made out of band, as a user at a manager would).
    pub fn docker_cli(&self, args: &[&str]) -> String {
        docker(args)
    }
}

/// Runs the docker CLI and returns its output; panics with its error when it fails.
pub fn docker(args: &[&str]) -> String {
    docker_with_config(None, args)
}

/// The docker CLI with `args` and, when given, its own config directory (DOCKER_CONFIG: logins,
/// contexts); panics unless it succeeds, returns its output.
pub fn docker_with_config(config: Option<&std::path::Path>, args: &[&str]) -> String {
    let mut command = Command::new("docker");
    if let Some(config) = config {
        command.env("DOCKER_CONFIG", config);
    }
    let out = command.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A stack deployed with `docker stack deploy`, removed when the test ends whatever its outcome.
pub struct DockerStack(pub String);

impl Drop for DockerStack {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["stack", "rm", &self.0]).output();
    }
}

/// A client container on an overlay network that asks `http://<host>:80/` every 100 ms and logs
/// `ok Version: N` or `fail`: what a user of a service sees during an update. Removed on drop.
pub struct Poller {
    name: String,
}

/// What a [`Poller`] saw: answers by version 1 and 2, and failed requests.
#[derive(Debug, PartialEq)]
pub struct Answers {
    pub v1: usize,
    pub v2: usize,
    pub failed: usize,
}

impl Poller {
    /// Starts polling `host` from a container named `name` on `network` (attachable).
    pub fn start(name: &str, network: &str, host: &str) -> Poller {
        let script = format!(
            "while :; do r=$(timeout 2 wget -qO- http://{host}:80/ 2>/dev/null | grep Version); \
             if [ -n \"$r\" ]; then echo \"ok $r\"; else echo fail; fi; sleep 0.1; done"
        );
        docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--entrypoint",
            "/bin/sh",
            &test_image("1"),
            "-c",
            &script,
        ]);
        Poller { name: name.into() }
    }

    pub fn log(&self) -> String {
        docker(&["logs", &self.name])
    }

    /// Waits until it has had `n` answers.
    pub async fn wait_answers(&self, env: &TestEnv, n: usize, limit: Duration) {
        env.wait_for("the client to get answers", limit, || async {
            let l = self.log();
            if l.matches("ok").count() >= n {
                Ok(())
            } else {
                Err(l)
            }
        })
        .await;
    }

    /// Waits until its last ten answers all come from `version`.
    pub async fn wait_only(&self, env: &TestEnv, version: &str, limit: Duration) {
        let want = format!("Version: {version}");
        env.wait_for(&format!("answers from {want} only"), limit, || async {
            let tail: Vec<String> = self.log().lines().rev().take(10).map(String::from).collect();
            if tail.iter().all(|l| l.contains(&want)) {
                Ok(())
            } else {
                Err(tail.join(" | "))
            }
        })
        .await;
    }

    /// Stops it and counts what it saw.
    pub fn stop(self) -> Answers {
        let lines = self.log();
        Answers {
            v1: lines.matches("Version: 1").count(),
            v2: lines.matches("Version: 2").count(),
            failed: lines.lines().filter(|l| *l == "fail").count(),
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
    }
}

pub fn condition<'a>(
    svc: &'a SwarmService,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    svc.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
}

/// A plain HTTP/1.0 GET to 127.0.0.1:port; the body, or an error.
/// GET `path` from a task's host-mode `port` on the node that runs it: this machine, or, when the
/// tests run against a lab swarm, the node's network namespace (SWARM_TEST_NETNS).
pub async fn task_http_get(port: u16, path: &str) -> Result<String, String> {
    let Ok(netns) = std::env::var("SWARM_TEST_NETNS") else {
        return http_get(port, path).await;
    };
    let out = tokio::process::Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{netns}"))
        .args(["curl", "-sSf", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub async fn http_get(port: u16, path: &str) -> Result<String, String> {
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).to_string();
        if !text.starts_with("HTTP/1.") || !text.contains(" 200 ") {
            return Err(format!("unexpected answer: {text}"));
        }
        // CGI headers pass through busybox httpd with bare LF line ends.
        let body = text
            .split_once("\r\n\r\n")
            .or_else(|| text.split_once("\n\n"))
            .map(|(_, b)| b.to_string());
        Ok(body.unwrap_or_default())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Host ports the Engine reports for a task (host-mode publishing).
/// Sum of the samples of `metric` in a /metrics text whose labels contain every one of `labels`.
pub fn sample(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn task_host_ports(task: &Task) -> Vec<u16> {
    task.status
        .as_ref()
        .and_then(|s| s.port_status.as_ref())
        .and_then(|p| p.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.published_port)
                .map(|p| p as u16)
                .collect()
        })
        .unwrap_or_default()
}

/// A swarm of its own for one test, made by scripts/swarm-lab.sh: `managers` dockerd processes,
/// each in its own network namespace on bridge swl<n> (198.18.<n>.0/24). Removed on drop.
pub struct Lab {
    pub n: u8,
}

impl Lab {
    /// Starts lab `n`; with `tls`, a directory from [`Lab::certs`], manager 1 requires mutual TLS.
    pub fn up(n: u8, managers: u8, tls: Option<&std::path::Path>) -> Lab {
        lab_script(&["down", &n.to_string()]);
        let mut args = vec!["up".to_string(), n.to_string(), managers.to_string()];
        args.extend(tls.map(|d| d.display().to_string()));
        lab_script(&args.iter().map(String::as_str).collect::<Vec<_>>());
        Lab { n }
    }

    /// `count` worker nodes join, numbered after the nodes the lab has; returns when they are Ready.
    pub fn add_workers(&self, count: u8) {
        lab_script(&["workers", &self.n.to_string(), &count.to_string()]);
    }

    /// Writes a CA, a server certificate for manager 1 and a client certificate into `dir`.
    pub fn certs(n: u8, dir: &std::path::Path) {
        lab_script(&["certs", &dir.display().to_string(), &Lab::ip(n, 1)]);
    }

    pub fn ip(n: u8, i: u8) -> String {
        format!("198.18.{n}.{}", 10 + i)
    }

    /// The plain TCP endpoint of manager `i`.
    pub fn endpoint(&self, i: u8) -> String {
        format!("tcp://{}:2375", Lab::ip(self.n, i))
    }

    /// A client of manager `i` through its unix socket, for the test's own checks.
    pub async fn docker(&self, i: u8) -> Docker {
        Docker::connect_with_unix(
            &format!("/run/swl/{}-{i}/docker.sock", self.n),
            30,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
    }

    /// Stops manager `i` (SIGTERM, waits for it to exit).
    pub fn stop(&self, i: u8) {
        lab_script(&["stop", &self.n.to_string(), &i.to_string()]);
    }

    pub fn start(&self, i: u8) {
        lab_script(&["start", &self.n.to_string(), &i.to_string()]);
    }
}

fn lab_script(args: &[&str]) {
    run_script("swarm-lab.sh", args);
}

/// Runs `scripts/<script>` with `args`; panics with its stderr if it fails.
fn run_script(script: &str, args: &[&str]) {
    let out = Command::new(workspace().join("scripts").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(workspace().join("scripts/swarm-lab.sh"))
            .args(["down", &self.n.to_string()])
            .output();
    }
}

/// Services of the swarm behind `docker` named exactly `name`.
pub async fn services_named(docker: &Docker, name: &str) -> Vec<Service> {
    let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
    docker
        .list_services(Some(ListServicesOptions {
            filters: Some(filters),
            status: None,
        }))
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.spec.as_ref().and_then(|s| s.name.as_deref()) == Some(name))
        .collect()
}

/// A private API server (etcd, kube-apiserver, kube-controller-manager, the CRDs) for a test that
/// kills and restarts it: `scripts/kube-bed.sh`. Gone with the value.
pub struct PrivateApiServer {
    dir: PathBuf,
    apiserver_port: u16,
    etcd_port: u16,
}

impl PrivateApiServer {
    pub fn up(name: &str) -> PrivateApiServer {
        let dir = workspace().join("target/e2e-beds").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let bed = PrivateApiServer {
            dir,
            apiserver_port: free_port(),
            etcd_port: free_port_pair(),
        };
        bed.start();
        bed
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Starts what is not running (after `kill_apiserver`: the API server) and waits until ready.
    pub fn start(&self) {
        let (api, etcd) = (self.apiserver_port.to_string(), self.etcd_port.to_string());
        kube_bed(&["up", self.dir.to_str().unwrap(), &api, &etcd]);
    }

    /// kill -9 of the API server, as a crash or an OOM kill would.
    pub fn kill_apiserver(&self) {
        kube_bed(&["kill-apiserver", self.dir.to_str().unwrap()]);
    }
}

/// A free port whose next one is free too: etcd listens on both (clients, then peers).
fn free_port_pair() -> u16 {
    loop {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

impl Drop for PrivateApiServer {
    fn drop(&mut self) {
        kube_bed(&["down", self.dir.to_str().unwrap()]);
    }
}

fn kube_bed(args: &[&str]) {
    run_script("kube-bed.sh", args);
}
