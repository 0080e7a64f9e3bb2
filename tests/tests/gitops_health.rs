//! What Flux (and kpt) make of every kind's status: kstatus itself (tests/kstatus, built from
//! sigs.k8s.io/cli-utils by scripts/kstatus-bin.sh) computes Current / InProgress / Failed /
//! Terminating from real objects, as the API server stores them, in the situations the operator
//! produces; each must be what a user would expect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use kube::{Api, api::DeleteParams};
use serde_json::Value;
use swarm_operator_crds::{SwarmCluster, SwarmNetwork, SwarmSecret, SwarmService, SwarmStack};
use swarm_operator_e2e::{CLUSTER_LABEL, TestEnv, test_image};

const WITHIN: Duration = Duration::from_secs(150);

/// kstatus's verdict on each of `objects`: (status, message).
fn kstatus(objects: &[Value]) -> Vec<(String, String)> {
    let bin = std::env::var("KSTATUS").unwrap_or_else(|_| "kstatus".into());
    let mut child = Command::new(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/test.sh sets KSTATUS from scripts/kstatus-bin.sh)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(objects).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_string(),
                r["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits until `api`'s object `name` has condition `type_` True with `reason` (for its current
/// generation), and returns the object as the API server stores it.
async fn snapshot<K>(env: &TestEnv, api: &Api<K>, name: &str, type_: &str, reason: &str) -> Value
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    env.wait_for(&format!("{name} {type_}/{reason}"), WITHIN, || async {
        let obj = api.get(name).await.map_err(|e| e.to_string())?;
        let value = serde_json::to_value(&obj).unwrap();
        let conditions = value["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found = conditions
            .iter()
            .any(|c| c["type"] == type_ && c["status"] == "True" && c["reason"] == reason);
        if found {
            Ok(value)
        } else {
            Err(format!("{:?}", value["status"]))
        }
    })
    .await
}

fn service(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{{spec}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs kstatus, the real API server and swarm: scripts/test.sh runs it"]
async fn kstatus_reads_every_situation_as_a_user_would() {
    let mut env = TestEnv::new("kstatus").await;
    env.start_operator();
    let p = env.prefix.clone();
    let image = test_image("1");
    let services: Api<SwarmService> = env.services();
    let mut seen: Vec<(&str, Value, &str)> = Vec::new();

    // SwarmService: running; updating; swarm refused; tasks failing; cluster unavailable;
    // rolled back; deleting.
    let ok = format!("{p}-ok");
    env.kubectl_apply(&service(&ok, &format!("image: {image}, replicas: 1")), false)
        .unwrap();
    seen.push((
        "running",
        snapshot(&env, &services, &ok, "Ready", "Running").await,
        "Current",
    ));
    let slow = format!("{p}-slow");
    let update = |tag: &str, health: &str| {
        service(
            &slow,
            &format!(
                "image: {}, replicas: 1, healthcheck: {{test: {health}, interval: 1s, timeout: 1s, retries: 1}}, updateConfig: {{failureAction: Rollback, monitor: 6s, order: StartFirst}}",
                test_image(tag)
            ),
        )
    };
    let healthy = r#"["CMD", "wget", "-qO-", "http://127.0.0.1:80/"]"#;
    env.kubectl_apply(&update("1", healthy), false).unwrap();
    snapshot(&env, &services, &slow, "Ready", "Running").await;
    env.kubectl_apply(&update("2", healthy), false).unwrap();
    seen.push((
        "updating",
        snapshot(&env, &services, &slow, "Reconciling", "Progressing").await,
        "InProgress",
    ));
    snapshot(&env, &services, &slow, "Ready", "Running").await;
    env.kubectl_apply(&update("1", r#"["CMD-SHELL", "exit 1"]"#), false)
        .unwrap();
    seen.push((
        "rolled back",
        snapshot(&env, &services, &slow, "Stalled", "RolledBack").await,
        "Failed",
    ));
    let refused = format!("{p}-refused");
    env.kubectl_apply(
        &service(
            &refused,
            &format!("image: {image}, replicas: 0, hostname: '{{{{.Nope}}'"),
        ),
        false,
    )
    .unwrap();
    seen.push((
        "refused by the swarm",
        snapshot(&env, &services, &refused, "Stalled", "InvalidSpec").await,
        "Failed",
    ));
    let failing = format!("{p}-failing");
    env.kubectl_apply(
        &service(&failing, "image: swarm-operator-test/whoami:nope, replicas: 1"),
        false,
    )
    .unwrap();
    seen.push((
        "tasks failing",
        snapshot(&env, &services, &failing, "Stalled", "TasksFailing").await,
        "Failed",
    ));
    let away = format!("{p}-away");
    env.kubectl_apply(
        &service(
            &away,
            &format!("image: {image}, clusterRef: {{name: {p}-nowhere}}"),
        ),
        false,
    )
    .unwrap();
    seen.push((
        "cluster unavailable",
        snapshot(&env, &services, &away, "Reconciling", "ClusterUnavailable").await,
        "InProgress",
    ));

    // SwarmNetwork: ready; deleting while a service uses it.
    let networks: Api<SwarmNetwork> = Api::namespaced(env.client.clone(), &env.namespace);
    let net = format!("{p}-net");
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: {net}}}\nspec: {{}}\n"), false).unwrap();
    seen.push((
        "network ready",
        snapshot(&env, &networks, &net, "Ready", "Running").await,
        "Current",
    ));
    let user = format!("{p}-user");
    env.kubectl_apply(
        &service(
            &user,
            &format!("image: {image}, replicas: 1, networks: [{{name: {net}}}]"),
        ),
        false,
    )
    .unwrap();
    snapshot(&env, &services, &user, "Ready", "Running").await;
    networks.delete(&net, &DeleteParams::default()).await.unwrap();
    seen.push((
        "network deleting",
        snapshot(&env, &networks, &net, "Reconciling", "Deleting").await,
        "Terminating",
    ));

    // SwarmSecret: its source missing.
    let secrets: Api<SwarmSecret> = Api::namespaced(env.client.clone(), &env.namespace);
    let secret = format!("{p}-secret");
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmSecret\nmetadata: {{name: {secret}}}\nspec: {{secretRef: {{name: absent, key: k}}}}\n"), false).unwrap();
    seen.push((
        "secret source missing",
        snapshot(&env, &secrets, &secret, "Stalled", "SourceMissing").await,
        "Failed",
    ));

    // SwarmConfig: inline, ready.
    let configs: Api<swarm_operator_crds::SwarmConfig> = Api::namespaced(env.client.clone(), &env.namespace);
    let config = format!("{p}-config");
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmConfig\nmetadata: {{name: {config}}}\nspec: {{data: \"listen 80\"}}\n"), false).unwrap();
    seen.push((
        "config ready",
        snapshot(&env, &configs, &config, "Ready", "Running").await,
        "Current",
    ));

    // SwarmCluster: nothing answers at its endpoint.
    let clusters: Api<SwarmCluster> = Api::all(env.client.clone());
    let cluster = format!("{p}-down");
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmCluster\nmetadata:\n  name: {cluster}\n  labels: {{{CLUSTER_LABEL}: {}}}\nspec: {{endpoints: [unix:///nonexistent.sock], resyncInterval: 5s}}\n", env.namespace), false).unwrap();
    seen.push((
        "cluster unreachable",
        snapshot(&env, &clusters, &cluster, "Reconciling", "ClusterUnavailable").await,
        "InProgress",
    ));

    // SwarmStack: ready; a file refused; paused with changes waiting.
    let stacks: Api<SwarmStack> = Api::namespaced(env.client.clone(), &env.namespace);
    let stack = format!("{p}-st");
    let stack_manifest = |compose: &str, paused: bool| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmStack\nmetadata: {{name: {stack}}}\nspec:\n  paused: {paused}\n  compose: |\n    {}\n",
            compose.replace('\n', "\n    ")
        )
    };
    let file = format!("services:\n  web:\n    image: {image}\n");
    env.kubectl_apply(&stack_manifest(&file, false), false).unwrap();
    seen.push((
        "stack ready",
        snapshot(&env, &stacks, &stack, "Ready", "Running").await,
        "Current",
    ));
    env.kubectl_apply(
        &stack_manifest(&format!("{file}    deploy: {{replicaz: 2}}\n"), false),
        false,
    )
    .unwrap();
    seen.push((
        "stack file refused",
        snapshot(&env, &stacks, &stack, "Stalled", "InvalidSpec").await,
        "Failed",
    ));

    let verdicts = kstatus(&seen.iter().map(|(_, o, _)| o.clone()).collect::<Vec<_>>());
    let mut wrong = Vec::new();
    for ((situation, obj, want), (got, message)) in seen.iter().zip(&verdicts) {
        println!(
            "{:<24} {:<14} {got:<12} {message}",
            situation,
            obj["kind"].as_str().unwrap()
        );
        if got != want {
            wrong.push(format!(
                "{situation}: kstatus says {got} ({message}), a user expects {want}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    clusters.delete(&cluster, &DeleteParams::default()).await.unwrap();
}
