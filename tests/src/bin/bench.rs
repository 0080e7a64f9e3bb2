//! The benchmark (scripts/bench.sh runs it): the operator on the local swarm and an API server of
//! its own, against what a Swarm user compares it with (`docker stack deploy`, the Engine API
//! called directly) and against the API server alone taking the same writes. Prints a table and
//! writes target/bench/results.json. Figures, not assertions: the targets are printed beside them.
//!
//!   bench [--sizes 100,1000,10000] [--stacks 200,1000] [--drift 100] [--resync 60] [--engine-qps 1000]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    models::{ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec},
    query_parameters::UpdateServiceOptions,
};
use futures::{StreamExt, stream};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::json;
use swarm_operator_crds::SwarmService;
use swarm_operator_e2e::{OWNER_NAMESPACE, TestEnv, http_get, test_image};

const USAGE: &str =
    "usage: bench [--sizes 100,1000,10000] [--stacks 200,1000] [--drift 100] [--resync 60] [--engine-qps N]";

struct Args {
    /// Passed to the operator's --engine-qps.
    engine_qps: String,
    /// SwarmServices converged, resynced, drifted and deleted, one size after another.
    sizes: Vec<usize>,
    /// Stack files deployed both ways.
    stacks: Vec<usize>,
    drift: usize,
    /// The operator's --resync-seconds; the at-rest window is one resync.
    resync: u64,
}

fn args() -> Args {
    let mut a = Args {
        engine_qps: "1000".into(),
        sizes: vec![100, 1000, 10000],
        stacks: vec![200, 1000],
        drift: 100,
        resync: 60,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let list = |v: &str| v.split(',').filter_map(|n| n.trim().parse().ok()).collect();
    for pair in argv.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--sizes", Some(v)) => a.sizes = list(v),
            ("--stacks", Some(v)) => a.stacks = list(v),
            ("--drift", Some(v)) => a.drift = v.parse().expect(USAGE),
            ("--resync", Some(v)) => a.resync = v.parse().expect(USAGE),
            ("--engine-qps", Some(v)) => a.engine_qps = v.clone(),
            _ => panic!("{USAGE}"),
        }
    }
    a
}

fn manifest(name: &str) -> serde_json::Value {
    json!({"apiVersion": "swarmoperator.io/v1alpha1", "kind": "SwarmService",
           "metadata": {"name": name}, "spec": {"image": test_image("1"), "replicas": 0}})
}

/// Applies SwarmServices `<prefix>-<i>` for every `i` in `range`, as a user would, 64 at a time.
async fn apply_all(api: &Api<SwarmService>, prefix: &str, range: std::ops::Range<usize>) {
    stream::iter(range)
        .for_each_concurrent(64, |i| {
            let api = api.clone();
            async move {
                let name = format!("{prefix}-{i}");
                api.patch(
                    &name,
                    &PatchParams::apply("bench"),
                    &Patch::Apply(manifest(&name)),
                )
                .await
                .unwrap();
            }
        })
        .await;
}

/// Creates SwarmServices `from..to` (64 requests in flight) and waits until every one is Ready.
/// Returns the time the API server took to accept them all, and the time until all were Ready.
async fn converge(env: &TestEnv, from: usize, to: usize) -> (Duration, Duration) {
    let api = env.services();
    let start = Instant::now();
    apply_all(&api, "svc", from..to).await;
    let applied = start.elapsed();
    wait_ready(&api, to).await;
    (applied, start.elapsed())
}

