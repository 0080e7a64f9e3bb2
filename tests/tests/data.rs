//! SwarmSecret and SwarmConfig end to end: values from a Kubernetes Secret and ConfigMap reach the
//! containers, rotate to new versions without a failed request, old versions go once unused, and
//! the values appear nowhere else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use rand::Rng;
use swarm_operator_crds::{SwarmConfig, SwarmSecret};
use swarm_operator_e2e::{TestEnv, test_image};

const WITHIN: Duration = Duration::from_secs(150);

fn random_value(prefix: &str) -> String {
    let s: String = (0..16)
        .map(|_| rand::rng().random_range(b'a'..=b'z') as char)
        .collect();
    format!("{prefix}-{s}")
}

async fn set_source(env: &TestEnv, password: &str, config: &str) {
    let params = PatchParams::apply("e2e-test").force();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("db-creds".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_string(),
            ByteString(password.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).unwrap();
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    Api::<Secret>::namespaced(env.client.clone(), &env.namespace)
        .patch("db-creds", &params, &Patch::Apply(value))
        .await
        .unwrap();
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("app".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("app.conf".to_string(), config.to_string())])),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&map).unwrap();
    value["apiVersion"] = "v1".into();
    value["kind"] = "ConfigMap".into();
    Api::<ConfigMap>::namespaced(env.client.clone(), &env.namespace)
        .patch("app", &params, &Patch::Apply(value))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn secrets_and_configs_reach_the_containers_and_rotate_without_a_failed_request() {
    let mut env = TestEnv::new("data").await;
    // Every target at trace level: the Engine client and HTTP stack log what they send there.
    env.rust_log = "trace".into();
    env.start_operator();
    let secrets: Api<SwarmSecret> = Api::namespaced(env.client.clone(), &env.namespace);
    let configs: Api<SwarmConfig> = Api::namespaced(env.client.clone(), &env.namespace);
    let web = format!("{}-web", env.prefix);
    let net = format!("{}-app", env.prefix);

    // Sources missing: the resources say which, naming no value, and wait.
    env.kubectl_apply(
        &format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmSecret\nmetadata: {{name: my-password}}\n\
             spec: {{secretRef: {{name: db-creds, key: password}}}}\n---\n\
             apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmConfig\nmetadata: {{name: app-config}}\n\
             spec: {{configMapRef: {{name: app, key: app.conf}}}}\n---\n\
             apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: app}}\n\
             spec: {{networkName: {net}, attachable: true}}"
        ),
        false,
    )
    .unwrap();
    let stalled = env
        .wait_for("SwarmSecret Stalled/SourceMissing", WITHIN, || async {
            let s = secrets.get("my-password").await.map_err(|e| e.to_string())?;
            let c = s
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Stalled").cloned());
            match c {
                Some(c) if c.status == "True" && c.reason == "SourceMissing" => Ok(c.message),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    assert_eq!(stalled, "Secret db-creds not found");
    env.apply(&format!(
        r#"
apiVersion: swarmoperator.io/v1alpha1
kind: SwarmService
metadata: {{name: {web}}}
spec:
  image: {image}
  replicas: 2
  endpointMode: DNSRR
  networks: [{{name: app}}]
  secrets: [{{name: my-password}}]
  configs: [{{name: app-config, target: /etc/app.conf, mode: 292}}]
  updateConfig: {{parallelism: 1, order: StartFirst, monitor: 2s}}
"#,
        image = test_image("1")
    ))
    .await;
    let waiting = env
        .wait_condition(&web, "Reconciling", "WaitingForDependency", WITHIN)
        .await;
    assert!(
        waiting.contains("SwarmSecret my-password") && waiting.contains("SwarmConfig app-config"),
        "{waiting}"
    );

    // The sources appear: everything proceeds by itself.
    let (password1, config1) = (random_value("pw1"), random_value("cfg1"));
    set_source(&env, &password1, &config1).await;
    env.wait_ready(&web, WITHIN).await;
    let first = secrets.get("my-password").await.unwrap().status.unwrap();
    assert!(first.swarm_name.as_deref().unwrap().starts_with("my-password-"));

    // A client on the network reads both files through the service name, all along.
    let poller = format!("{}-poller", env.prefix);
    let script = format!(
        "while :; do s=$(timeout 2 wget -qO- 'http://{web}:80/cgi-bin/file.cgi?/run/secrets/my-password' 2>/dev/null); \
         c=$(timeout 2 wget -qO- 'http://{web}:80/cgi-bin/file.cgi?/etc/app.conf' 2>/dev/null); \
         if [ -n \"$s\" ] && [ -n \"$c\" ]; then echo \"ok $s $c\"; else echo fail; fi; sleep 0.1; done"
    );
    env.docker_cli(&[
        "run",
        "-d",
        "--name",
        &poller,
        "--network",
        &net,
        "--entrypoint",
        "/bin/sh",
        &test_image("1"),
        "-c",
        &script,
    ]);
    let log = || env.docker_cli(&["logs", &poller]);
    let wait_for_line = |want: String| {
        let log = &log;
        let env = &env;
        async move {
            env.wait_for(&format!("the client to read {want}"), WITHIN, || async {
                let tail: Vec<String> = log().lines().rev().take(5).map(String::from).collect();
                if tail.len() == 5 && tail.iter().all(|l| *l == want) {
                    Ok(())
                } else {
                    Err(tail.join(" | "))
                }
            })
            .await
        }
    };
    wait_for_line(format!("ok {password1} {config1}")).await;

    // Rotate the secret, then the config: new versions, services roll over, old versions go.
    let password2 = random_value("pw2");
    set_source(&env, &password2, &config1).await;
    wait_for_line(format!("ok {password2} {config1}")).await;
    let config2 = random_value("cfg2");
    set_source(&env, &password2, &config2).await;
    wait_for_line(format!("ok {password2} {config2}")).await;
    let lines = log();
    env.docker_cli(&["rm", "-f", &poller]);
    let failed = lines.lines().filter(|l| *l == "fail").count();
    println!(
        "requests over two rotations: {} answered, {failed} failed",
        lines.lines().count() - failed
    );
    assert_eq!(failed, 0, "failed requests during the rotations");

    for (kind, api_name) in [("secret", "my-password"), ("config", "app-config")] {
        env.wait_for(
            &format!("the old {kind} version to be removed"),
            WITHIN,
            || async {
                let status = match kind {
                    "secret" => secrets.get(api_name).await.map_err(|e| e.to_string())?.status,
                    _ => configs.get(api_name).await.map_err(|e| e.to_string())?.status,
                }
                .unwrap_or_default();
                let listed = env.docker_cli(&[
                    kind,
                    "ls",
                    "--filter",
                    &format!("label=swarmoperator.io/owner-namespace={}", env.namespace),
                    "--format",
                    "{{.Name}}",
                ]);
                let names: Vec<&str> = listed.split_whitespace().collect();
                if status.versions.len() == 1
                    && names == [status.swarm_name.clone().unwrap_or_default().as_str()]
                {
                    Ok(())
                } else {
                    Err(format!("{:?} / {names:?}", status.versions))
                }
            },
        )
        .await;
    }
    assert_ne!(
        secrets
            .get("my-password")
            .await
            .unwrap()
            .status
            .unwrap()
            .swarm_name,
        first.swarm_name
    );
    assert!(
        env.events("Rotated").await.iter().any(|(t, _)| t == "Normal"),
        "a Normal Rotated event"
    );
    assert!(
        env.events("DriftReverted").await.is_empty(),
        "a rotation reported as drift"
    );

    // The values appear in no log, event, status or label.
    let leaks = env.places_showing(&[&password1, &password2]).await;
    assert!(leaks.is_empty(), "secret values shown: {leaks:?}");
}

/// Sets key `key` of Secret `name` to `value` (server-side apply, creating it if needed).
async fn set_secret_key(env: &TestEnv, name: &str, key: &str, value: &str) {
    let mut secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}});
    use base64::Engine as _;
    secret["data"][key] = base64::engine::general_purpose::STANDARD.encode(value).into();
    Api::<Secret>::namespaced(env.client.clone(), &env.namespace)
        .patch(
            name,
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(secret),
        )
        .await
        .unwrap();
}

