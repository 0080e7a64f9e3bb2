//! What Flux (and kpt) and Argo CD make of every kind's status. kstatus itself (tests/kstatus,
//! built from sigs.k8s.io/cli-utils by scripts/kstatus-bin.sh) computes Current / InProgress /
//! Failed / Terminating, and Argo CD's Lua runtime (tests/argo-health, gopher-lua as Argo CD runs
//! argocd-cm checks) runs argocd/health.lua, on real objects as the API server stores them, in the
//! situations the operator produces; each must be what a user would expect. With
//! RECORD_ARGO_TESTDATA=1 the objects become the testdata of argocd/resource_customizations, in
//! the health_test.yaml layout of Argo CD's own repository, which the second test runs.
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

/// The verdict of `bin` (a program named by the environment variable `var`, which
/// scripts/test.sh sets) with `args` on each of `objects`, given as a JSON list on its stdin:
/// (status, message).
fn verdicts(var: &str, args: &[&std::ffi::OsStr], objects: &[Value]) -> Vec<(String, String)> {
    let bin = std::env::var(var).unwrap_or_else(|_| var.to_lowercase().replace('_', "-"));
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/test.sh sets {var})"));
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

/// kstatus's verdict on each of `objects`.
fn kstatus(objects: &[Value]) -> Vec<(String, String)> {
    verdicts("KSTATUS", &[], objects)
}

fn argocd_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../argocd")
}

/// Argo CD's verdict (argocd/health.lua) on each of `objects`.
fn argo_health(objects: &[Value]) -> Vec<(String, String)> {
    let script = argocd_dir().join("health.lua");
    verdicts("ARGO_HEALTH", &["eval".as_ref(), script.as_os_str()], objects)
}

/// Writes each object as testdata of its kind under argocd/resource_customizations, and each
/// kind's health_test.yaml with the verdicts, as Argo CD's repository lays them out.
fn record_argo_testdata(seen: &[Situation], verdicts: &[(String, String)]) {
    let root = argocd_dir().join("resource_customizations/swarmoperator.io");
    let mut tests: std::collections::BTreeMap<String, String> = Default::default();
    for (situation, (status, message)) in seen.iter().zip(verdicts) {
        let kind = situation.object["kind"].as_str().unwrap().to_string();
        let mut object = situation.object.clone();
        object["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        let file = format!("{}.yaml", situation.name.replace(' ', "-"));
        let dir = root.join(&kind).join("testdata");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&file), serde_yaml_ng::to_string(&object).unwrap()).unwrap();
        let entry = tests.entry(kind).or_insert_with(|| "tests:\n".to_string());
        entry.push_str(&format!(
            "- healthStatus:\n    status: {status}\n    message: {}\n  inputPath: testdata/{file}\n",
            serde_json::to_string(message).unwrap()
        ));
    }
    for (kind, text) in tests {
        std::fs::write(root.join(kind).join("health_test.yaml"), text).unwrap();
    }
}

