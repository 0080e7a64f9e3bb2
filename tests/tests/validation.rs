//! CEL and schema rules of the CRD, on the real API server: each bad manifest is rejected at
//! `kubectl apply` time with a message that names the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use swarm_operator_e2e::{TestEnv, kubectl_bin};

fn dry_run_apply(env: &TestEnv, spec: &str) -> Result<(), String> {
    env.kubectl_apply(
        &format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: bad}}\nspec:\n{spec}\n"),
        true,
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server: scripts/test.sh runs it"]
async fn bad_manifests_are_rejected_naming_the_field() {
    let env = TestEnv::new("cel").await;
    let cases = [
        ("  image: x\n  ports: [{target: 70000}]", "spec.ports[0].target"),
        (
            "  image: x\n  ports: [{target: 80, published: 0}]",
            "spec.ports[0].published",
        ),
        (
            "  image: x\n  ports: [{target: 80, published: 8080}, {target: 81, published: 8080}]",
            "spec.ports",
        ),
        ("  image: x\n  mode: Global\n  replicas: 3", "spec.replicas"),
        ("  image: x\n  maxConcurrent: 2", "spec.mode"),
        (
            "  image: x\n  mode: Replicated\n  totalCompletions: 2",
            "spec.mode",
        ),
        (
            "  image: x\n  rollbackConfig: {failureAction: Rollback}",
            "spec.rollbackConfig.failureAction",
        ),
        (
            "  image: x\n  healthcheck: {interval: 10x}",
            "spec.healthcheck.interval",
        ),
        (
            "  image: x\n  updateConfig: {delay: 1m30}",
            "spec.updateConfig.delay",
        ),
        ("  image: x\n  stopGracePeriod: ten", "spec.stopGracePeriod"),
        ("  image: \"\"", "spec.image"),
        ("  image: \"  \"", "spec.image"),
        (
            "  image: x\n  labels: {swarmoperator.io/owner-uid: forged}",
            "spec.labels",
        ),
        (
            "  image: x\n  mounts: [{type: Bind, target: /x}]",
            "spec.mounts[0]",
        ),
        (
            "  image: x\n  mounts: [{type: Tmpfs, source: /a, target: /x}]",
            "spec.mounts[0]",
        ),
        (
            "  image: x\n  healthcheck: {test: [\"wget\"]}",
            "spec.healthcheck.test",
        ),
        (
            "  image: x\n  resources: {limits: {memory: 12Qi}}",
            "spec.resources.limits.memory",
        ),
        (
            "  image: x\n  mode: GlobalJob\n  updateConfig: {parallelism: 1}",
            "spec.updateConfig",
        ),
    ];
    let mut failures = Vec::new();
    for (spec, field) in cases {
        match dry_run_apply(&env, spec) {
            Ok(()) => failures.push(format!("accepted:\n{spec}")),
            Err(msg) if !msg.contains(field) => {
                failures.push(format!("{spec}\n  -> message does not name {field}: {msg}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The same machinery accepts a good manifest, so the rejections above are the rules at work.
    dry_run_apply(
        &env,
        "  image: x\n  mode: ReplicatedJob\n  maxConcurrent: 2\n  totalCompletions: 4",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server: scripts/test.sh runs it"]
async fn service_name_cannot_change() {
    let env = TestEnv::new("immutable").await;
    env.apply("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: web}\nspec: {image: x, serviceName: front}")
        .await;
    let out = Command::new(kubectl_bin())
        .args([
            "-n",
            &env.namespace,
            "patch",
            "swarmservice/web",
            "--type=merge",
            "-p",
            r#"{"spec":{"serviceName":"back"}}"#,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("spec.serviceName") && msg.contains("immutable"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server: scripts/test.sh runs it"]
async fn swarm_config_takes_exactly_one_source() {
    let env = TestEnv::new("cfgrule").await;
    let apply = |spec: &str| {
        let manifest = format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmConfig\nmetadata: {{name: c}}\nspec: {spec}\n"
        );
        match env.kubectl_apply(&manifest, true) {
            Ok(()) => (true, String::new()),
            Err(msg) => (false, msg),
        }
    };
    let (ok, msg) = apply("{data: x, configMapRef: {name: m, key: k}}");
    assert!(
        !ok && msg.contains("exactly one of configMapRef and data"),
        "{msg}"
    );
    let (ok, msg) = apply("{}");
    assert!(
        !ok && msg.contains("exactly one of configMapRef and data"),
        "{msg}"
    );
    assert!(apply("{data: \"listen 80;\"}").0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server: scripts/test.sh runs it"]
async fn swarm_stack_names_and_sources_are_checked_at_apply() {
    let env = TestEnv::new("stackrule").await;
    let apply = |name: &str, spec: &str| {
        let manifest = format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmStack\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        );
        env.kubectl_apply(&manifest, true).err().unwrap_or_default()
    };
    let compose = "compose: \"services: {web: {image: x}}\"";
    assert_eq!(apply("prod", &format!("{{{compose}}}")), "");
    let long = "a".repeat(41);
    assert!(apply(&long, &format!("{{{compose}}}")).contains("at most 40 characters"));
    assert_eq!(apply(&long, &format!("{{{compose}, stackName: prod}}")), "");
    assert!(apply(&"a".repeat(64), &format!("{{{compose}, stackName: prod}}")).contains("at most 63"));
    assert!(apply("prod", "{compose: \"\"}").contains("spec.compose"));
    let both = apply(
        "prod",
        &format!(
            "{{{compose}, sources: {{db: {{secret: {{name: s, key: k}}, configMap: {{name: c, key: k}}}}}}}}"
        ),
    );
    assert!(both.contains("exactly one of secret and configMap"), "{both}");
    // The stack's name in the swarm names every object of it: it cannot change.
    env.kubectl_apply(
        &format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmStack\nmetadata: {{name: app}}\nspec: {{{compose}, stackName: one}}\n"),
        false,
    )
    .unwrap();
    let changed = env
        .kubectl_apply(
            &format!("apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmStack\nmetadata: {{name: app}}\nspec: {{{compose}, stackName: two}}\n"),
            false,
        )
        .unwrap_err();
    assert!(changed.contains("spec.stackName is immutable"), "{changed}");
}
