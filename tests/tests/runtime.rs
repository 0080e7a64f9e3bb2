//! The operator's own endpoints and what it costs at rest, read from its metrics, on the real API
//! server and swarm.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use swarm_operator_e2e::{TestEnv, http_get, test_image};

/// Sum of the samples of `metric` whose labels contain every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

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