/// The README's way to install the checks works: argocd/argocd-cm.yaml patches an argocd-cm
/// (here in the test's namespace) and leaves the script under every kind's key, next to what the
/// ConfigMap had; argocd/argo-cd-values.yaml gives the argo-cd chart the same keys.
fn argocd_snippets_carry_the_script(env: &TestEnv) {
    let script = std::fs::read_to_string(argocd_dir().join("health.lua")).unwrap();
    env.kubectl(&[
        "create",
        "configmap",
        "argocd-cm",
        "--from-literal=url=https://argocd.example",
    ]);
    let patch = argocd_dir().join("argocd-cm.yaml");
    env.kubectl(&[
        "patch",
        "configmap",
        "argocd-cm",
        "--patch-file",
        patch.to_str().unwrap(),
    ]);
    let cm: Value = serde_json::from_slice(
        &env.kubectl(&["get", "configmap", "argocd-cm", "-o", "json"])
            .stdout,
    )
    .unwrap();
    let values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(argocd_dir().join("argo-cd-values.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        cm["data"]["url"], "https://argocd.example",
        "the patch keeps the rest"
    );
    for kind in [
        "SwarmService",
        "SwarmNetwork",
        "SwarmSecret",
        "SwarmConfig",
        "SwarmCluster",
        "SwarmStack",
    ] {
        let key = format!("resource.customizations.health.swarmoperator.io_{kind}");
        assert_eq!(cm["data"][&key], script.as_str(), "{key} in argocd-cm");
        assert_eq!(
            values["configs"]["cm"][&key],
            script.as_str(),
            "{key} in the argo-cd values"
        );
    }
}

/// One situation: its name, the object as the API server stored it, and what kstatus (None:
/// kstatus cannot tell) and Argo CD should make of it.
struct Situation {
    name: &'static str,
    object: Value,
    kstatus: Option<&'static str>,
    argo: &'static str,
}

impl Situation {
    fn new(
        name: &'static str,
        object: Value,
        kstatus: Option<&'static str>,
        argo: &'static str,
    ) -> Situation {
        Situation {
            name,
            object,
            kstatus,
            argo,
        }
    }
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
    let mut seen: Vec<Situation> = Vec::new();

    // SwarmService: running; updating; swarm refused; tasks failing; cluster unavailable;
    // rolled back; deleting.
    let ok = format!("{p}-ok");
    env.kubectl_apply(&service(&ok, &format!("image: {image}, replicas: 1")), false)
        .unwrap();
    seen.push(Situation::new(
        "running",
        snapshot(&env, &services, &ok, "Ready", "Running").await,
        Some("Current"),
        "Healthy",
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
    seen.push(Situation::new(
        "updating",
        snapshot(&env, &services, &slow, "Reconciling", "Progressing").await,
        Some("InProgress"),
        "Progressing",
    ));
    snapshot(&env, &services, &slow, "Ready", "Running").await;
    env.kubectl_apply(&update("1", r#"["CMD-SHELL", "exit 1"]"#), false)
        .unwrap();
    seen.push(Situation::new(
        "rolled back",
        snapshot(&env, &services, &slow, "Stalled", "RolledBack").await,
        Some("Failed"),
        "Degraded",
    ));
    // Swarm pauses a failed update when told to: suspended, not failed.
    let held = format!("{p}-held");
    let held_update = |tag: &str, health: &str| {
        service(
            &held,
            &format!(
                "image: {}, replicas: 1, healthcheck: {{test: {health}, interval: 1s, timeout: 1s, retries: 1}}, updateConfig: {{failureAction: Pause, monitor: 6s, order: StartFirst}}",
                test_image(tag)
            ),
        )
    };
    env.kubectl_apply(&held_update("1", healthy), false).unwrap();
    snapshot(&env, &services, &held, "Ready", "Running").await;
    env.kubectl_apply(&held_update("2", r#"["CMD-SHELL", "exit 1"]"#), false)
        .unwrap();
    seen.push(Situation::new(
        "update paused",
        snapshot(&env, &services, &held, "Stalled", "UpdatePaused").await,
        Some("Failed"),
        "Suspended",
    ));
    // Just created: the object as the API server stored it, before the operator wrote anything;
    // its defaulted status says generation 0 was observed.
    let created: SwarmService = serde_yaml_ng::from_str(&service(
        &format!("{p}-new"),
        &format!("image: {image}, replicas: 0"),
    ))
    .unwrap();
    let created = services
        .create(&kube::api::PostParams::default(), &created)
        .await
        .unwrap();
    seen.push(Situation::new(
        "just created",
        serde_json::to_value(&created).unwrap(),
        Some("InProgress"),
        "Progressing",
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
    seen.push(Situation::new(
        "refused by the swarm",
        snapshot(&env, &services, &refused, "Stalled", "InvalidSpec").await,
        Some("Failed"),
        "Degraded",
    ));
    let failing = format!("{p}-failing");
    env.kubectl_apply(
        &service(&failing, "image: swarm-operator-test/whoami:nope, replicas: 1"),
        false,
    )
    .unwrap();
    seen.push(Situation::new(
        "tasks failing",
        snapshot(&env, &services, &failing, "Stalled", "TasksFailing").await,
        Some("Failed"),
        "Degraded",
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
    seen.push(Situation::new(
        "cluster unavailable",
        snapshot(&env, &services, &away, "Reconciling", "ClusterUnavailable").await,
        Some("InProgress"),
        "Progressing",
    ));

    // SwarmNetwork: ready; deleting while a service uses it.
    let networks: Api<SwarmNetwork> = Api::namespaced(env.client.clone(), &env.namespace);
    let net = format!("{p}-net");
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: {net}}}\nspec: {{}}\n"), false).unwrap();
    seen.push(Situation::new(
        "network ready",
        snapshot(&env, &networks, &net, "Ready", "Running").await,
        Some("Current"),
        "Healthy",
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
    seen.push(Situation::new(
        "network deleting",
        snapshot(&env, &networks, &net, "Reconciling", "Deleting").await,
        Some("Terminating"),
        "Progressing",
    ));

    // SwarmSecret: its source missing.
    let secrets: Api<SwarmSecret> = Api::namespaced(env.client.clone(), &env.namespace);
    let secret = format!("{p}-secret");
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmSecret\nmetadata: {{name: {secret}}}\nspec: {{secretRef: {{name: absent, key: k}}}}\n"), false).unwrap();
    seen.push(Situation::new(
        "secret source missing",
        snapshot(&env, &secrets, &secret, "Stalled", "SourceMissing").await,
        Some("Failed"),
        "Degraded",
    ));

    env.kubectl(&["create", "secret", "generic", "present", "--from-literal=k=v"]);
    let present = format!("{p}-present");
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmSecret\nmetadata: {{name: {present}}}\nspec: {{secretRef: {{name: present, key: k}}}}\n"), false).unwrap();
    seen.push(Situation::new(
        "secret ready",
        snapshot(&env, &secrets, &present, "Ready", "Running").await,
        Some("Current"),
        "Healthy",
    ));

    // SwarmConfig: inline, ready.
    let configs: Api<swarm_operator_crds::SwarmConfig> = Api::namespaced(env.client.clone(), &env.namespace);
    let config = format!("{p}-config");
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmConfig\nmetadata: {{name: {config}}}\nspec: {{data: \"listen 80\"}}\n"), false).unwrap();
    seen.push(Situation::new(
        "config ready",
        snapshot(&env, &configs, &config, "Ready", "Running").await,
        Some("Current"),
        "Healthy",
    ));

    // SwarmCluster: nothing answers at its endpoint.
    let clusters: Api<SwarmCluster> = Api::all(env.client.clone());
    let cluster = format!("{p}-down");
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmCluster\nmetadata:\n  name: {cluster}\n  labels: {{{CLUSTER_LABEL}: {}}}\nspec: {{endpoints: [unix:///nonexistent.sock], resyncInterval: 5s}}\n", env.namespace), false).unwrap();
    seen.push(Situation::new(
        "cluster unreachable",
        snapshot(&env, &clusters, &cluster, "Reconciling", "ClusterUnavailable").await,
        Some("InProgress"),
        "Progressing",
    ));

    // SwarmCluster: the test's own engine.
    let local = format!("{p}-local");
    let engine = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    env.kubectl_apply(&format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmCluster\nmetadata:\n  name: {local}\n  labels: {{{CLUSTER_LABEL}: {}}}\nspec: {{endpoints: ['{engine}']}}\n", env.namespace), false).unwrap();
    seen.push(Situation::new(
        "cluster ready",
        snapshot(&env, &clusters, &local, "Ready", "Connected").await,
        Some("Current"),
        "Healthy",
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
    let steps = [
        (
            "stack ready",
            file.clone(),
            false,
            "Ready",
            "Running",
            "Current",
            "Healthy",
        ),
        (
            "stack file refused",
            format!("{file}    deploy: {{replicaz: 2}}\n"),
            false,
            "Stalled",
            "InvalidSpec",
            "Failed",
            "Degraded",
        ),
        (
            "stack paused",
            format!("{file}    deploy: {{replicas: 2}}\n"),
            true,
            "Stalled",
            "Paused",
            "Failed",
            "Suspended",
        ),
    ];
    for (name, compose, paused, type_, reason, kstatus, argo) in steps {
        env.kubectl_apply(&stack_manifest(&compose, paused), false)
            .unwrap();
        let object = snapshot(&env, &stacks, &stack, type_, reason).await;
        seen.push(Situation::new(name, object, Some(kstatus), argo));
    }

    let objects: Vec<Value> = seen.iter().map(|s| s.object.clone()).collect();
    let (verdicts, argo) = (kstatus(&objects), argo_health(&objects));
    let mut wrong = Vec::new();
    for ((situation, (got, message)), (argo_got, argo_message)) in seen.iter().zip(&verdicts).zip(&argo) {
        println!(
            "{:<24} {:<14} {got:<12} {argo_got:<12} {message} | {argo_message}",
            situation.name,
            situation.object["kind"].as_str().unwrap()
        );
        if situation.kstatus.is_some_and(|want| got != want) {
            wrong.push(format!(
                "{}: kstatus says {got} ({message}), a user expects {:?}",
                situation.name, situation.kstatus
            ));
        }
        if argo_got != situation.argo {
            wrong.push(format!(
                "{}: Argo CD says {argo_got} ({argo_message}), a user expects {}",
                situation.name, situation.argo
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    argocd_snippets_carry_the_script(&env);
    if std::env::var("RECORD_ARGO_TESTDATA").is_ok_and(|v| v == "1") {
        record_argo_testdata(&seen, &argo);
    }
    clusters.delete(&cluster, &DeleteParams::default()).await.unwrap();
    clusters.delete(&local, &DeleteParams::default()).await.unwrap();
}

#[test]
#[ignore = "needs argo-health (scripts/argo-health-bin.sh): scripts/test.sh runs it"]
fn argo_cd_health_tests_pass_in_argo_cds_own_layout() {
    let dir = argocd_dir().join("resource_customizations");
    let bin = std::env::var("ARGO_HEALTH").unwrap_or_else(|_| "argo-health".into());
    let out = Command::new(bin)
        .arg("test")
        .arg(&dir)
        .output()
        .expect("argo-health (scripts/test.sh sets ARGO_HEALTH)");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    for kind in [
        "SwarmService",
        "SwarmNetwork",
        "SwarmSecret",
        "SwarmConfig",
        "SwarmCluster",
        "SwarmStack",
    ] {
        assert!(text.contains(&format!("{kind}/testdata/")), "no test of {kind}");
    }
    for status in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(text.contains(&format!(": {status}\n")), "no case of {status}");
    }
}
