//! swarm-operator run on the swarm itself (examples/swarm-native/docker-stack.yml): deployed with
//! `docker stack deploy` as two replicas on the managers, it reconciles a SwarmService applied to
//! the API server; its leader's task killed, Swarm starts another and the work goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, time::Duration};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use swarm_operator_e2e::{CLUSTER_LABEL, DockerStack, TestEnv, docker, test_image};

const WITHIN: Duration = Duration::from_secs(150);

/// The containers of the stack's running tasks on this node, by container ID.
fn running_containers(stack: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.stack.namespace={stack}"),
    ])
    .lines()
    .map(String::from)
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the image, the real API server and swarm: scripts/test.sh runs it"]
async fn the_operator_runs_as_a_swarm_service_and_survives_its_task_killed() {
    let env = TestEnv::new("native").await;
    let image = std::env::var("OPERATOR_IMAGE").unwrap_or_else(|_| "swarm-operator:0.1.0".into());
    let socket_group = String::from_utf8(
        Command::new("stat")
            .args(["-c", "%g", "/var/run/docker.sock"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let stack = format!("{}-so", env.prefix);
    let _cleanup = DockerStack(stack.clone());
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/swarm-native/docker-stack.yml"
    );
    let out = Command::new("docker")
        .args(["stack", "deploy", "--resolve-image", "never", "-c", file, &stack])
        .env("OPERATOR_IMAGE", &image)
        .env("DOCKER_GID", socket_group.trim())
        .env("KUBECONFIG_FILE", std::env::var("KUBECONFIG").unwrap())
        // The test bed's API server listens on the node's loopback; two replicas share the node.
        .env("OPERATOR_NETWORK", "host")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("LEASE_NAMESPACE", &env.namespace)
        .env("WATCH_NAMESPACE", &env.namespace)
        .env("CLUSTER_SELECTOR", format!("{CLUSTER_LABEL}={}", env.namespace))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.wait_for("two operator tasks running", WITHIN, || async {
        let n = running_containers(&stack).len();
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} running"))
        }
    })
    .await;

    let svc = format!("{}-web", env.prefix);
    let manifest = |replicas: u8| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {svc}}}\nspec: {{image: {}, replicas: {replicas}}}\n",
            test_image("1")
        )
    };
    env.apply(&manifest(1)).await;
    env.wait_ready(&svc, WITHIN).await;

    // Kill the leader's container: Swarm starts another task, and the work goes on (the other
    // replica, or the new one, takes the Lease).
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.namespace);
    let holder = leases
        .get("swarm-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    // Each task's identity on the Lease is its task name (POD_NAME: {{.Task.Name}}).
    let leader = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.swarm.task.name={holder}"),
    ])
    .trim()
    .to_string();
    assert!(!leader.is_empty(), "no running container is the holder {holder}");
    docker(&["kill", &leader]);
    env.apply(&manifest(2)).await;
    let ready = env.wait_ready(&svc, WITHIN).await;
    assert_eq!(ready.status.unwrap().replicas, Some(2));
    env.wait_for("Swarm restarted the killed task", WITHIN, || async {
        let running = running_containers(&stack);
        if running.len() == 2 && !running.contains(&leader) {
            Ok(())
        } else {
            Err(format!("{running:?}"))
        }
    })
    .await;
    let new_holder = leases
        .get("swarm-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert_ne!(new_holder, holder, "another replica leads");
    env.kubectl(&["delete", &format!("swarmservice/{svc}"), "--timeout=60s"]);
}
