//! The operator's own endpoints and what it costs at rest, read from its metrics, on the real API
//! server and swarm.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use swarm_operator_e2e::{TestEnv, http_get, sample, test_image};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn metrics_move_and_an_idle_operator_writes_nothing() {
    let mut env = TestEnv::new("runtime").await;
    env.start_operator_with(&["--resync-seconds", "2"]);
    let port = env.metrics_port;
    env.wait_for("/healthz and /readyz", Duration::from_secs(30), || async {
        http_get(port, "/healthz").await?;
        http_get(port, "/readyz").await
    })
    .await;

    let name = format!("{}-idle", env.prefix);
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}}}",
        test_image("1")
    ))
    .await;
    env.wait_ready(&name, Duration::from_secs(120)).await;
    let before = http_get(port, "/metrics").await.unwrap();
    let reconciles = "swarm_operator_reconciles_total";
    assert!(
        sample(
            &before,
            reconciles,
            &[r#"kind="SwarmService""#, r#"outcome="ok""#]
        ) >= 1.0,
        "{before}"
    );
    let calls = "swarm_operator_engine_api_calls_total";
    assert_eq!(
        sample(
            &before,
            calls,
            &[r#"operation="create service""#, r#"access="write""#]
        ),
        1.0,
        "{before}"
    );
    assert!(
        sample(
            &before,
            "swarm_operator_status_writes_total",
            &[r#"kind="SwarmService""#]
        ) >= 1.0
    );
    assert!(before.contains("swarm_operator_reconcile_duration_seconds_bucket"));

    // At rest (nothing changes, resync every 2 s): passes happen and read, but write nothing.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = http_get(port, "/metrics").await.unwrap();
    let passes = sample(&after, reconciles, &[r#"kind="SwarmService""#])
        - sample(&before, reconciles, &[r#"kind="SwarmService""#]);
    let reads = sample(&after, calls, &[r#"access="read""#]) - sample(&before, calls, &[r#"access="read""#]);
    let writes =
        sample(&after, calls, &[r#"access="write""#]) - sample(&before, calls, &[r#"access="write""#]);
    let status_writes = sample(&after, "swarm_operator_status_writes_total", &[])
        - sample(&before, "swarm_operator_status_writes_total", &[]);
    println!(
        "10 s at rest: {passes} reconcile passes, {reads} Engine reads, {writes} Engine writes, {status_writes} status writes"
    );
    assert!(passes >= 3.0, "the resync ran: {passes} passes");
    assert!(reads > 0.0, "passes read the swarm");
    assert_eq!(writes, 0.0, "Engine writes at rest");
    assert_eq!(status_writes, 0.0, "status writes at rest");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn an_out_of_band_change_is_reverted_from_the_event_stream_without_a_resync() {
    let mut env = TestEnv::new("events").await;
    // An hour between resyncs: only the Engine's event stream can bring the change in.
    env.start_operator_with(&["--resync-seconds", "3600"]);
    let name = format!("{}-web", env.prefix);
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}, replicas: 1, env: [{{name: MODE, value: managed}}]}}",
        test_image("1")
    ))
    .await;
    env.wait_ready(&name, Duration::from_secs(120)).await;
    let port = env.metrics_port;
    let before = http_get(port, "/metrics").await.unwrap();

    let changed = std::time::Instant::now();
    env.docker_cli(&[
        "service",
        "update",
        "--detach",
        "--env-add",
        "MODE=drifted",
        &name,
    ]);
    env.wait_for(
        "the operator to revert the change",
        Duration::from_secs(60),
        || async {
            let spec = env.swarm_service_json(&name);
            let envs = spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].clone();
            if envs == serde_json::json!(["MODE=managed"]) {
                Ok(())
            } else {
                Err(format!("{envs}"))
            }
        },
    )
    .await;
    println!(
        "out-of-band change reverted {:?} after it was made",
        changed.elapsed()
    );
    let after = http_get(port, "/metrics").await.unwrap();
    let corrected = sample(&after, "swarm_operator_drift_corrections_total", &[])
        - sample(&before, "swarm_operator_drift_corrections_total", &[]);
    assert_eq!(corrected, 1.0, "{after}");
    assert!(sample(&after, "swarm_operator_engine_events_total", &[r#"result="ok""#]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn two_replicas_only_the_leader_writes_and_the_standby_takes_over() {
    let mut env = TestEnv::new("leader").await;
    let lease = ["--lease-duration-seconds", "6", "--resync-seconds", "30"];
    let (_, standby) = leader_and_standby(&mut env, &lease, &lease).await;
    let leading = |text: &str| sample(text, "swarm_operator_leader", &[]);

    let manifest = |name: &str| service_manifest(name, 1);
    let first = format!("{}-first", env.prefix);
    env.apply(&manifest(&first)).await;
    env.wait_ready(&first, Duration::from_secs(120)).await;
    let m = http_get(standby, "/metrics").await.unwrap();
    assert_eq!(leading(&m), 0.0, "the standby does not lead");
    let writes = |m: &str| {
        sample(m, "swarm_operator_engine_api_calls_total", &[r#"access="write""#])
            + sample(m, "swarm_operator_status_writes_total", &[])
            + sample(m, "swarm_operator_reconciles_total", &[])
    };
    assert_eq!(writes(&m), 0.0, "the standby neither reconciles nor writes: {m}");

    // The leader dies with work pending: the standby takes the lease once it expires and does it.
    env.kill_operator();
    let killed = std::time::Instant::now();
    let second = format!("{}-second", env.prefix);
    env.apply(&manifest(&second)).await;
    env.wait_ready(&second, Duration::from_secs(120)).await;
    println!(
        "standby finished the pending work {:?} after the leader died (lease 6 s)",
        killed.elapsed()
    );
    let m = http_get(standby, "/metrics").await.unwrap();
    assert_eq!(leading(&m), 1.0);
    assert!(writes(&m) > 0.0);
    assert!(env.swarm_service(&second).await.is_some());
    env.wait_ready(&first, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn a_leader_asked_to_stop_exits_and_hands_over_before_its_lease_ends() {
    let mut env = TestEnv::new("stop").await;
    // A long lease: a standby that waited for it to expire would take 20 s.
    let lease = ["--lease-duration-seconds", "20"];
    let (_, standby) = leader_and_standby(&mut env, &lease, &lease).await;
    let manifest = |name: &str| service_manifest(name, 0);
    let first = format!("{}-first", env.prefix);
    env.apply(&manifest(&first)).await;
    env.wait_ready(&first, Duration::from_secs(120)).await;

    // What Kubernetes does to a pod it deletes (a rollout, a drain): SIGTERM, and SIGKILL after
    // the grace period (30 s by default). The leader finishes, lets the lease go, and exits.
    let stopped = std::time::Instant::now();
    let (exit, took) = env
        .stop_operator(Duration::from_secs(15))
        .await
        .expect("the leader exits within 15 s of SIGTERM");
    assert!(exit.success(), "the leader exits cleanly: {exit}");
    assert!(env.operator_log().contains("released the leader lease"));
    env.wait_for("the standby to lead", Duration::from_secs(15), || async {
        let m = http_get(standby, "/metrics").await?;
        if leads(&m) { Ok(()) } else { Err(m) }
    })
    .await;
    println!(
        "the leader exited {took:?} after SIGTERM; the standby led {:?} after it (lease 20 s)",
        stopped.elapsed()
    );
    let second = format!("{}-second", env.prefix);
    env.apply(&manifest(&second)).await;
    env.wait_ready(&second, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn a_leader_frozen_past_its_lease_writes_nothing_once_resumed() {
    let mut env = TestEnv::new("frozen").await;
    // One Engine call a second: the leader's passes wait between calls, so it can be frozen with
    // a write on its way, as a GC pause or a stalled VM catches a process.
    env.start_operator_with(&["--lease-duration-seconds", "4", "--engine-qps", "1"]);
    let old = env.metrics_port;
    let leading = |text: &str| sample(text, "swarm_operator_leader", &[]);
    env.wait_for("the first replica to lead", Duration::from_secs(30), || async {
        let m = http_get(old, "/metrics").await?;
        if leading(&m) == 1.0 { Ok(()) } else { Err(m) }
    })
    .await;
    let manifest = |name: &str| service_manifest(name, 0);
    let first = format!("{}-first", env.prefix);
    env.apply(&manifest(&first)).await;
    env.wait_ready(&first, Duration::from_secs(120)).await;
    let standby = env.start_standby(&["--lease-duration-seconds", "4"]);
    env.wait_for("the standby to answer", Duration::from_secs(30), || async {
        http_get(standby, "/healthz").await
    })
    .await;

    // Four services at once: the first create goes, the others wait their turn at one Engine
    // call a second. Freeze the leader then, with writes on their way, as a GC pause or a stalled
    // VM catches a process.
    let writes = |m: &str| {
        sample(m, "swarm_operator_engine_api_calls_total", &[r#"access="write""#])
            + sample(m, "swarm_operator_kubernetes_writes_total", &[])
    };
    let waited = |m: &str| sample(m, "swarm_operator_engine_throttled_seconds_total", &[]);
    let idle = waited(&http_get(old, "/metrics").await.unwrap());
    let names: Vec<String> = ["second", "third", "fourth", "fifth"]
        .iter()
        .map(|n| format!("{}-{n}", env.prefix))
        .collect();
    let manifests: Vec<String> = names.iter().map(|n| manifest(n)).collect();
    futures::future::join_all(manifests.iter().map(|m| env.apply(m))).await;
    // Frozen once a create waits its turn and no Kubernetes write has gone for a moment: a write
    // counted just before the signal would otherwise pass for one sent after it.
    let start = std::time::Instant::now();
    let before = loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no write waited its turn"
        );
        let first = http_get(old, "/metrics").await.unwrap();
        if waited(&first) > idle {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let second = http_get(old, "/metrics").await.unwrap();
            if writes(&second) == writes(&first) {
                break second;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    env.signal_operator("STOP");
    let frozen = std::time::Instant::now();
    let mut created = 0;
    for name in &names {
        created += usize::from(env.swarm_service(name).await.is_some());
    }
    assert!(
        created < names.len(),
        "frozen before it created all the services ({created} of {})",
        names.len()
    );
    // The standby takes the lease by its own clock and does the rest.
    for name in &names {
        env.wait_ready(name, Duration::from_secs(60)).await;
    }
    let m = http_get(standby, "/metrics").await.unwrap();
    assert_eq!(leading(&m), 1.0);
    println!(
        "the standby led and created {} services {:?} after the leader froze (lease 4 s)",
        names.len() - created,
        frozen.elapsed()
    );

    // The old leader resumes with a call about to go: it must see that it lost the lease before
    // anything reaches the Engine or the API server.
    env.signal_operator("CONT");
    let after = env
        .wait_for(
            "the old leader to stand by again",
            Duration::from_secs(30),
            || async {
                let m = http_get(old, "/metrics").await?;
                if leading(&m) == 0.0 && env.operator_log().contains("standing by again") {
                    Ok(m)
                } else {
                    Err(m)
                }
            },
        )
        .await;
    println!(
        "the old leader after it resumed: {} writes refused, {} sent",
        sample(&after, "swarm_operator_writes_refused_total", &[]).max(0.0),
        writes(&after) - writes(&before)
    );
    assert_eq!(
        writes(&after),
        writes(&before),
        "the old leader wrote after it resumed: {after}"
    );
    for name in &names {
        let services = swarm_operator_e2e::services_named(&env.docker, name).await;
        assert_eq!(services.len(), 1, "{name}: one service, created once");
    }
    let m = http_get(standby, "/metrics").await.unwrap();
    assert_eq!(leading(&m), 1.0, "the new leader keeps the lease");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn engine_calls_wait_for_the_configured_bound() {
    let mut env = TestEnv::new("qps").await;
    // Creating a service takes more Engine calls than two a second allow.
    env.start_operator_with(&["--engine-qps", "2"]);
    let name = format!("{}-web", env.prefix);
    env.apply(&service_manifest(&name, 0)).await;
    env.wait_ready(&name, Duration::from_secs(120)).await;
    let m = http_get(env.metrics_port, "/metrics").await.unwrap();
    let waited = sample(&m, "swarm_operator_engine_throttled_seconds_total", &[]);
    assert!(waited > 0.0, "calls waited for the bound: {m}");
    assert!(m.contains("swarm_operator_reconciles_in_flight"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn queue_depth_shows_passes_waiting_for_a_slot_and_drains() {
    let mut env = TestEnv::new("queue").await;
    // One pass at a time, each slowed by the Engine call bound: the others must wait in the queue.
    env.start_operator_with(&[
        "--concurrency",
        "1",
        "--engine-qps",
        "4",
        "--resync-seconds",
        "3600",
    ]);
    let port = env.metrics_port;
    env.wait_for("/readyz", Duration::from_secs(30), || http_get(port, "/readyz"))
        .await;
    const N: usize = 6;
    let names: Vec<String> = (0..N).map(|i| format!("{}-q{i}", env.prefix)).collect();
    for name in &names {
        env.apply(&service_manifest(name, 0)).await;
    }
    let depth = |m: &str| {
        sample(
            m,
            "swarm_operator_reconcile_queue_depth",
            &[r#"kind="SwarmService""#],
        )
    };
    let scheduled = |m: &str| {
        sample(
            m,
            "swarm_operator_reconcile_queue_scheduled",
            &[r#"kind="SwarmService""#],
        )
    };
    let mut deepest = 0.0f64;
    let mut ready = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while ready < N {
        assert!(
            std::time::Instant::now() < deadline,
            "not all Ready; deepest queue {deepest}"
        );
        let m = http_get(port, "/metrics").await.unwrap();
        deepest = deepest.max(depth(&m));
        ready = 0;
        for name in &names {
            let svc = env.services().get(name).await.unwrap();
            if swarm_operator_e2e::condition(&svc, "Ready").is_some_and(|c| c.status == "True") {
                ready += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("deepest SwarmService queue while {N} converged one at a time: {deepest}");
    assert!(
        deepest >= 2.0,
        "passes waited for the single slot: deepest queue {deepest}"
    );
    assert!(deepest <= N as f64, "one entry per object at most: {deepest}");
    // Converged: nothing is due, and each object holds exactly one scheduled resync.
    env.wait_for("the queue to drain", Duration::from_secs(60), || async {
        let m = http_get(port, "/metrics").await?;
        let (d, s) = (depth(&m), scheduled(&m));
        if d == 0.0 && s == N as f64 {
            Ok(())
        } else {
            Err(format!("depth {d}, scheduled {s}"))
        }
    })
    .await;
}

/// Starts a replica with `leader` flags and waits until it leads, then a standby with `standby`
/// flags and waits until it answers; returns the ports of their metrics.
async fn leader_and_standby(env: &mut TestEnv, leader: &[&str], standby: &[&str]) -> (u16, u16) {
    env.start_operator_with(leader);
    let port = env.metrics_port;
    env.wait_for("the first replica to lead", Duration::from_secs(30), || async {
        let m = http_get(port, "/metrics").await?;
        if leads(&m) { Ok(()) } else { Err(m) }
    })
    .await;
    let standby = env.start_standby(standby);
    env.wait_for("the standby to answer", Duration::from_secs(30), || async {
        http_get(standby, "/healthz").await
    })
    .await;
    (port, standby)
}

fn leads(metrics: &str) -> bool {
    sample(metrics, "swarm_operator_leader", &[]) == 1.0
}

/// A SwarmService of the test image with `replicas`.
fn service_manifest(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}, replicas: {replicas}}}",
        test_image("1")
    )
}
