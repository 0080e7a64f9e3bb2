//! The Swarm tutorials' edge proxy, as SwarmServices: pinned to managers with the Docker socket
//! mounted, it discovers the services labelled `proxy.port` through the Engine API (as traefik
//! does with `traefik.port`) and routes to them over their shared overlay; a service labelled
//! later is routed to without touching the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sha2::{Digest, Sha256};
use swarm_operator_e2e::{TestEnv, free_port, http_get, test_image};

const WITHIN: Duration = Duration::from_secs(150);

/// The proxy image scripts/images.sh built from tests/images/proxy (tagged by its source's hash).
fn proxy_image() -> String {
    let source = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/images/proxy/main.go")).unwrap();
    let hash: String = Sha256::digest(&source)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("swarm-operator-test/proxy:{}", &hash[..12])
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn a_proxy_on_the_managers_discovers_services_by_label_through_the_socket() {
    let mut env = TestEnv::new("proxy").await;
    env.start_operator();
    let (edge, web, v2, proxy) = (
        format!("{}-edge", env.prefix),
        format!("{}-web", env.prefix),
        format!("{}-v2", env.prefix),
        format!("{}-proxy", env.prefix),
    );
    let port = free_port();
    let backend = |name: &str, tag: &str| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
             spec: {{image: {}, replicas: 2, endpointMode: DNSRR, networks: [{{name: edge}}], labels: {{proxy.port: '80'}}}}\n",
            test_image(tag)
        )
    };
    env.kubectl_apply(
        &format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: edge}}\nspec: {{networkName: {edge}}}\n---\n\
             {}---\n\
             apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {proxy}}}\n\
             spec:\n  image: {}\n  endpointMode: DNSRR\n  networks: [{{name: edge}}]\n\
             \x20 placement: {{constraints: ['node.role == manager']}}\n\
             \x20 mounts: [{{type: Bind, source: /var/run/docker.sock, target: /var/run/docker.sock, readOnly: true}}]\n\
             \x20 ports: [{{target: 80, published: {port}, mode: Host}}]\n",
            backend(&web, "1"),
            proxy_image()
        ),
        false,
    )
    .unwrap();
    for name in [&web, &proxy] {
        env.wait_ready(name, WITHIN).await;
    }
    // The proxy runs on a manager and has found the labelled service (and nothing else).
    let placed = env.swarm_service_json(&proxy)["Spec"]["TaskTemplate"]["Placement"]["Constraints"].clone();
    assert_eq!(placed, serde_json::json!(["node.role == manager"]));
    let routes = env
        .wait_for("the proxy's routes", WITHIN, || async {
            let routes = http_get(port, "/_routes").await?;
            if routes.contains(&web) {
                Ok(routes)
            } else {
                Err(routes)
            }
        })
        .await;
    assert_eq!(
        routes.trim(),
        format!("{web} 80"),
        "only services labelled proxy.port"
    );
    let answer = env
        .wait_for("an answer from web through the proxy", WITHIN, || async {
            http_get(port, &format!("/{web}/")).await
        })
        .await;
    assert!(
        answer.contains("Version: 1") && answer.contains("GET /"),
        "{answer}"
    );

    // A service labelled later is routed to at once; the proxy is not touched.
    let proxy_version = env.swarm_service_json(&proxy)["Version"]["Index"].clone();
    env.kubectl_apply(&backend(&v2, "2"), false).unwrap();
    env.wait_ready(&v2, WITHIN).await;
    let answer = env
        .wait_for("an answer from v2 through the proxy", WITHIN, || async {
            let answer = http_get(port, &format!("/{v2}/")).await?;
            if answer.contains("Version: 2") {
                Ok(answer)
            } else {
                Err(answer)
            }
        })
        .await;
    assert!(answer.contains("GET /"), "{answer}");
    assert_eq!(env.swarm_service_json(&proxy)["Version"]["Index"], proxy_version);
}
