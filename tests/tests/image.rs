//! The operator's image (scripts/image.sh): FROM scratch with the binary and the libraries it
//! links, run as UID 65532 with a read-only root, no capabilities and no new privileges, exactly
//! as the chart runs it. Started as a container with a kubeconfig and the Docker socket, it
//! reconciles a SwarmService.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, time::Duration};

use swarm_operator_e2e::{CLUSTER_LABEL, TestEnv, docker, test_image};

/// Removes the operator's container when the test ends, whatever its outcome.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the image, the real API server and swarm: scripts/test.sh runs it"]
async fn the_image_runs_unprivileged_and_reconciles() {
    let env = TestEnv::new("image").await;
    let image = std::env::var("OPERATOR_IMAGE").unwrap_or_else(|_| "swarm-operator:0.1.0".into());
    let user = docker(&["image", "inspect", &image, "--format", "{{.Config.User}}"]);
    assert_eq!(user.trim(), "65532:65532", "non-root by default");
    let size = docker(&["image", "inspect", &image, "--format", "{{.Size}}"]);
    println!(
        "{image}: {} MiB",
        size.trim().parse::<u64>().unwrap() / 1024 / 1024
    );

    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => h.trim_start_matches("unix://").to_string(),
        _ => "/var/run/docker.sock".into(),
    };
    let group = String::from_utf8(
        Command::new("stat")
            .args(["-c", "%g", &socket])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let name = format!("{}-operator", env.prefix);
    let _container = Container(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--group-add",
        group.trim(),
        "-v",
        &format!("{kubeconfig}:/etc/swarm-operator/kubeconfig:ro"),
        "-v",
        &format!("{socket}:/var/run/docker.sock"),
        "-e",
        "KUBECONFIG=/etc/swarm-operator/kubeconfig",
        "-e",
        "RUST_LOG=info",
        &image,
        "--namespace",
        &env.namespace,
        "--leader-election-namespace",
        &env.namespace,
        "--cluster-selector",
        &format!("{CLUSTER_LABEL}={}", env.namespace),
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let svc = format!("{}-web", env.prefix);
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {svc}}}\nspec: {{image: {}, replicas: 1}}\n",
        test_image("1")
    ))
    .await;
    let ready = tokio::time::timeout(
        Duration::from_secs(150),
        env.wait_ready(&svc, Duration::from_secs(150)),
    )
    .await;
    if ready.is_err() {
        panic!("not Ready; the container's log:\n{}", docker(&["logs", &name]));
    }
    assert!(
        env.swarm_service(&svc).await.is_some(),
        "the Swarm service exists"
    );
    let processes = docker(&["top", &name, "-o", "pid,uid"]);
    let uids: Vec<&str> = processes
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(
        !uids.is_empty() && uids.iter().all(|u| *u == "65532"),
        "{processes}"
    );
    env.kubectl(&["delete", &format!("swarmservice/{svc}"), "--timeout=60s"]);
}
