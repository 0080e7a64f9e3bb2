//! examples/gitops, deployed as Argo CD or Flux would: each app built by kustomize (kubectl's),
//! through an overlay that puts it in the test's namespace with a name prefix and the test image
//! in place of the public ones (no registry here), applied, and judged Ready on the API server and
//! on the swarm. The counter's store is reached by name from web over the internal network, and a
//! new password in the secret generator rolls the reader onto it. The Argo CD Applications and
//! Flux Kustomizations point at apps that exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use swarm_operator_e2e::{TestEnv, kubectl_bin, test_image};

const WITHIN: Duration = Duration::from_secs(150);

fn gitops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/gitops")
        .canonicalize()
        .unwrap()
}

/// Builds app `app` through an overlay into `env`'s namespace, names prefixed, images replaced
/// by the test image, with `extra` appended to the overlay; returns the YAML kustomize printed.
fn build(env: &TestEnv, app: &str, extra: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/e2e-beds/gitops")
        .join(format!("{}-{app}", env.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let (name, tag) = test_image("1")
        .split_once(':')
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .unwrap();
    let images: String = ["traefik/whoami", "redis", "example.com/counter-web", "busybox"]
        .iter()
        .map(|public| format!("- {{name: {public}, newName: {name}, newTag: \"{tag}\"}}\n"))
        .collect();
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {ns}\nnamePrefix: {prefix}-\n\
             components: [{root}/components/swarm-operator]\nresources: [{root}/apps/{app}]\nimages:\n{images}{extra}",
            ns = env.namespace,
            prefix = env.prefix,
            // kustomize takes only relative paths: from target/e2e-beds/gitops/<dir>.
            root = "../../../../examples/gitops",
        ),
    )
    .unwrap();
    let out = Command::new(kubectl_bin())
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kustomize {app}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until every swarm-operator resource in `yaml` is Ready for its current generation.
async fn wait_all_ready(env: &TestEnv, yaml: &str) {
    let objects: Vec<Value> = serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    for obj in objects.iter().filter(|o| {
        o["apiVersion"]
            .as_str()
            .unwrap_or("")
            .starts_with("swarmoperator.io/")
    }) {
        let (kind, name) = (
            obj["kind"].as_str().unwrap(),
            obj["metadata"]["name"].as_str().unwrap(),
        );
        env.wait_for(&format!("{kind} {name} Ready"), WITHIN, || async {
            let out = env.kubectl(&["get", kind, name, "-o", "json"]);
            let live: Value = serde_json::from_slice(&out.stdout).unwrap();
            let ready = live["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready && live["status"]["observedGeneration"] == live["metadata"]["generation"] {
                Ok(())
            } else {
                Err(live["status"].to_string())
            }
        })
        .await;
    }
}

/// `docker exec` into a running task of `service`.
async fn exec(env: &TestEnv, service: &str, cmd: &[&str]) -> Result<String, String> {
    let tasks = env.running_tasks(service).await;
    let id = tasks
        .iter()
        .find_map(|t| t.status.as_ref()?.container_status.as_ref()?.container_id.clone())
        .ok_or("no running task")?;
    let out = Command::new("docker")
        .arg("exec")
        .arg(&id)
        .args(cmd)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn the_gitops_examples_deploy_as_argo_cd_or_flux_would() {
    let mut env = TestEnv::new("gitops").await;
    env.start_operator();
    let p = env.prefix.clone();

    // whoami: three replicas behind the routing mesh, its port published (at the spec level:
    // no IPVS here).
    let whoami = build(&env, "whoami", "");
    env.kubectl_apply(&whoami, false).unwrap();
    wait_all_ready(&env, &whoami).await;
    let spec = env.swarm_service_json(&format!("{p}-whoami"))["Spec"].clone();
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 3);
    assert_eq!(spec["EndpointSpec"]["Ports"][0]["PublishedPort"], 8080);
    assert_eq!(spec["UpdateConfig"]["Order"], "start-first");

    // counter: web on both networks, store on the internal one only, reached by name.
    // The store by its VIP carries nothing without IPVS (this machine's kernel): DNSRR here.
    let counter = build(
        &env,
        "counter",
        "patches:\n- target: {kind: SwarmService, name: .*store}\n  patch: '[{\"op\": \"add\", \"path\": \"/spec/endpointMode\", \"value\": \"DNSRR\"}]'\n",
    );
    env.kubectl_apply(&counter, false).unwrap();
    wait_all_ready(&env, &counter).await;
    let networks = |svc: &str| -> usize {
        env.swarm_service_json(&format!("{p}-{svc}"))["Spec"]["TaskTemplate"]["Networks"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!((networks("web"), networks("store")), (2, 1));
    let web = format!("{p}-web");
    let answer = env
        .wait_for("store answering web by name", WITHIN, || async {
            exec(&env, &web, &["sh", "-c", "timeout 5 wget -qO- http://store:80/"]).await
        })
        .await;
    assert!(answer.contains("Hostname"), "{answer}");

    // secret: the reader serves the password; a new one in the generator rolls it.
    let reader = format!("{p}-reader");
    // The test image's own server, which its HEALTHCHECK probes, instead of busybox's httpd.
    let own_server = "patches:\n- target: {kind: SwarmService, name: .*reader}\n  patch: '[{\"op\": \"remove\", \"path\": \"/spec/command\"}]'\n";
    let secret = build(&env, "secret", own_server);
    env.kubectl_apply(&secret, false).unwrap();
    wait_all_ready(&env, &secret).await;
    let served = exec(&env, &reader, &["cat", "/run/secrets/db-password"])
        .await
        .unwrap();
    assert_eq!(served, "change-me");
    let rotated = build(
        &env,
        "secret",
        &format!(
            "{own_server}secretGenerator:\n- {{name: db, behavior: replace, literals: [password=rotated-in-git]}}\n"
        ),
    );
    assert_ne!(secret, rotated, "a new password is a new Secret name");
    env.kubectl_apply(&rotated, false).unwrap();
    env.wait_for("the reader on the new password", WITHIN, || async {
        match exec(&env, &reader, &["cat", "/run/secrets/db-password"]).await {
            Ok(v) if v == "rotated-in-git" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    wait_all_ready(&env, &rotated).await;

    // Every app has an Argo CD Application and a Flux Kustomization pointing at it.
    for app in ["whoami", "counter", "secret"] {
        let path = format!("examples/gitops/apps/{app}");
        let application: Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(gitops().join(format!("argocd/{app}.yaml"))).unwrap(),
        )
        .unwrap();
        assert_eq!(application["kind"], "Application");
        assert_eq!(application["spec"]["source"]["path"], path.as_str());
        let flux: Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(gitops().join(format!("flux/{app}.yaml"))).unwrap(),
        )
        .unwrap();
        assert_eq!(flux["kind"], "Kustomization");
        assert_eq!(flux["spec"]["path"], format!("./{path}").as_str());
        assert_eq!(flux["spec"]["sourceRef"]["name"], "swarm-apps");
        assert!(gitops().join(format!("apps/{app}/kustomization.yaml")).exists());
    }
}
