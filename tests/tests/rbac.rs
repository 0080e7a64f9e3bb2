//! The chart's RBAC proven least on the real API server: helm installs the chart in the
//! namespace-scoped mode, the operator runs with a token of the chart's ServiceAccount
//! (TokenRequest) through services, a network, a secret rotation, a stack and a TLS SwarmCluster in
//! two watched namespaces, and the API server's audit log (scripts/lib.sh keeps the
//! ServiceAccounts' requests) shows it was never refused and used every verb the chart grants.
//! A third namespace stays out of its reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    process::Command,
    time::Duration,
};

use serde_json::Value;
use swarm_operator_e2e::{
    CLUSTER_LABEL, Lab, TestEnv, chart, helm, kubectl_bin, services_named, test_image, token_kubeconfig,
};

const WITHIN: Duration = Duration::from_secs(120);

/// `helm uninstall` when the test ends, whatever its outcome: the ClusterRoles are cluster-wide.
struct Release {
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(&["uninstall", &self.name, "-n", &self.namespace]);
    }
}

/// `kubectl get` of one object as JSON, with the test's (admin) identity.
fn get_json(kind: &str, namespace: &str, name: &str) -> Result<Value, String> {
    let out = Command::new(kubectl_bin())
        .args(["get", kind, name, "-n", namespace, "-o", "json"])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

/// Waits until `kind/name` is Ready for its current generation.
async fn wait_ready(env: &TestEnv, kind: &str, namespace: &str, name: &str) -> Value {
    env.wait_for(&format!("{kind} {namespace}/{name} Ready"), WITHIN, || async {
        let obj = get_json(kind, namespace, name)?;
        let ready = obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let current = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
        if ready && current {
            Ok(obj)
        } else {
            Err(obj["status"].to_string())
        }
    })
    .await
}

/// One request in the audit log: namespace ("" when cluster-wide), API group, resource (with its
/// subresource), verb, object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    namespace: String,
    group: String,
    resource: String,
    verb: String,
    name: String,
}

