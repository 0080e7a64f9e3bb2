//! Namespaces are tenants of one swarm: Swarm names are global, Kubernetes names are not. A
//! namespace reaches only what is its own, and a name held by someone else stalls instead of
//! looping or telling anything about the holder's values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use swarm_operator_crds::SwarmSecret;
use swarm_operator_e2e::{TestEnv, test_image};

const WITHIN: Duration = Duration::from_secs(60);

async fn source_secret(env: &TestEnv, name: &str, value: &str) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "value".to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(env.client.clone(), &env.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

fn swarm_secret(name: &str, source: &str) -> String {
    format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmSecret\nmetadata: {{name: {name}}}\nspec: {{secretRef: {{name: {source}, key: value}}}}\n"
    )
}

/// Waits for SwarmSecret `name` to be Ready; returns its current Swarm name.
async fn ready_secret(env: &TestEnv, name: &str) -> String {
    let api: Api<SwarmSecret> = Api::namespaced(env.client.clone(), &env.namespace);
    env.wait_for(&format!("SwarmSecret {name} Ready"), WITHIN, || async {
        let status = api
            .get(name)
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        match (ready, status.swarm_name) {
            (true, Some(swarm_name)) => Ok(swarm_name),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn a_namespace_joins_no_network_of_another() {
    let mut team_a = TestEnv::new("tenant-a").await;
    let mut team_b = TestEnv::new("tenant-b").await;
    team_a.start_operator();
    team_b.start_operator();
    let network = format!("{}-private", team_a.prefix);
    team_a
        .kubectl_apply(
            &format!(
                "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: private}}\nspec: {{networkName: {network}}}\n"
            ),
            false,
        )
        .unwrap();
    team_a
        .wait_for("the network in the swarm", WITHIN, || async {
            let out = team_a.docker_cli(&["network", "ls", "-q", "--filter", &format!("name={network}")]);
            if out.trim().is_empty() {
                Err("not yet".to_string())
            } else {
                Ok(())
            }
        })
        .await;
    let intruder = format!("{}-intruder", team_b.prefix);
    team_b
        .kubectl_apply(
            &format!(
                "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {intruder}}}\nspec: {{image: {}, replicas: 0, networks: [{{name: {network}, external: true}}]}}\n",
                test_image("1")
            ),
            false,
        )
        .unwrap();
    let message = team_b
        .wait_condition(&intruder, "Stalled", "InvalidSpec", WITHIN)
        .await;
    assert!(
        message.contains("spec.networks")
            && message.contains(&format!("belongs to namespace {}", team_a.namespace)),
        "{message}"
    );
    assert!(team_b.swarm_service(&intruder).await.is_none(), "attached anyway");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn the_same_secret_in_two_namespaces_tells_nothing_and_a_held_name_stalls() {
    let mut team_a = TestEnv::new("secret-a").await;
    let mut team_b = TestEnv::new("secret-b").await;
    team_a.start_operator();
    team_b.start_operator();
    // The same name and the same value in both namespaces: both work, under unrelated names.
    for env in [&team_a, &team_b] {
        source_secret(env, "db-source", "the-same-password").await;
        env.kubectl_apply(&swarm_secret("db", "db-source"), false)
            .unwrap();
    }
    let (in_a, in_b) = (
        ready_secret(&team_a, "db").await,
        ready_secret(&team_b, "db").await,
    );
    assert_ne!(in_a, in_b, "one name would say both hold the same value");
    let unsalted: String = Sha256::digest(b"the-same-password")
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        !in_a.contains(&unsalted) && !in_b.contains(&unsalted),
        "{in_a} {in_b}"
    );

    // A name someone else already holds in the swarm: NameConflict, once, naming the holder.
    team_b
        .kubectl_apply(&swarm_secret("taken", "taken-source"), false)
        .unwrap();
    let api: Api<SwarmSecret> = Api::namespaced(team_b.client.clone(), &team_b.namespace);
    let uid = api.get("taken").await.unwrap().metadata.uid.unwrap();
    let value = "a-value-of-team-b";
    let mut hasher = Sha256::new();
    hasher.update(uid.as_bytes());
    hasher.update([0]);
    hasher.update(value.as_bytes());
    let version: String = hasher
        .finalize()
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect();
    let held = format!("taken-{version}");
    let created = std::process::Command::new("sh")
        .args(["-c", &format!("printf other | docker secret create {held} -")])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    source_secret(&team_b, "taken-source", value).await;
    let wait = team_b.wait_for("NameConflict", WITHIN, || async {
        let status = api
            .get("taken")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "NameConflict")
            .map(|c| c.message.clone())
            .ok_or_else(|| format!("{:?}", status.conditions))
    });
    let message = wait.await;
    assert!(
        message.contains(&held) && message.contains("something other than swarm-operator"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let conflicts = team_b.events("NameConflict").await;
    assert_eq!(conflicts.len(), 1, "said once, no loop: {conflicts:?}");
    let _ = std::process::Command::new("docker")
        .args(["secret", "rm", &held])
        .output();
}