/// Waits until `n` SwarmServices are Ready, from a watch: polling full lists would cost the API
/// server (which the operator needs) more than the operator's own writes.
async fn wait_ready(api: &Api<SwarmService>, n: usize) {
    use futures::TryStreamExt;
    use kube::{
        ResourceExt,
        runtime::{WatchStreamExt, watcher},
    };
    let mut ready = std::collections::HashSet::new();
    let mut changes = std::pin::pin!(watcher(api.clone(), watcher::Config::default()).applied_objects());
    while let Some(s) = changes.try_next().await.unwrap() {
        let is_ready = s.status.as_ref().is_some_and(|st| {
            st.observed_generation == s.metadata.generation
                && st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if is_ready {
            ready.insert(s.name_any());
        } else {
            ready.remove(&s.name_any());
        }
        if ready.len() >= n {
            return;
        }
    }
}

/// Deletes every SwarmService and waits until the swarm holds none of this namespace's services.
async fn delete_all(env: &TestEnv) -> Duration {
    let start = Instant::now();
    // A collection of 10,000 can outlast the API server's request timeout, which then closes the
    // connection: what it had not marked for deletion yet is asked again.
    let mut attempts = 0;
    while let Err(e) = env
        .services()
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
    {
        attempts += 1;
        assert!(attempts < 10, "delete collection: {e}");
    }
    loop {
        let left = env
            .services()
            .list(&ListParams::default().limit(1))
            .await
            .map(|l| l.items.len())
            .unwrap_or(1);
        if left == 0 && env.owned_services().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

/// What the API server alone costs for `n` SwarmServices, in a namespace no operator watches:
/// the users' applies, then the writes the operator makes per new service (its finalizer, the
/// ControllerRevision of its generation, its status, each as the operator sends it), 64 at a
/// time. Returns both times: their sum is the floor under any operator's converge here.
async fn api_floor(env: &TestEnv, n: usize, sample: &SwarmService) -> (Duration, Duration, CpuUse) {
    use k8s_openapi::api::{apps::v1::ControllerRevision, core::v1::Namespace};
    let ns = format!("{}-floor", env.namespace);
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let _ = namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await;
    let api: Api<SwarmService> = Api::namespaced(env.client.clone(), &ns);
    let revisions: Api<ControllerRevision> = Api::namespaced(env.client.clone(), &ns);
    let status = serde_json::to_value(&sample.status).unwrap();
    let pid = env.operator_pid().unwrap();
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    apply_all(&api, "floor", 0..n).await;
    let applies = start.elapsed();
    let start = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(64, |i| {
            let (api, revisions, status) = (api.clone(), revisions.clone(), status.clone());
            async move {
                let name = format!("floor-{i}");
                let finalizer = json!({"metadata": {"finalizers": ["bench/floor"]}});
                let svc = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(finalizer))
                    .await
                    .unwrap();
                let revision = swarm_operator_crds::service::history::revision(&svc).unwrap();
                let mut value = serde_json::to_value(&revision).unwrap();
                value["apiVersion"] = "apps/v1".into();
                value["kind"] = "ControllerRevision".into();
                let revision_name = value["metadata"]["name"].as_str().unwrap().to_string();
                revisions
                    .patch(&revision_name, &PatchParams::apply("bench-floor").force(), &Patch::Apply(value))
                    .await
                    .unwrap();
                let status = json!({"apiVersion": "swarmoperator.io/v1alpha1", "kind": "SwarmService", "status": status});
                api.patch_status(&name, &PatchParams::apply("bench-floor").force(), &Patch::Apply(status))
                    .await
                    .unwrap();
            }
        })
        .await;
    let writes = start.elapsed();
    let cpu = cpu_used(&cpu_before, &cpu_seconds(pid));
    // Not timed: release the finalizers and delete.
    stream::iter(0..n)
        .for_each_concurrent(64, |i| {
            let api = api.clone();
            async move {
                let name = format!("floor-{i}");
                let none = json!({"metadata": {"finalizers": null}});
                let _ = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(none))
                    .await;
            }
        })
        .await;
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    revisions
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    (applies, writes, cpu)
}

fn direct_spec(name: &str, namespace: &str) -> ServiceSpec {
    ServiceSpec {
        name: Some(name.to_string()),
        labels: Some(HashMap::from([(
            OWNER_NAMESPACE.to_string(),
            namespace.to_string(),
        )])),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(test_image("1")),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The same `n` service specs created straight through the Engine API, `concurrency` at a time.
async fn direct(docker: &Docker, namespace: &str, n: usize, concurrency: usize) -> Duration {
    let start = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(concurrency, |i| async move {
            let spec = direct_spec(&format!("{namespace}-direct-{i}"), namespace);
            docker.create_service(spec, None).await.unwrap();
        })
        .await;
    let took = start.elapsed();
    stream::iter(0..n)
        .for_each_concurrent(64, |i| async move {
            let _ = docker.delete_service(&format!("{namespace}-direct-{i}")).await;
        })
        .await;
    took
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Out-of-band env changes on converged services, and how long until each is reverted.
async fn drift(env: &TestEnv, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for i in 0..count {
        let name = format!("svc-{i}");
        let service = env.swarm_service(&name).await.unwrap();
        let mut spec = service.spec.clone().unwrap();
        let container = spec
            .task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap();
        container.env = Some(vec![format!("DRIFT={i}")]);
        let version = service.version.and_then(|v| v.index).unwrap() as i32;
        let changed = Instant::now();
        env.docker
            .update_service(
                service.id.as_deref().unwrap(),
                spec,
                UpdateServiceOptions {
                    version,
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        loop {
            let now = env.swarm_service(&name).await.unwrap();
            let env_now = now.spec.and_then(|s| s.task_template?.container_spec?.env);
            if env_now.unwrap_or_default().is_empty() {
                latencies.push(changed.elapsed());
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_secs(120),
                "{name} not reverted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    latencies.sort();
    latencies
}

/// CPU seconds (user + system) used so far by the processes that share the machine during a
/// converge: the API server, etcd, dockerd, the operator and this benchmark.
fn cpu_seconds(operator: u32) -> Vec<(&'static str, f64)> {
    let ticks = |pid: &str| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (n(11) + n(12)) / 100.0
    };
    let mut by_name: HashMap<String, f64> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        *by_name.entry(comm.trim().to_string()).or_default() += ticks(&pid);
    }
    let get = |name: &str| by_name.get(name).copied().unwrap_or(0.0);
    vec![
        ("kube-apiserver", get("kube-apiserver")),
        ("etcd", get("etcd")),
        ("dockerd", get("dockerd") + get("containerd")),
        ("operator", ticks(&operator.to_string())),
        ("bench client", ticks("self")),
    ]
}

/// CPU seconds per process, as a table cell and as JSON.
type CpuUse = (String, serde_json::Value);

/// What each process spent between two `cpu_seconds`.
fn cpu_used(before: &[(&'static str, f64)], after: &[(&'static str, f64)]) -> CpuUse {
    let used: Vec<(&str, f64)> = before
        .iter()
        .zip(after)
        .map(|((name, b), (_, a))| (*name, a - b))
        .collect();
    let cell = used
        .iter()
        .map(|(name, s)| format!("{name} {s:.1} s"))
        .collect::<Vec<_>>()
        .join(", ");
    let json = used.iter().map(|(n, s)| (n.to_string(), json!(s))).collect();
    (cell, serde_json::Value::Object(json))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Resets the process's peak RSS (VmHWM) to its current RSS, so each phase reports its own peak.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// The operator's counters that a phase is judged by, as differences between two scrapes.
struct Counters {
    passes: f64,
    engine_reads: f64,
    engine_writes: f64,
    kube_writes: f64,
    /// POSTs: creates, dry-run creates and events.
    kube_creates: f64,
    status_writes: f64,
}

impl Counters {
    async fn scrape(port: u16) -> String {
        http_get(port, "/metrics").await.unwrap()
    }

    fn between(before: &str, after: &str) -> Counters {
        let d = |name: &str, labels: &[&str]| metric(after, name, labels) - metric(before, name, labels);
        Counters {
            passes: d("swarm_operator_reconciles_total", &[]),
            engine_reads: d("swarm_operator_engine_api_calls_total", &[r#"access="read""#]),
            engine_writes: d("swarm_operator_engine_api_calls_total", &[r#"access="write""#]),
            kube_writes: d("swarm_operator_kubernetes_writes_total", &[]),
            kube_creates: d("swarm_operator_kubernetes_writes_total", &[r#"method="POST""#]),
            status_writes: d("swarm_operator_status_writes_total", &[]),
        }
    }

    fn per(&self, n: f64) -> serde_json::Value {
        json!({"passes": self.passes / n, "engine_reads": self.engine_reads / n,
               "engine_writes": self.engine_writes / n, "kubernetes_writes": self.kube_writes / n,
               "status_writes": self.status_writes / n})
    }
}

/// A stack file of `n` services with no replicas, as a Swarm user writes one.
fn stack_file(n: usize) -> String {
    let mut file = String::from("version: \"3.8\"\nservices:\n");
    for i in 0..n {
        file.push_str(&format!(
            "  s{i}:\n    image: {}\n    deploy:\n      replicas: 0\n",
            test_image("1")
        ));
    }
    file
}

/// `docker stack deploy --resolve-image never` of `n` services, timed until the CLI returns (it
/// has created every service then); removed afterwards, untimed.
async fn cli_stack(env: &TestEnv, n: usize) -> (Duration, CpuUse) {
    let name = format!("{}-cli{n}", env.prefix);
    let dir = std::env::temp_dir().join(format!("bench-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("docker-stack.yml");
    std::fs::write(&file, stack_file(n)).unwrap();
    let pid = env.operator_pid().unwrap();
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    let out = std::process::Command::new("docker")
        .args([
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "--detach=true",
            "-c",
        ])
        .arg(&file)
        .arg(&name)
        .output()
        .unwrap();
    let took = start.elapsed();
    let cpu = cpu_used(&cpu_before, &cpu_seconds(pid));
    assert!(
        out.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = docker_cli_lines(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.stack.namespace={name}"),
    ]);
    assert_eq!(count, n, "docker stack deploy made every service");
    let _ = std::process::Command::new("docker")
        .args(["stack", "rm", &name])
        .output();
    while docker_cli_lines(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.stack.namespace={name}"),
    ]) > 0
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (took, cpu)
}

fn docker_cli_lines(args: &[&str]) -> usize {
    let out = std::process::Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The same file as a SwarmStack: timed from the apply until the stack is Ready at its generation
/// (every SwarmService it made Ready: each Swarm service exists as the file says). Deleted
/// afterwards, untimed. With the operator's peak RSS until Ready.
async fn operator_stack(env: &TestEnv, n: usize) -> (Duration, CpuUse, Counters, f64) {
    use futures::TryStreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    use swarm_operator_crds::SwarmStack;
    let name = format!("op{n}");
    let api: Api<SwarmStack> = Api::namespaced(env.client.clone(), &env.namespace);
    let manifest = json!({"apiVersion": "swarmoperator.io/v1alpha1", "kind": "SwarmStack",
        "metadata": {"name": name}, "spec": {"compose": stack_file(n)}});
    let pid = env.operator_pid().unwrap();
    let port = env.metrics_port;
    let cpu_before = cpu_seconds(pid);
    let metrics_before = Counters::scrape(port).await;
    let start = Instant::now();
    api.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(manifest))
        .await
        .unwrap();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut changes = std::pin::pin!(watcher(api.clone(), config).applied_objects());
    while let Some(s) = changes.try_next().await.unwrap() {
        let ready = s.status.as_ref().is_some_and(|st| {
            st.observed_generation == s.metadata.generation
                && st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            break;
        }
    }
    let took = start.elapsed();
    let peak_rss = rss_mib(pid, "VmHWM:");
    let counters = Counters::between(&metrics_before, &Counters::scrape(port).await);
    let cpu = cpu_used(&cpu_before, &cpu_seconds(pid));
    let on_swarm = docker_cli_lines(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.stack.namespace={name}"),
    ]);
    assert_eq!(
        on_swarm, n,
        "Ready means every service of the stack is on the swarm"
    );
    // Its children deleted here rather than left to the garbage collector, which after the
    // sizes' tens of thousands of deletions took 15 minutes to come to a foreground deletion.
    api.delete(&name, &DeleteParams::background()).await.unwrap();
    delete_all(env).await;
    let networks: Api<swarm_operator_crds::SwarmNetwork> =
        Api::namespaced(env.client.clone(), &env.namespace);
    networks
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    while api.get_opt(&name).await.unwrap().is_some()
        || !networks
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (took, cpu, counters, peak_rss)
}

/// Starts the operator as the bench runs it and waits until it reports ready.
async fn start_ready(env: &mut TestEnv, resync: &str, engine_qps: &str) {
    env.start_operator_with(&["--resync-seconds", resync, "--engine-qps", engine_qps]);
    while http_get(env.metrics_port, "/readyz").await.is_err() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let mut env = TestEnv::new("bench").await;
    // As deployed: info. Debug logs a line per decision and costs CPU the swarm shares.
    env.rust_log = "info,kube=warn".into();
    let resync = args.resync.to_string();
    start_ready(&mut env, &resync, &args.engine_qps).await;
    println!(
        "operator: --engine-qps {} --resync-seconds {resync}",
        args.engine_qps
    );
    let port = env.metrics_port;
    let pid = env.operator_pid().unwrap();
    let mut results = serde_json::Map::new();
    let machine = machine();
    results.insert("machine".into(), json!(machine));
    results.insert("date".into(), json!(today()));
    let mut table = vec![format!("machine: {machine}")];
    let idle_rss = rss_mib(pid, "VmRSS:");
    results.insert("idle_rss_mib".into(), json!(idle_rss));

    // The best concurrency for the direct path, tried on 100 services.
    let mut best = (usize::MAX, Duration::MAX);
    for c in [1, 8, 32, 64] {
        let took = direct(&env.docker, &env.namespace, 100, c).await;
        if took < best.1 {
            best = (c, took);
        }
    }
    let concurrency = best.0;
    results.insert("direct_concurrency".into(), json!(concurrency));

    let mut per_object = Vec::new();
    for &n in &args.sizes {
        let nf = n as f64;
        // Create.
        reset_peak(pid);
        let rss_before = rss_mib(pid, "VmRSS:");
        let cpu_before = cpu_seconds(pid);
        let metrics_before = Counters::scrape(port).await;
        let (applied, created) = converge(&env, 0, n).await;
        let counters = Counters::between(&metrics_before, &Counters::scrape(port).await);
        let (cpu_cell, cpu_json) = cpu_used(&cpu_before, &cpu_seconds(pid));
        let operator_cpu = cpu_json["operator"].as_f64().unwrap_or(0.0);
        let create_rss = rss_mib(pid, "VmHWM:");
        say(
            &mut table,
            format!(
                "N={n} create | {created:.2?} ({:.3} ms/object; the API server took the applies in {applied:.2?}) | per object: {:.2} passes, {:.2} Kubernetes writes ({:.2} status), {:.2} Engine reads, {:.2} Engine writes, {:.3} operator CPU-ms | peak RSS {create_rss:.1} MiB",
                created.as_secs_f64() * 1000.0 / nf,
                counters.passes / nf,
                counters.kube_writes / nf,
                counters.status_writes / nf,
                counters.engine_reads / nf,
                counters.engine_writes / nf,
                operator_cpu * 1000.0 / nf,
            ),
        );
        say(&mut table, format!("  CPU while creating N={n} | {cpu_cell}"));
        // A status as the operator writes it, for the API-server-alone figure.
        let sample = env.services().get("svc-0").await.unwrap();

        // No-op resync: every object's resync pass comes once in `resync` seconds.
        let before = Counters::scrape(port).await;
        let cpu_before = cpu_seconds(pid);
        tokio::time::sleep(Duration::from_secs(args.resync + 5)).await;
        let rest = Counters::between(&before, &Counters::scrape(port).await);
        let (_, rest_cpu) = cpu_used(&cpu_before, &cpu_seconds(pid));
        let minutes = (args.resync + 5) as f64 / 60.0;
        let rest_operator_cpu = rest_cpu["operator"].as_f64().unwrap_or(0.0);
        say(
            &mut table,
            format!(
                "N={n} at rest, {} s (one resync) | {:.0} passes/min | {:.0} Engine reads/min | {:.0} Engine writes/min | {:.0} Kubernetes writes/min | operator {:.3} CPU-ms per pass, {:.1}% of a core",
                args.resync + 5,
                rest.passes / minutes,
                rest.engine_reads / minutes,
                rest.engine_writes / minutes,
                rest.kube_writes / minutes,
                rest_operator_cpu * 1000.0 / rest.passes.max(1.0),
                rest_operator_cpu * 100.0 / (minutes * 60.0),
            ),
        );
        let peak_rss = rss_mib(pid, "VmHWM:");

        // Drift: out-of-band changes, each timed until reverted.
        let lat = drift(&env, args.drift.min(n)).await;
        let (p50, p95, max) = (percentile(&lat, 0.5), percentile(&lat, 0.95), lat[lat.len() - 1]);
        say(
            &mut table,
            format!(
                "N={n} drift of {} services | repaired p50 {p50:.2?}, p95 {p95:.2?}, max {max:.2?}",
                lat.len()
            ),
        );

        // Delete.
        let metrics_before = Counters::scrape(port).await;
        let deleted = delete_all(&env).await;
        let deletes = Counters::between(&metrics_before, &Counters::scrape(port).await);
        say(
            &mut table,
            format!(
                "N={n} delete | {deleted:.2?} ({:.3} ms/object) | per object: {:.2} Kubernetes writes, {:.2} Engine writes",
                deleted.as_secs_f64() * 1000.0 / nf,
                deletes.kube_writes / nf,
                deletes.engine_writes / nf
            ),
        );

        // The API server alone, and the Engine alone.
        let (floor_applies, floor_writes, (floor_cpu_cell, floor_cpu)) = api_floor(&env, n, &sample).await;
        let floor = floor_applies + floor_writes;
        let cpu_before = cpu_seconds(pid);
        let direct_took = direct(&env.docker, &env.namespace, n, concurrency).await;
        let (direct_cpu_cell, direct_cpu) = cpu_used(&cpu_before, &cpu_seconds(pid));
        let over_floor = created.as_secs_f64() / floor.as_secs_f64();
        let over_direct = created.as_secs_f64() / direct_took.as_secs_f64();
        say(
            &mut table,
            format!(
                "N={n} converge against the floor | operator {created:.2?} | API server alone {floor:.2?} (applies {floor_applies:.2?}, then per object the finalizer, revision and status {floor_writes:.2?}) | {over_floor:.2}x the API server alone (target < 1.1x) | Engine API direct (concurrency {concurrency}) {direct_took:.2?}: {over_direct:.1}x"
            ),
        );
        say(&mut table, format!("  CPU, API server alone | {floor_cpu_cell}"));
        say(
            &mut table,
            format!("  CPU, Engine API direct | {direct_cpu_cell}"),
        );
        per_object.push((
            n,
            created.as_secs_f64() * 1000.0 / nf,
            deleted.as_secs_f64() * 1000.0 / nf,
            (peak_rss - idle_rss.min(rss_before)) * 1024.0 / nf,
            operator_cpu * 1000.0 / nf,
        ));
        results.insert(
            format!("n_{n}"),
            json!({
                "create_s": created.as_secs_f64(), "applied_s": applied.as_secs_f64(),
                "create_per_object": counters.per(nf), "create_cpu_s": cpu_json,
                "peak_rss_mib": peak_rss, "create_peak_rss_mib": create_rss,
                "at_rest_per_minute": {"passes": rest.passes / minutes, "engine_reads": rest.engine_reads / minutes,
                    "engine_writes": rest.engine_writes / minutes, "kubernetes_writes": rest.kube_writes / minutes,
                    "operator_cpu_ms_per_pass": rest_operator_cpu * 1000.0 / rest.passes.max(1.0)},
                "drift_ms": {"n": lat.len(), "p50": p50.as_millis(), "p95": p95.as_millis(), "max": max.as_millis()},
                "delete_s": deleted.as_secs_f64(), "delete_per_object": deletes.per(nf),
                "api_floor_s": floor.as_secs_f64(), "api_floor_applies_s": floor_applies.as_secs_f64(),
                "api_floor_cpu_s": floor_cpu, "ratio_to_api_floor": over_floor,
                "direct_s": direct_took.as_secs_f64(), "direct_cpu_s": direct_cpu, "ratio_to_direct": over_direct,
            }),
        );
    }
    // Stacks: the operator against `docker stack deploy`, same file, same swarm. After the sizes,
    // whose memory figures would otherwise start from what a stack of 1000 left allocated, and in
    // an operator started afresh: the one that held 10,000 objects keeps its heap that large
    // (glibc keeps what is freed), which would hide a stack's own peak.
    if !args.stacks.is_empty() {
        // The sizes' ControllerRevisions, which Kubernetes' garbage collector would otherwise be
        // deleting (10,000 of them, for minutes) while the stacks are timed.
        use k8s_openapi::api::apps::v1::ControllerRevision;
        let revisions: Api<ControllerRevision> = Api::namespaced(env.client.clone(), &env.namespace);
        revisions
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .unwrap();
        while !revisions
            .list(&ListParams::default().limit(1))
            .await
            .unwrap()
            .items
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        env.stop_operator(Duration::from_secs(30)).await;
        start_ready(&mut env, &resync, &args.engine_qps).await;
    }
    let pid = env.operator_pid().unwrap();
    for &n in &args.stacks {
        let (cli, cli_cpu) = cli_stack(&env, n).await;
        reset_peak(pid);
        let rss_before = rss_mib(pid, "VmRSS:");
        let (op, op_cpu, counters, stack_rss) = operator_stack(&env, n).await;
        let ratio = op.as_secs_f64() / cli.as_secs_f64();
        let target = if n <= 200 { 2.0 } else { 3.0 };
        say(
            &mut table,
            format!(
                "stack of {n} services | SwarmStack Ready {op:.2?} | docker stack deploy --resolve-image never {cli:.2?} | ratio {ratio:.2}x (target < {target}x) | peak RSS until Ready {stack_rss:.1} MiB (RSS before {rss_before:.1} MiB) | operator: {:.2} passes, {:.2} Kubernetes writes ({:.2} creates, {:.2} status), {:.2} Engine reads per service",
                counters.passes / n as f64,
                counters.kube_writes / n as f64,
                counters.kube_creates / n as f64,
                counters.status_writes / n as f64,
                counters.engine_reads / n as f64
            ),
        );
        say(&mut table, format!("  CPU, SwarmStack | {}", op_cpu.0));
        say(&mut table, format!("  CPU, docker stack deploy | {}", cli_cpu.0));
        results.insert(
            format!("stack_{n}"),
            json!({"operator_s": op.as_secs_f64(), "docker_stack_deploy_s": cli.as_secs_f64(), "ratio": ratio,
                   "operator_cpu_s": op_cpu.1, "cli_cpu_s": cli_cpu.1, "per_service": counters.per(n as f64),
                   "peak_rss_mib": stack_rss, "rss_before_mib": rss_before}),
        );
    }

    say(
        &mut table,
        "per object, by N | create ms | delete ms | peak RSS KiB above idle | operator CPU-ms to create"
            .into(),
    );
    for (n, create, delete, rss, cpu) in &per_object {
        say(
            &mut table,
            format!("  N={n} | {create:.3} | {delete:.3} | {rss:.2} | {cpu:.3}"),
        );
    }
    println!("\n{}", table.join("\n"));
    results.insert("table".into(), json!(table));
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
    println!("\nwritten: target/bench/results.json");
}

/// A line of the table, printed as soon as it is known (a run at 10,000 takes a while).
fn say(table: &mut Vec<String>, line: String) {
    println!("{line}");
    table.push(line);
}

/// This machine, as the table names it: CPU model, cores, memory, kernel.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = rss_mib_of_meminfo();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {} cores, {mem:.0} GiB, Linux {}",
        cores(),
        kernel.trim()
    )
}

fn rss_mib_of_meminfo() -> f64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0)
}

fn today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