/// The requests of `user` in the audit log, as (request, HTTP code), leaving out kubectl's (the
/// test's own denied tries with the same token).
fn audited(log: &Path, user: &str) -> Vec<(Request, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["user"]["username"] == user)
        .filter(|e| !e["userAgent"].as_str().unwrap_or("").starts_with("kubectl"))
        .map(|e| {
            let o = &e["objectRef"];
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            let mut resource = s(&o["resource"]);
            if let Some(sub) = o["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            let request = Request {
                namespace: s(&o["namespace"]),
                group: s(&o["apiGroup"]),
                resource,
                verb: s(&e["verb"]),
                name: s(&o["name"]),
            };
            (request, e["responseStatus"]["code"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// What the release's Roles and ClusterRoles grant, one (namespace, group, resource, verb,
/// resourceNames) per verb: namespace `*` for a ClusterRole's.
fn granted(release: &str, namespace: &str) -> Vec<(String, String, String, String, Vec<String>)> {
    let out = helm(&["get", "manifest", release, "-n", namespace]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut grants = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout)) {
        let Ok(obj) = <Value as serde::Deserialize>::deserialize(doc) else {
            continue;
        };
        let scope = match obj["kind"].as_str() {
            Some("Role") => obj["metadata"]["namespace"].as_str().unwrap().to_string(),
            Some("ClusterRole") => "*".to_string(),
            _ => continue,
        };
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        for rule in obj["rules"].as_array().unwrap() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        let names = strings(&rule["resourceNames"]);
                        grants.push((scope.clone(), group.clone(), resource.clone(), verb, names));
                    }
                }
            }
        }
    }
    grants
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs helm, the real API server with its audit log, and a lab swarm: scripts/test.sh runs it"]
async fn the_chart_grants_the_operator_exactly_what_it_uses_and_no_more() {
    let dir = std::env::temp_dir().join(format!("swarm-rbac-{}", std::process::id()));
    let certs = dir.join("certs");
    Lab::certs(31, &certs);
    let lab = Lab::up(31, 1, Some(&certs));
    let mut env = TestEnv::new("rbac").await;
    let (a, b) = (env.another_namespace("a").await, env.another_namespace("b").await);
    let outside = env.another_namespace("c").await;
    let release = env.prefix.clone();
    let user = format!("system:serviceaccount:{}:{release}", env.namespace);

    // The chart, in the namespace-scoped mode: Roles in a and b, the release in the test's own.
    let chart_dir = chart();
    let install = helm(&[
        "install",
        &release,
        &chart_dir,
        "-n",
        &env.namespace,
        "--set",
        "crds.enabled=false",
        "--set",
        &format!("watchNamespaces={{{a},{b}}}"),
    ]);
    assert!(
        install.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let _release = Release {
        name: release.clone(),
        namespace: env.namespace.clone(),
    };
    let token = env.kubectl(&["create", "token", &release, "--duration", "2h"]);
    let token = String::from_utf8(token.stdout).unwrap();
    let kubeconfig = token_kubeconfig(token.trim(), &dir, "operator.kubeconfig");
    env.operator_kubeconfig = Some(kubeconfig.clone());
    env.watched = vec![a.clone(), b.clone()];
    env.start_operator();

    // A SwarmCluster over mutual TLS (its Secret in the release's namespace) that admits only
    // namespaces labelled for it: the operator reads the Secret and namespace a's labels.
    env.kubectl(&["label", "namespace", &a, "rbac.e2e/lab=yes"]);
    env.kubectl(&[
        "create",
        "secret",
        "generic",
        "lab-tls",
        &format!("--from-file=ca.pem={}", certs.join("ca.pem").display()),
        &format!("--from-file=cert.pem={}", certs.join("cert.pem").display()),
        &format!("--from-file=key.pem={}", certs.join("key.pem").display()),
    ]);
    let cluster = format!("{}-lab", env.prefix);
    let endpoint = format!("tcp://{}:2376", Lab::ip(31, 1));
    env.kubectl_apply(
        &format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmCluster\nmetadata:\n  name: {cluster}\n  labels: {{{CLUSTER_LABEL}: {}}}\n\
             spec:\n  endpoints: [{endpoint}]\n  tls: {{namespace: {}, name: lab-tls}}\n  namespaceSelector: {{matchLabels: {{rbac.e2e/lab: 'yes'}}}}\n",
            env.namespace, env.namespace
        ),
        false,
    )
    .unwrap();

    // Namespace a: a secret and a config from a Secret and a ConfigMap, a service using both on
    // the local swarm, and a service on the lab swarm.
    let web = format!("{}-web", env.prefix);
    let on_lab = format!("{}-onlab", env.prefix);
    let apply_in = |ns: &str, manifest: String| env.kubectl_apply_in(ns, &manifest, false).unwrap();
    let image = test_image("1");
    let service = |name: &str, replicas: u8, extra: &str| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
             spec: {{image: {image}, replicas: {replicas}, endpointMode: DNSRR{extra}}}\n"
        )
    };
    apply_in(
        &a,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{password: first}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\ndata: {{app.conf: x}}\n---\n\
             apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmSecret\nmetadata: {{name: pw}}\nspec: {{secretRef: {{name: db, key: password}}}}\n---\n\
             apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmConfig\nmetadata: {{name: conf}}\nspec: {{configMapRef: {{name: app, key: app.conf}}}}\n---\n{}---\n{}",
            service(
                &web,
                1,
                ", secrets: [{name: pw}], configs: [{name: conf, target: /etc/app.conf}]"
            ),
            service(&on_lab, 1, &format!(", clusterRef: {{name: {cluster}}}")),
        ),
    );
    // Namespace b: a network with a service on it, and a stack whose variables come from a
    // ConfigMap.
    let api = format!("{}-api", env.prefix);
    let stack = format!("{}-st", env.prefix);
    // `back` brings a network, a secret and a config of its own: removing it prunes one of each.
    let front = "services:\n  front:\n    image: IMAGE\n    deploy:\n      replicas: ${REPLICAS}\n"
        .replace("IMAGE", &image);
    let back = "  back:\n    image: IMAGE\n    deploy: {replicas: 0}\n    networks: [inner]\n    secrets: [tok]\n    configs: [cfg]\n\
                networks:\n  inner: {driver: overlay}\nsecrets:\n  tok: {file: ./tok}\nconfigs:\n  cfg: {file: ./cfg}\n"
        .replace("IMAGE", &image);
    let stack_manifest = |compose: &str| {
        serde_json::json!({
            "apiVersion": "swarmoperator.io/v1alpha1",
            "kind": "SwarmStack",
            "metadata": {"name": stack},
            "spec": {
                "compose": compose,
                "valuesFrom": [{"configMapRef": {"name": "vars"}}],
                "sources": {
                    "tok": {"secret": {"name": "tok", "key": "token"}},
                    "cfg": {"configMap": {"name": "vars", "key": "REPLICAS"}},
                },
            },
        })
        .to_string()
    };
    apply_in(
        &b,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: vars}}\ndata: {{REPLICAS: '1'}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: tok}}\nstringData: {{token: t}}\n---\n\
             apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: net}}\nspec: {{networkName: {}-net}}\n---\n{}",
            env.prefix,
            service(&api, 1, ", networks: [{name: net}]"),
        ),
    );
    apply_in(&b, stack_manifest(&format!("{front}{back}")));
    // Outside the watched namespaces: never touched.
    apply_in(&outside, service(&format!("{}-out", env.prefix), 1, ""));

    wait_ready(&env, "swarmcluster", "", &cluster).await;
    // The lab's manager goes away twice: the second "unavailable" event about the (cluster-scoped)
    // SwarmCluster repeats the first, a series in the namespace `default`.
    for _ in 0..2 {
        lab.stop(1);
        env.wait_for("the SwarmCluster unavailable", WITHIN, || async {
            let obj = get_json("swarmcluster", "", &cluster)?;
            let down = obj["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "False");
            if down {
                Ok(())
            } else {
                Err(obj["status"].to_string())
            }
        })
        .await;
        lab.start(1);
        wait_ready(&env, "swarmcluster", "", &cluster).await;
    }
    wait_ready(&env, "swarmservice", &a, &web).await;
    wait_ready(&env, "swarmservice", &a, &on_lab).await;
    assert_eq!(
        services_named(&lab.docker(1).await, &on_lab).await.len(),
        1,
        "on the lab swarm"
    );
    wait_ready(&env, "swarmservice", &b, &api).await;
    wait_ready(&env, "swarmstack", &b, &stack).await;
    let child = get_json("swarmservice", &b, &format!("{stack}-front")).unwrap();
    assert_eq!(
        child["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true,
        "created under OwnerReferencesPermissionEnforcement: the chart's swarmstacks/finalizers rule"
    );

    // Scaled twice: the second "Updated …: Replicas" is a series (an event patch).
    for replicas in [2, 1, 2] {
        apply_in(
            &a,
            service(
                &web,
                replicas,
                ", secrets: [{name: pw}], configs: [{name: conf, target: /etc/app.conf}]",
            ),
        );
        wait_ready(&env, "swarmservice", &a, &web).await;
    }
    // The Secret rotates: the SwarmSecret gets a new version and the service rolls onto it.
    let first = get_json("swarmsecret", &a, "pw").unwrap()["status"]["swarmName"].clone();
    apply_in(
        &a,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: second}\n".into(),
    );
    let rotated = env
        .wait_for("the SwarmSecret's new version on the service", WITHIN, || async {
            let now = get_json("swarmsecret", &a, "pw")?["status"]["swarmName"].clone();
            let on_engine = env.swarm_service_json(&web).to_string();
            if now != first && on_engine.contains(now.as_str().unwrap_or("-")) {
                Ok(now)
            } else {
                Err(format!("{now}"))
            }
        })
        .await;
    assert_ne!(rotated, first);
    // The stack loses `back`: its service, network, secret and config are pruned.
    apply_in(&b, stack_manifest(&front));
    for (kind, pruned) in [
        ("swarmservice", "-back"),
        ("swarmnetwork", "-inner"),
        ("swarmsecret", "-tok"),
        ("swarmconfig", "-cfg"),
    ] {
        env.wait_for(&format!("the stack's {kind} pruned"), WITHIN, || async {
            let out = Command::new(kubectl_bin())
                .args([
                    "get",
                    kind,
                    "-n",
                    &b,
                    "-l",
                    &format!("swarmoperator.io/stack={stack}"),
                    "-o",
                    "name",
                ])
                .output()
                .unwrap();
            let names = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && !names.contains(pruned) {
                Ok(())
            } else {
                Err(names)
            }
        })
        .await;
    }
    wait_ready(&env, "swarmstack", &b, &stack).await;
    // Deleting a resource: its finalizer goes, and so does the Swarm service.
    env.kubectl(&["delete", "swarmservice", &api, "-n", &b]);
    env.wait_for("the deleted service gone from the swarm", WITHIN, || async {
        match env.swarm_service(&api).await {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;

    // The namespace outside was never touched: no finalizer, the status as the API server
    // defaults it.
    let out = get_json("swarmservice", &outside, &format!("{}-out", env.prefix)).unwrap();
    assert!(
        out["metadata"]["finalizers"].is_null()
            && out["status"] == serde_json::json!({"observedGeneration": 0}),
        "{out}"
    );
    // The same token is refused outside the role.
    let refused = |args: &[&str]| {
        let out = Command::new(kubectl_bin())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && stderr.contains("Forbidden"),
            "{args:?} was allowed: {stderr}"
        );
    };
    refused(&["get", "secrets", "-n", &outside]);
    refused(&["get", "secrets", "-n", &env.namespace, "-o", "name"]);
    refused(&["get", "swarmservices", "--all-namespaces"]);
    refused(&["create", "namespace", &format!("{}-x", env.namespace)]);

    // The audit log: the operator was never refused, and used every verb the chart grants.
    let log = Path::new(&std::env::var("KUBECONFIG").unwrap())
        .parent()
        .unwrap()
        .join("logs/audit.log");
    let requests = audited(&log, &user);
    assert!(
        !requests.is_empty(),
        "no request of {user} in {}: is the audit log on?",
        log.display()
    );
    let denied: BTreeSet<_> = requests
        .iter()
        .filter(|(_, code)| *code == 403)
        .map(|(r, _)| r)
        .collect();
    assert!(denied.is_empty(), "the operator was refused: {denied:#?}");
    let mut unused = Vec::new();
    let watched = [a.clone(), b.clone()];
    for (scope, group, resource, verb, names) in granted(&release, &env.namespace) {
        // Used by admission (OwnerReferencesPermissionEnforcement), never a request of its own:
        // proven by the stack's children above.
        if resource == "swarmstacks/finalizers" {
            continue;
        }
        // Read only when a pass's cached copy is older than the operator's own status write (a
        // race some runs meet, and were refused before this grant); what services refer to, also
        // by a service pass that comes before the watches have listed them.
        let read_in_races = [
            "swarmservices",
            "swarmstacks",
            "swarmnetworks",
            "swarmsecrets",
            "swarmconfigs",
        ];
        if verb == "get" && read_in_races.contains(&resource.as_str()) {
            continue;
        }
        let used = requests.iter().any(|(r, code)| {
            // A server-side apply that made the object (201) is authorized as a create too.
            let applied_new = verb == "create" && r.verb == "patch" && *code == 201;
            r.group == group
                && r.resource == resource
                && (r.verb == verb || applied_new)
                // The watched namespaces' Roles are one: a verb used in either counts.
                && (scope == "*"
                    || r.namespace == scope
                    || (watched.contains(&scope) && watched.contains(&r.namespace)))
                && (names.is_empty() || names.contains(&r.name))
        });
        if !used {
            unused.push(format!("{scope} {group}/{resource} {verb} {names:?}"));
        }
    }
    let mut seen: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (r, _) in &requests {
        seen.entry(format!("{}/{}", r.group, r.resource))
            .or_default()
            .insert(r.verb.clone());
    }
    eprintln!("verbs the operator used: {seen:#?}");
    assert!(unused.is_empty(), "granted but never used: {unused:#?}");

    drop(lab);
    let _ = std::fs::remove_dir_all(dir);
}
