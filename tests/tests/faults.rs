//! Faults of the parts around the operator, each on the real part: the API server killed and
//! restarted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use swarm_operator_e2e::{PrivateApiServer, TestEnv, test_image};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn after_the_api_server_restarts_a_change_converges_within_seconds() {
    let bed = PrivateApiServer::up("apiserver-restart");
    let mut env = TestEnv::on("restart", Some(bed.kubeconfig())).await;
    env.start_operator();
    let manifest = |name: &str, replicas: u32| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}, replicas: {replicas}}}",
            test_image("1")
        )
    };
    let first = format!("{}-first", env.prefix);
    env.apply(&manifest(&first, 0)).await;
    env.wait_ready(&first, Duration::from_secs(120)).await;

    // Killed, and back 8 s later (the scenario, not a synchronisation): every watch failed.
    bed.kill_apiserver();
    tokio::time::sleep(Duration::from_secs(8)).await;
    bed.start();
    let back = Instant::now();

    // A new resource, and a scale of the existing one, applied once the API server is back.
    let second = format!("{}-second", env.prefix);
    env.apply(&manifest(&second, 0)).await;
    env.kubectl(&["scale", "swarmservice", &first, "--replicas", "1"]);
    env.wait_ready(&second, Duration::from_secs(60)).await;
    let created = back.elapsed();
    env.wait_for(
        "the scale to reach the swarm",
        Duration::from_secs(60),
        || async {
            let replicas = env.swarm_service_json(&first)["Spec"]["Mode"]["Replicated"]["Replicas"].clone();
            if replicas == 1 {
                Ok(())
            } else {
                Err(format!("{replicas}"))
            }
        },
    )
    .await;
    let scaled = back.elapsed();
    println!(
        "after the API server came back: a new SwarmService Ready in {created:?}, a scale in the swarm in {scaled:?}"
    );
    assert!(
        created < Duration::from_secs(10),
        "new SwarmService Ready {created:?} after the restart"
    );
    assert!(
        scaled < Duration::from_secs(10),
        "scale applied {scaled:?} after the restart"
    );
}
