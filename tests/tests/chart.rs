//! The Helm chart, rendered by helm itself (built from its Go module by scripts/helm-bin.sh) and
//! judged by the real API server: lint clean, every rendered object accepted by a server-side dry
//! run, the Deployment hardened, the Docker socket opt-in, the CRDs toggled, unknown values refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use swarm_operator_e2e::{TestEnv, chart, helm};

/// `helm template` with `sets`, as YAML text and as objects.
fn render(namespace: &str, sets: &[&str]) -> (String, Vec<Value>) {
    let chart_path = chart();
    let mut args = vec!["template", "so", chart_path.as_str(), "-n", namespace];
    for s in sets {
        args.extend(["--set", s]);
    }
    let out = helm(&args);
    assert!(
        out.status.success(),
        "helm template {sets:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let objects = serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|doc| {
            let v: Value = serde::Deserialize::deserialize(doc).ok()?;
            (!v.is_null()).then_some(v)
        })
        .collect();
    (text, objects)
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs helm and the real API server: scripts/test.sh runs it"]
async fn the_chart_lints_renders_hardened_and_is_accepted_by_the_api_server() {
    let env = TestEnv::new("chart").await;
    let lint = helm(&["lint", "--strict", &chart()]);
    assert!(
        lint.status.success(),
        "helm lint: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // Defaults: accepted by the API server, hardened, no socket, the CRDs kept on uninstall.
    let (text, objects) = render(&env.namespace, &[]);
    env.kubectl_apply(&text, true).unwrap();
    let deployment = find(&objects, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "swarm-operator:0.1.0");
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(
        pod["volumes"].is_null(),
        "no Docker socket by default: {}",
        pod["volumes"]
    );
    assert!(container["livenessProbe"]["httpGet"]["path"] == "/healthz");
    assert!(container["resources"]["limits"]["memory"].is_string());
    let crds = find(&objects, "CustomResourceDefinition");
    assert_eq!(crds.len(), 7, "every kind's CRD");
    assert!(
        crds.iter()
            .all(|c| c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep")
    );
    assert_eq!(find(&objects, "Service").len(), 1, "the metrics Service");
    assert!(find(&objects, "PodDisruptionBudget").is_empty() && find(&objects, "ServiceMonitor").is_empty());
    let role = find(&objects, "Role")[0];
    assert_eq!(
        role["rules"][0]["resourceNames"],
        serde_json::json!(["swarm-operator"]),
        "the one Lease"
    );

    // Opt-ins: the socket (with its group), a SwarmCluster from values, a PDB; CRDs left out.
    let (text, objects) = render(
        &env.namespace,
        &[
            "dockerSocket.enabled=true",
            "dockerSocket.groupID=998",
            "cluster.create=true",
            "cluster.endpoints={tcp://manager-1:2376}",
            "cluster.tlsSecret=swarm-tls",
            "cluster.joinTokensSecret=swarm-join",
            "logs.enabled=true",
            "podDisruptionBudget.enabled=true",
            "crds.enabled=false",
        ],
    );
    // The logs API's RoleBinding lives in kube-system (the front proxy's CA is read there):
    // kubectl applies it only with that namespace named.
    let (system, rest): (Vec<&str>, Vec<&str>) = text
        .split("\n---\n")
        .partition(|doc| doc.contains("\n  namespace: kube-system\n"));
    assert_eq!(system.len(), 1, "the logs API's RoleBinding in kube-system");
    env.kubectl_apply(&rest.join("\n---\n"), true).unwrap();
    env.kubectl_apply_in("kube-system", system[0], true).unwrap();
    assert!(find(&objects, "CustomResourceDefinition").is_empty());
    let pod = &find(&objects, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["hostPath"]["path"], "/var/run/docker.sock");
    assert_eq!(
        pod["securityContext"]["supplementalGroups"],
        serde_json::json!([998])
    );
    let cluster = find(&objects, "SwarmCluster")[0];
    assert_eq!(cluster["spec"]["tls"]["namespace"], env.namespace.as_str());
    assert_eq!(
        cluster["spec"]["joinTokens"]["secretRef"],
        serde_json::json!({"namespace": env.namespace, "name": "swarm-join"})
    );
    let join = find(&objects, "Role")
        .into_iter()
        .find(|r| {
            r["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-join-tokens"))
        })
        .expect("a Role for the join tokens' Secret");
    assert_eq!(
        join["rules"][0]["resourceNames"],
        serde_json::json!(["swarm-join"])
    );
    assert_eq!(find(&objects, "PodDisruptionBudget").len(), 1);
    // The logs API: an APIService trusting the CA that signed the serving certificate, and the
    // operator serving it from that certificate.
    let api = find(&objects, "APIService")[0];
    assert_eq!(api["spec"]["group"], "logs.swarmoperator.io");
    assert!(api["spec"]["caBundle"].as_str().is_some_and(|b| !b.is_empty()));
    let args = pod["containers"][0]["args"].to_string();
    assert!(args.contains("--logs-addr=0.0.0.0:8443"), "{args}");
    assert_eq!(pod["volumes"][1]["secret"]["secretName"], "so-logs-tls");

    // Namespace-scoped: a Role in each watched namespace, and cluster-wide only what is
    // cluster-scoped (SwarmClusters, namespaces' labels), never Secrets.
    let (_, objects) = render(&env.namespace, &["watchNamespaces={team-a,team-b}"]);
    let roles: Vec<_> = find(&objects, "Role")
        .into_iter()
        .filter(|r| r["rules"].to_string().contains("secrets"))
        .map(|r| r["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        roles,
        ["team-a", "team-b", env.namespace.as_str()],
        "watched + the TLS Secret's"
    );
    for role in find(&objects, "ClusterRole") {
        assert!(!role["rules"].to_string().contains("secrets"), "{role}");
    }
    let args = &find(&objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(args.to_string().contains("--namespace=team-a,team-b"), "{args}");

    // An unknown or misspelt value is refused, naming it.
    for bad in [
        "replica=3",
        "dockerSocket.enable=true",
        "logFormat=xml",
        "watchNamespaces={Team_A}",
    ] {
        let out = helm(&["template", "so", &chart(), "--set", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} accepted");
        let key = bad.split('=').next().unwrap().rsplit('.').next().unwrap();
        assert!(err.contains(key) || err.contains("xml"), "{bad}: {err}");
    }
}
