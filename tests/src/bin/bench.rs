//! The benchmark (scripts/bench.sh runs it): the operator against the Engine API itself, in one run
//! on the local swarm and API server. Prints a table and writes target/bench/results.json. Figures,
//! not assertions: targets are compared in the printout.
//!
//!   bench [--sizes 100,1000] [--drift 50] [--rest 120] [--rss 1000,5000] [--engine-qps 1000]
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

struct Args {
    /// Passed to the operator's --engine-qps.
    engine_qps: String,
    sizes: Vec<usize>,
    drift: usize,
    rest: u64,
    rss: Vec<usize>,
}

fn args() -> Args {
    let mut a = Args {
        engine_qps: "1000".into(),
        sizes: vec![100, 1000],
        drift: 50,
        rest: 120,
        rss: vec![1000, 5000],
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let list = |v: &str| v.split(',').filter_map(|n| n.trim().parse().ok()).collect();
    for pair in argv.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--sizes", Some(v)) => a.sizes = list(v),
            ("--drift", Some(v)) => a.drift = v.parse().unwrap(),
            ("--rest", Some(v)) => a.rest = v.parse().unwrap(),
            ("--rss", Some(v)) => a.rss = list(v),
            ("--engine-qps", Some(v)) => a.engine_qps = v.clone(),
            _ => panic!(
                "usage: bench [--sizes 100,1000] [--drift 50] [--rest 120] [--rss 1000,5000] [--engine-qps N]"
            ),
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
    env.services()
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    while !env.owned_services().await.is_empty()
        || !env
            .services()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

/// What the API server alone costs for `n` SwarmServices, in a namespace no operator watches:
/// the users' applies, then the writes the operator makes per new service (its finalizer, the
/// status `status` in server-side apply, one Created event), each 64 at a time. Returns both
/// times: their sum is the floor under any operator's converge on this machine.
async fn api_floor(env: &TestEnv, n: usize, status: &serde_json::Value) -> (Duration, Duration, CpuUse) {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::{
        Resource,
        runtime::events::{Event, EventType, Recorder, Reporter},
    };
    let ns = format!("{}-floor", env.namespace);
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let _ = namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await;
    let api: Api<SwarmService> = Api::namespaced(env.client.clone(), &ns);
    let pid = env.operator_pid().unwrap();
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    apply_all(&api, "floor", 0..n).await;
    let applies = start.elapsed();
    let recorder = Recorder::new(
        env.client.clone(),
        Reporter {
            controller: "bench-floor".into(),
            instance: None,
        },
    );
    let start = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(64, |i| {
            let (api, recorder) = (api.clone(), recorder.clone());
            async move {
                let name = format!("floor-{i}");
                let finalizer = json!({"metadata": {"finalizers": ["bench/floor"]}});
                let svc = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(finalizer))
                    .await
                    .unwrap();
                let status = json!({"apiVersion": "swarmoperator.io/v1alpha1", "kind": "SwarmService", "status": status});
                api.patch_status(&name, &PatchParams::apply("bench-floor").force(), &Patch::Apply(status))
                    .await
                    .unwrap();
                let event = Event {
                    type_: EventType::Normal,
                    reason: "Created".into(),
                    note: Some(format!("Created Swarm service {name}")),
                    action: "Create".into(),
                    secondary: None,
                };
                recorder.publish(&event, &svc.object_ref(&())).await.unwrap();
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

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let args = args();
    let mut env = TestEnv::new("bench").await;
    env.start_operator_with(&["--resync-seconds", "60", "--engine-qps", &args.engine_qps]);
    println!("operator: --engine-qps {} --resync-seconds 60", args.engine_qps);
    let port = env.metrics_port;
    while http_get(port, "/readyz").await.is_err() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = env.operator_pid().unwrap();
    let mut results = serde_json::Map::new();
    let mut table = Vec::new();

    // The best concurrency for the direct path, tried on 100 services.
    let mut best = (usize::MAX, Duration::MAX);
    for c in [1, 8, 32, 64] {
        let took = direct(&env.docker, &env.namespace, 100, c).await;
        println!("direct, 100 services, concurrency {c}: {took:?}");
        if took < best.1 {
            best = (c, took);
        }
    }
    let concurrency = best.0;
    results.insert("direct_concurrency".into(), json!(concurrency));

    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    for &n in &args.sizes {
        let cpu_before = cpu_seconds(pid);
        let metrics_before = http_get(port, "/metrics").await.unwrap();
        let (applied, operator) = converge(&env, 0, n).await;
        let metrics_after = http_get(port, "/metrics").await.unwrap();
        let per_service = |name: &str, labels: &[&str]| {
            (metric(&metrics_after, name, labels) - metric(&metrics_before, name, labels)) / n as f64
        };
        let passes = per_service("swarm_operator_reconciles_total", &[]);
        let reads = per_service("swarm_operator_engine_api_calls_total", &[r#"access="read""#]);
        let writes = per_service("swarm_operator_engine_api_calls_total", &[r#"access="write""#]);
        table.push(format!(
            "work per new service, N={n} | {passes:.2} passes | {reads:.2} Engine reads | {writes:.2} Engine writes"
        ));
        results.insert(
            format!("per_service_{n}"),
            json!({"passes": passes, "engine_reads": reads, "engine_writes": writes}),
        );
        // A status as the operator writes it, for the API-server-alone figure.
        let status = serde_json::to_value(env.services().get("svc-0").await.unwrap().status).unwrap();
        let (cpu_cell, cpu_json) = cpu_used(&cpu_before, &cpu_seconds(pid));
        table.push(format!(
            "CPU while converging N={n} ({operator:.2?} wall, {:.1} CPU-s on {} cores) | {cpu_cell}",
            operator.as_secs_f64() * cores() as f64,
            cores()
        ));
        results.insert(format!("converge_cpu_s_{n}"), cpu_json);
        if n == largest {
            let lat = drift(&env, args.drift.min(n)).await;
            if !lat.is_empty() {
                let (p50, p95, max) = (percentile(&lat, 0.5), percentile(&lat, 0.95), lat[lat.len() - 1]);
                table.push(format!(
                    "drift repair ({} changes at N={n}) | p50 {p50:.2?} | p95 {p95:.2?} | max {max:.2?} | target p95 < 2 s",
                    lat.len()
                ));
                results.insert(
                    "drift_ms".into(),
                    json!({"n": n, "p50": p50.as_millis(), "p95": p95.as_millis(), "max": max.as_millis()}),
                );
            }
            let before = http_get(port, "/metrics").await.unwrap();
            tokio::time::sleep(Duration::from_secs(args.rest)).await;
            let after = http_get(port, "/metrics").await.unwrap();
            let per_min = |name: &str, labels: &[&str]| {
                (metric(&after, name, labels) - metric(&before, name, labels)) * 60.0 / args.rest as f64
            };
            let reads = per_min("swarm_operator_engine_api_calls_total", &[r#"access="read""#]);
            let writes = per_min("swarm_operator_engine_api_calls_total", &[r#"access="write""#]);
            let status = per_min("swarm_operator_status_writes_total", &[]);
            let passes = per_min("swarm_operator_reconciles_total", &[]);
            table.push(format!(
                "at rest, N={n}, {} s | {passes:.0} passes/min | {reads:.0} Engine reads/min | {writes:.0} Engine writes/min | {status:.0} status writes/min | target 0 writes",
                args.rest
            ));
            results.insert(
                "at_rest_per_minute".into(),
                json!({"n": n, "passes": passes, "engine_reads": reads, "engine_writes": writes, "status_writes": status}),
            );
        }
        if args.rss.contains(&n) {
            results.insert(format!("peak_rss_mib_{n}"), json!(peak_rss_mib(pid)));
        }
        let deleted = delete_all(&env).await;
        let (floor_applies, floor_writes, (cpu_cell, cpu_json)) = api_floor(&env, n, &status).await;
        let floor = floor_applies + floor_writes;
        table.push(format!(
            "API server alone, N={n} | {floor:.2?}: the applies {floor_applies:.2?}, then the operator's writes (finalizer, status, event) {floor_writes:.2?} | {cpu_cell}"
        ));
        results.insert(
            format!("api_floor_{n}"),
            json!({"applies_s": floor_applies.as_secs_f64(), "operator_writes_s": floor_writes.as_secs_f64(), "cpu_s": cpu_json}),
        );
        let cpu_before = cpu_seconds(pid);
        let direct_took = direct(&env.docker, &env.namespace, n, concurrency).await;
        let (cpu_cell, cpu_json) = cpu_used(&cpu_before, &cpu_seconds(pid));
        table.push(format!(
            "CPU while creating N={n} directly ({direct_took:.2?} wall) | {cpu_cell}"
        ));
        results.insert(format!("direct_cpu_s_{n}"), cpu_json);
        let ratio = operator.as_secs_f64() / direct_took.as_secs_f64();
        let over_floor = operator.as_secs_f64() / floor.as_secs_f64();
        table.push(format!(
            "converge N={n} | operator {operator:.2?} (API server accepting the {n} resources: {applied:.2?}) | Engine API direct (concurrency {concurrency}) {direct_took:.2?} | ratio {ratio:.2}x | {over_floor:.2}x the API server alone | delete all {deleted:.2?}"
        ));
        results.insert(
            format!("converge_{n}"),
            json!({"operator_s": operator.as_secs_f64(), "applied_s": applied.as_secs_f64(), "direct_s": direct_took.as_secs_f64(), "ratio": ratio, "api_floor_s": floor.as_secs_f64(), "ratio_to_api_floor": over_floor, "delete_s": deleted.as_secs_f64()}),
        );
    }
    for &n in &args.rss {
        if results.contains_key(&format!("peak_rss_mib_{n}")) {
            continue;
        }
        let (_, took) = converge(&env, 0, n).await;
        results.insert(format!("peak_rss_mib_{n}"), json!(peak_rss_mib(pid)));
        println!("converged {n} for the memory figure in {took:.2?}");
        delete_all(&env).await;
    }
    for &n in &args.rss {
        let rss = results[&format!("peak_rss_mib_{n}")].as_f64().unwrap_or(0.0);
        table.push(format!(
            "peak RSS with {n} resources | {rss:.1} MiB | target < 64 MiB at 1000"
        ));
    }
    println!("\n{}", table.join("\n"));
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
    println!("\nwritten: target/bench/results.json");
}