/// `NAME=value` lines of the environment of every running container of Swarm service `service`;
/// a container that stops while it is read (a rolling update) is left out.
fn container_env(env: &TestEnv, service: &str) -> Vec<Vec<String>> {
    let ids = env.docker_cli(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    ids.split_whitespace()
        .filter_map(|id| {
            let out = std::process::Command::new("docker")
                .args(["exec", id, "env"])
                .output()
                .ok()?;
            let mut vars: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| {
                    ["TLS_CERT=", "MODE=", "SITE_", "PLAIN="]
                        .iter()
                        .any(|p| l.starts_with(p))
                })
                .map(String::from)
                .collect();
            vars.sort();
            out.status.success().then_some(vars)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn env_from_secrets_and_config_maps_reaches_the_containers_rolls_on_change_and_leaks_nowhere() {
    let mut env = TestEnv::new("envfrom").await;
    // Every target at trace level: the Engine client and HTTP stack log what they send there.
    env.rust_log = "trace".into();
    env.start_operator();
    let web = format!("{}-web", env.prefix);
    let params = PatchParams::apply("e2e-test").force();
    let site = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "site"},
        "data": {"mode": "prod", "color": "blue"}});
    Api::<ConfigMap>::namespaced(env.client.clone(), &env.namespace)
        .patch("site", &params, &Patch::Apply(site))
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: swarmoperator.io/v1alpha1
kind: SwarmService
metadata: {{name: {web}}}
spec:
  image: {image}
  replicas: 1
  env:
  - {{name: TLS_CERT, valueFrom: {{secretKeyRef: {{name: tls, key: cert}}}}}}
  - {{name: MODE, valueFrom: {{configMapKeyRef: {{name: site, key: mode}}}}}}
  - {{name: PLAIN, value: as-is}}
  envFrom: [{{prefix: SITE_, configMapRef: {{name: site}}}}]
  updateConfig: {{parallelism: 1, order: StartFirst, monitor: 1s}}
"#,
        image = test_image("1")
    ))
    .await;

    // The Secret is missing: Stalled/SourceMissing naming it and the variable, once, nothing made.
    let message = env.wait_condition(&web, "Stalled", "SourceMissing", WITHIN).await;
    assert_eq!(
        message,
        "the environment reads what does not exist: Secret tls (spec.env[TLS_CERT])"
    );
    assert!(
        env.swarm_service(&web).await.is_none(),
        "a service made without its environment"
    );

    // It appears: the service is made with the value, by itself.
    let (cert1, cert2) = (random_value("cert1"), random_value("cert2"));
    set_secret_key(&env, "tls", "cert", &cert1).await;
    env.wait_ready(&web, WITHIN).await;
    let want = |cert: &str| {
        vec![
            "MODE=prod".to_string(),
            "PLAIN=as-is".into(),
            "SITE_color=blue".into(),
            "SITE_mode=prod".into(),
            format!("TLS_CERT={cert}"),
        ]
    };
    assert_eq!(container_env(&env, &web), vec![want(&cert1)]);
    assert_eq!(
        env.events("SourceMissing").await.len(),
        1,
        "one Warning for the missing Secret"
    );

    // The Secret changes: the service rolls to the new value (start-first), said as such.
    set_secret_key(&env, "tls", "cert", &cert2).await;
    env.wait_for("the container to run the new value", WITHIN, || async {
        let seen = container_env(&env, &web);
        if seen == vec![want(&cert2)] {
            Ok(())
        } else {
            Err(format!("{} containers", seen.len()))
        }
    })
    .await;
    let ready = env.wait_ready(&web, WITHIN).await;
    assert_eq!(
        ready.metadata.generation,
        Some(1),
        "the resource itself did not change"
    );
    let sources = ready.status.unwrap().env_sources;
    assert!(
        sources.len() == 2
            && sources[0].starts_with("Secret/tls@")
            && sources[1].starts_with("ConfigMap/site@"),
        "{sources:?}"
    );
    env.wait_for("a SourceChanged event", WITHIN, || async {
        let found = env.events("SourceChanged").await;
        if found
            .iter()
            .any(|(t, n)| t == "Normal" && n.contains("TaskTemplate.ContainerSpec.Env"))
        {
            Ok(())
        } else {
            Err(format!("{found:?}"))
        }
    })
    .await;
    assert!(
        env.events("DriftReverted").await.is_empty(),
        "a source change reported as drift"
    );

    // A hand edit of the environment on the swarm is drift, and is put back.
    env.docker_cli(&[
        "service",
        "update",
        "--detach",
        "--env-add",
        "TLS_CERT=by-hand",
        &web,
    ]);
    env.wait_for("the hand edit to be reverted", WITHIN, || async {
        let found = env.events("DriftReverted").await;
        let spec = env.swarm_service_json(&web)["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].to_string();
        if !found.is_empty() && spec.contains(&cert2) {
            Ok(())
        } else {
            Err(spec.len().to_string())
        }
    })
    .await;

    // Docker keeps env values in the service spec (docker service inspect shows them, as the README
    // says); nowhere else.
    let leaks = env.places_showing(&[&cert1, &cert2]).await;
    assert!(leaks.is_empty(), "values shown: {leaks:?}");
}
