//! A private image from a real registry (Debian's docker-registry on loopback, htpasswd auth, set up
//! by scripts/test.sh): the service runs only with the right credentials from imagePullSecrets, the
//! digest a client pins does not cause an update loop, and the password shows up nowhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::api::{Api, PostParams};
use swarm_operator_e2e::TestEnv;

const WITHIN: Duration = Duration::from_secs(150);

fn registry() -> (String, String, String) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by scripts/test.sh"));
    (var("REGISTRY"), var("REGISTRY_USER"), var("REGISTRY_PASSWORD"))
}

async fn pull_secret(env: &TestEnv, name: &str, registry: &str, user: &str, password: &str) {
    let doc = serde_json::json!({"auths": {registry: {"username": user, "password": password}}});
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(doc.to_string().into_bytes()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(env.client.clone(), &env.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server, swarm and registry: scripts/test.sh runs it"]
async fn private_image_runs_only_with_the_right_credentials() {
    let (registry, user, password) = registry();
    let mut env = TestEnv::new("registry").await;
    env.start_operator_with(&["--resync-seconds", "3"]);
    let image = format!("{registry}/swarm-operator-test/whoami:1");
    // A copy already on the node would run whatever the credentials: make the node pull.
    let _ = std::process::Command::new("docker")
        .args(["rmi", &image])
        .output();
    pull_secret(&env, "wrong", &registry, &user, "not-the-password").await;
    pull_secret(&env, "right", &registry, &user, &password).await;
    let name = format!("{}-private", env.prefix);
    let manifest = |secret: &str| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
             spec: {{image: \"{image}\", replicas: 1, imagePullSecrets: [{{name: {secret}}}]}}"
        )
    };

    // Wrong credentials: the manager cannot pull, the tasks fail, the resource says so.
    env.apply(&manifest("wrong")).await;
    let failing = env.wait_condition(&name, "Stalled", "TasksFailing", WITHIN).await;
    assert!(failing.contains("0/1 tasks running"), "{failing}");
    assert!(env.running_tasks(&name).await.is_empty());

    // The right ones (a new generation that changes only imagePullSecrets): it runs.
    env.apply(&manifest("right")).await;
    env.wait_ready(&name, WITHIN).await;
    assert_eq!(env.running_tasks(&name).await.len(), 1);

    // A client that pins the digest (the docker CLI does, given registry access) changes the
    // image to name:tag@sha256:...; that is the same image, and the operator leaves it alone.
    let cfg = tempdir();
    let login = std::process::Command::new("docker")
        .env("DOCKER_CONFIG", &cfg)
        .args(["login", "-u", &user, "--password-stdin", &registry])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(password.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(login.success());
    let out = std::process::Command::new("docker")
        .env("DOCKER_CONFIG", &cfg)
        .args([
            "service",
            "update",
            "--detach",
            "--with-registry-auth",
            "--image",
            &image,
            &name,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&cfg);
    // Swarm's own rolling update to the pinned image moves the version index until it completes.
    env.wait_for("the CLI's update to complete", WITHIN, || async {
        let state = env.swarm_service_json(&name)["UpdateStatus"]["State"].clone();
        if state == "completed" {
            Ok(())
        } else {
            Err(state.to_string())
        }
    })
    .await;
    let pinned = env.swarm_service_json(&name);
    let pinned_image = pinned["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pinned_image.starts_with(&format!("{image}@sha256:")),
        "{pinned_image}"
    );
    tokio::time::sleep(Duration::from_secs(8)).await; // more than two resyncs
    let later = env.swarm_service_json(&name);
    assert_eq!(
        later["Version"]["Index"], pinned["Version"]["Index"],
        "the pinned digest was 'corrected'"
    );
    env.wait_ready(&name, WITHIN).await;

    // The password appears in no log line, event, or status.
    let logs = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/e2e-logs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&env.namespace))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(!logs.is_empty());
    assert!(!logs.contains(&password), "password in the operator log");
    let events = env.kubectl(&["get", "events", "-o", "json"]);
    assert!(
        !String::from_utf8_lossy(&events.stdout).contains(&password),
        "password in an event"
    );
    let status = serde_json::to_string(&env.services().get(&name).await.unwrap().status).unwrap();
    assert!(!status.contains(&password), "password in status");
    assert!(
        !later.to_string().contains(&password),
        "password in the Swarm service spec"
    );
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("swarm-operator-e2e-docker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The digest the registry gives `tag` of the test image.
fn digest_of(registry: &str, user: &str, password: &str, tag: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-sfI",
            "-u",
            &format!("{user}:{password}"),
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
            &format!("http://{registry}/v2/swarm-operator-test/whoami/manifests/{tag}"),
        ])
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_string();
    headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("docker-content-digest:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no digest for :{tag}: {headers}"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server, swarm and registry: scripts/test.sh runs it"]
async fn credentials_that_come_later_and_a_digest_change_reach_the_swarm() {
    let (registry, user, password) = registry();
    let mut env = TestEnv::new("digests").await;
    env.start_operator();
    let (one, two) = (
        digest_of(&registry, &user, &password, "1"),
        digest_of(&registry, &user, &password, "2"),
    );
    assert_ne!(one, two);
    let name = format!("{}-pinned", env.prefix);
    let manifest = |digest: &str| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
             spec: {{image: \"{registry}/swarm-operator-test/whoami@{digest}\", replicas: 1, imagePullSecrets: [{{name: late}}]}}"
        )
    };
    env.apply(&manifest(&one)).await;
    let waiting = env
        .wait_condition(&name, "Reconciling", "WaitingForDependency", WITHIN)
        .await;
    assert!(waiting.contains("Secret late"), "{waiting}");
    // Its next look on its own is 10 s away: the Secret itself must wake it.
    let created = std::time::Instant::now();
    pull_secret(&env, "late", &registry, &user, &password).await;
    env.wait_for("the Swarm service", Duration::from_secs(5), || async {
        env.swarm_service(&name)
            .await
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    println!("Secret created -> Swarm service created: {:?}", created.elapsed());
    env.wait_ready(&name, WITHIN).await;

    // A digest the user gave is compared whole: another digest is another image.
    env.apply(&manifest(&two)).await;
    env.wait_ready(&name, WITHIN).await;
    let image = env.swarm_service_json(&name)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(image.ends_with(&two), "{image}");
    assert_eq!(env.running_tasks(&name).await.len(), 1);
}

/// Pushes the test image to the registry as `name:1`, a reference no node has, and returns it.
fn push_private_copy(registry: &str, user: &str, password: &str, name: &str) -> String {
    let image = format!("{registry}/{name}:1");
    let cfg = tempdir();
    let docker = |args: &[&str]| {
        swarm_operator_e2e::docker_with_config(Some(cfg.as_path()), args);
    };
    docker(&["tag", &swarm_operator_e2e::test_image("1"), &image]);
    let login = std::process::Command::new("docker")
        .env("DOCKER_CONFIG", &cfg)
        .args(["login", "-u", user, "--password-stdin", registry])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(password.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(login.success());
    docker(&["push", "-q", &image]);
    docker(&["rmi", &image]);
    let _ = std::fs::remove_dir_all(&cfg);
    image
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server, swarm and registry: scripts/test.sh runs it"]
async fn a_pull_secret_fixed_in_place_reaches_the_manager() {
    let (registry, user, password) = registry();
    let mut env = TestEnv::new("fixsecret").await;
    env.start_operator();
    let image = push_private_copy(&registry, &user, &password, &format!("fixed-{}", env.prefix));
    pull_secret(&env, "creds", &registry, &user, "not-the-password").await;
    let name = format!("{}-private", env.prefix);
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
         spec: {{image: \"{image}\", replicas: 1, imagePullSecrets: [{{name: creds}}]}}"
    ))
    .await;
    env.wait_condition(&name, "Stalled", "TasksFailing", WITHIN).await;

    // The same Secret, its password fixed: no new generation, yet the manager gets it.
    let doc = serde_json::json!({"auths": {&registry: {"username": &user, "password": &password}}});
    let patch = serde_json::json!({"data": {".dockerconfigjson": ByteString(doc.to_string().into_bytes())}});
    Api::<Secret>::namespaced(env.client.clone(), &env.namespace)
        .patch(
            "creds",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
        .unwrap();
    let ready = env.wait_ready(&name, WITHIN).await;
    assert_eq!(ready.metadata.generation, Some(1));
    assert_eq!(env.running_tasks(&name).await.len(), 1);
    let from = ready.status.unwrap().pull_credentials_from.unwrap();
    assert!(from.starts_with("creds@"), "{from}");
    assert!(!from.contains(&password));
}
