//! SwarmCluster on real engines: a three-manager swarm that loses its active manager in the middle
//! of a batch, mutual TLS with certificates made here, and two swarms served by one operator. The
//! swarms are dockerd processes in network namespaces on a bridge (scripts/swarm-lab.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, time::Duration};

use kube::Api;
use swarm_operator_crds::{SwarmCluster, SwarmClusterStatus};
use swarm_operator_e2e::{
    CLUSTER_LABEL, Lab, TestEnv, condition, docker_with_config, kubectl_bin, services_named, test_image,
};

/// A SwarmCluster labelled for this test's operator (it serves only those).
fn cluster_manifest(env: &TestEnv, name: &str, endpoints: &[String], tls_secret: Option<&str>) -> String {
    // The lab's plain tcp endpoints have to be allowed in so many words.
    let tls = tls_secret
        .map(|s| format!("\n  tls: {{namespace: {}, name: {s}}}", env.namespace))
        .unwrap_or_else(|| "\n  insecure: true".to_string());
    format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmCluster\nmetadata:\n  name: {name}\n  labels: {{{CLUSTER_LABEL}: {}}}\nspec:\n  endpoints: [{}]\n  resyncInterval: 5s{tls}\n",
        env.namespace,
        endpoints.join(", ")
    )
}

/// Waits until the SwarmCluster's status satisfies `check`; returns it.
async fn wait_cluster(
    env: &TestEnv,
    name: &str,
    what: &str,
    check: impl Fn(&SwarmClusterStatus) -> bool,
) -> SwarmClusterStatus {
    let api: Api<SwarmCluster> = Api::all(env.client.clone());
    env.wait_for(what, Duration::from_secs(120), || async {
        let cluster = api.get(name).await.map_err(|e| e.to_string())?;
        let status = cluster.status.unwrap_or_default();
        if check(&status) {
            Ok(status)
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await
}

fn cond<'a>(status: &'a SwarmClusterStatus, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

fn service_manifest(name: &str, cluster: Option<&str>, extra: &str) -> String {
    let cluster_ref = cluster
        .map(|c| format!(", clusterRef: {{name: {c}}}"))
        .unwrap_or_default();
    format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}, replicas: 1{cluster_ref}{extra}}}\n",
        test_image("1")
    )
}

/// Changes the env of service `name` on the lab's first manager out of band (`MODE=drifted`) and
/// waits up to `limit` for the operator to put back `MODE=managed`; returns how long that took.
async fn drift_and_wait_reverted(env: &TestEnv, lab: &Lab, name: &str, limit: Duration) -> Duration {
    drift_on_and_wait_reverted(env, lab, 1, name, limit).await
}

/// Which manager (1, 2 or 3) the operator's stream for `cluster` follows now, if not `left`.
fn followed_other_than(env: &TestEnv, lab: &Lab, cluster: &str, left: u8) -> Result<u8, String> {
    let log = env.operator_log();
    let last = log
        .lines()
        .rfind(|l| l.contains("following swarm events") && l.contains(cluster))
        .unwrap_or_default();
    (1..=3u8)
        .find(|&i| i != left && last.contains(&lab.endpoint(i)))
        .ok_or_else(|| last.to_string())
}

/// Manager `left` just `went` (died, demoted, silent): waits for the operator's stream to leave
/// it, then changes service `name` out of band where the stream went and checks the change is
/// reverted at once, from the stream. Returns the manager followed now.
async fn stream_leaves(env: &TestEnv, lab: &Lab, cluster: &str, name: &str, left: u8, went: &str) -> u8 {
    let since = std::time::Instant::now();
    let now = env
        .wait_for(
            &format!("the stream off manager {left}"),
            Duration::from_secs(60),
            || async { followed_other_than(env, lab, cluster, left) },
        )
        .await;
    let moved = since.elapsed();
    let reverted = drift_on_and_wait_reverted(env, lab, now, name, Duration::from_secs(30)).await;
    println!(
        "manager {left} {went}: the stream moved to manager {now} in {moved:?}; a change there was reverted in {reverted:?}"
    );
    assert!(reverted < Duration::from_secs(3), "reverted after {reverted:?}");
    now
}

/// The same, on manager `manager`.
async fn drift_on_and_wait_reverted(
    env: &TestEnv,
    lab: &Lab,
    manager: u8,
    name: &str,
    limit: Duration,
) -> Duration {
    env.docker_cli(&[
        "-H",
        &lab.endpoint(manager),
        "service",
        "update",
        "--detach",
        "--env-add",
        "MODE=drifted",
        name,
    ]);
    let changed = std::time::Instant::now();
    let lab_docker = lab.docker(manager).await;
    env.wait_for("the change to be reverted", limit, || async {
        let found = services_named(&lab_docker, name).await;
        let envs = found
            .first()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.task_template.as_ref())
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.env.clone());
        if envs == Some(vec!["MODE=managed".to_string()]) {
            Ok(())
        } else {
            Err(format!("{envs:?}"))
        }
    })
    .await;
    changed.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and root for network namespaces: scripts/test.sh runs it"]
async fn losing_the_active_manager_mid_batch_loses_nothing() {
    let lab = Lab::up(21, 3, None);
    let mut env = TestEnv::new("failover").await;
    env.start_operator();
    let cluster = format!("{}-ha", env.prefix);
    let endpoints = [lab.endpoint(1), lab.endpoint(2), lab.endpoint(3)];
    env.kubectl_apply(&cluster_manifest(&env, &cluster, &endpoints, None), false)
        .unwrap();
    let status = wait_cluster(&env, &cluster, "3/3 managers reachable", |s| {
        cond(s, "Ready").is_some_and(|c| c.0 == "True") && s.managers_reachable == Some(3)
    })
    .await;
    assert_eq!(status.active_endpoint.as_deref(), Some(endpoints[0].as_str()));
    assert_eq!(status.managers_total, Some(3));
    assert_eq!(cond(&status, "QuorumAtRisk").unwrap().0, "False");
    assert_eq!(status.nodes.len(), 3);
    assert!(status.leader.is_some());

    // A batch of services, applied in two halves with the active manager stopped in between.
    let names: Vec<String> = (0..12).map(|i| format!("{}-s{i}", env.prefix)).collect();
    let batch = |part: &[String]| {
        part.iter()
            .map(|n| service_manifest(n, Some(&cluster), ""))
            .collect::<Vec<_>>()
            .join("---\n")
    };
    env.kubectl_apply(&batch(&names[..6]), false).unwrap();
    let survivor = lab.docker(2).await;
    env.wait_for(
        "the first services in the lab swarm",
        Duration::from_secs(60),
        || async {
            for name in &names[..6] {
                if !services_named(&survivor, name).await.is_empty() {
                    return Ok(());
                }
            }
            Err("none yet".to_string())
        },
    )
    .await;
    lab.stop(1);
    env.kubectl_apply(&batch(&names[6..]), false).unwrap();

    for name in &names {
        let svc = env.wait_ready(name, Duration::from_secs(240)).await;
        let found = services_named(&survivor, name).await;
        assert_eq!(found.len(), 1, "{name} exists once in the swarm");
        assert_eq!(
            svc.status.unwrap().service_id,
            found[0].id,
            "status names the one Swarm service of {name}"
        );
    }
    // A create is not an event; a create whose answer was lost is, once: never twice for a name.
    let created = env.events("Created").await;
    for name in &names {
        let prefix = format!("Created Swarm service {name} (");
        let times = created
            .iter()
            .filter(|(_, note)| note.starts_with(&prefix))
            .count();
        assert!(times <= 1, "{name} announced once at most: {created:?}");
    }
    assert!(
        env.events("NameConflict").await.is_empty(),
        "a retried create never meets its own service as a stranger"
    );

    let status = wait_cluster(&env, &cluster, "the lost manager and QuorumAtRisk", |s| {
        cond(s, "QuorumAtRisk").is_some_and(|c| c.0 == "True") && s.managers_reachable == Some(2)
    })
    .await;
    let (_, reason, message) = cond(&status, "QuorumAtRisk").unwrap();
    assert_eq!(reason, "BareMajority");
    assert!(message.contains("swl21-m1"), "{message}");
    assert_ne!(status.active_endpoint.as_deref(), Some(endpoints[0].as_str()));
    assert_eq!(cond(&status, "Ready").unwrap().0, "True");
    let lost = status.nodes.iter().find(|n| n.hostname == "swl21-m1").unwrap();
    assert_eq!(lost.manager_status.as_deref(), Some("Unreachable"));

    lab.start(1);
    let status = wait_cluster(&env, &cluster, "QuorumAtRisk to clear", |s| {
        cond(s, "QuorumAtRisk").is_some_and(|c| c.0 == "False") && s.managers_reachable == Some(3)
    })
    .await;
    assert_eq!(cond(&status, "QuorumAtRisk").unwrap().1, "QuorumHealthy");
}

/// Runs the README's "Connecting a TLS-protected swarm" block as written, for a docker context
/// (in a config directory of its own) holding the client files of `certs` for `endpoint`, and
/// the test's namespace; returns what it printed.
fn readme_tls_recipe(env: &TestEnv, certs: &std::path::Path, endpoint: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let block = readme
        .split("<!-- tls-recipe -->\n```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n<!-- /tls-recipe -->").next())
        .expect("the README's tls-recipe block");
    let first = "CONTEXT=prod; NAMESPACE=swarm-operator";
    assert!(block.starts_with(first), "{block}");
    let script = block.replacen(first, &format!("CONTEXT=lab; NAMESPACE={}", env.namespace), 1);
    let config = certs.join("docker-config");
    let file = |f: &str| certs.join(f).display().to_string();
    docker_with_config(
        Some(&config),
        &[
            "context",
            "create",
            "lab",
            "--docker",
            &format!(
                "host={endpoint},ca={},cert={},key={}",
                file("ca.pem"),
                file("cert.pem"),
                file("key.pem")
            ),
        ],
    );
    // `kubectl` as the README says it, whatever the test's kubectl is called here.
    let bin = certs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let kubectl = which(&kubectl_bin());
    let _ = std::os::unix::fs::symlink(&kubectl, bin.join("kubectl"));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("DOCKER_CONFIG", &config)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the README's recipe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("secret/"))
        .collect()
}

/// The full path of program `name` (as is, when it has a slash).
fn which(name: &str) -> std::path::PathBuf {
    if name.contains('/') {
        return name.into();
    }
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not on PATH"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and root for network namespaces: scripts/test.sh runs it"]
async fn mutual_tls_connects_with_the_secret_and_refuses_wrong_certificates() {
    let dir = std::env::temp_dir().join(format!("swarm-lab-22-{}", std::process::id()));
    let (good, other) = (dir.join("good"), dir.join("other"));
    Lab::certs(22, &good);
    Lab::certs(22, &other);
    let lab = Lab::up(22, 1, Some(&good));
    let mut env = TestEnv::new("tls").await;
    env.start_operator();
    let secret = |name: &str, ca: &std::path::Path, client: &std::path::Path| {
        env.kubectl(&[
            "create",
            "secret",
            "generic",
            name,
            &format!("--from-file=ca.pem={}", ca.join("ca.pem").display()),
            &format!("--from-file=cert.pem={}", client.join("cert.pem").display()),
            &format!("--from-file=key.pem={}", client.join("key.pem").display()),
        ]);
    };
    // The README's recipe, as written there, from a docker context of the lab's manager.
    let endpoint = [format!("tcp://{}:2376", Lab::ip(22, 1))];
    let printed = readme_tls_recipe(&env, &good, &endpoint[0]);
    assert_eq!(
        printed.trim(),
        endpoint[0],
        "the recipe prints the SwarmCluster's endpoint"
    );
    // A client certificate from a CA the manager does not trust.
    secret("stranger-tls", &good, &other);
    let (trusted, refused) = (format!("{}-tls", env.prefix), format!("{}-stranger", env.prefix));
    env.kubectl_apply(
        &cluster_manifest(&env, &trusted, &endpoint, Some("swarm-tls")),
        false,
    )
    .unwrap();
    env.kubectl_apply(
        &cluster_manifest(&env, &refused, &endpoint, Some("stranger-tls")),
        false,
    )
    .unwrap();

    let status = wait_cluster(&env, &trusted, "Ready over mutual TLS", |s| {
        cond(s, "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;
    let lab_docker = lab.docker(1).await;
    let info = lab_docker.info().await.unwrap();
    let swarm_id = info.swarm.and_then(|s| s.cluster).and_then(|c| c.id);
    assert_eq!(status.swarm_id, swarm_id, "status shows the lab swarm's ID");
    assert_eq!(status.active_endpoint.as_deref(), Some(endpoint[0].as_str()));

    let web = format!("{}-web", env.prefix);
    env.kubectl_apply(&service_manifest(&web, Some(&trusted), ""), false)
        .unwrap();
    env.wait_ready(&web, Duration::from_secs(120)).await;
    assert_eq!(services_named(&lab_docker, &web).await.len(), 1);
    assert!(env.swarm_service(&web).await.is_none(), "not on the local swarm");

    let status = wait_cluster(&env, &refused, "a refusal in Ready", |s| {
        cond(s, "Ready").is_some_and(|c| c.0 == "False" && !c.2.is_empty())
    })
    .await;
    let (_, reason, message) = cond(&status, "Ready").unwrap();
    assert_eq!(reason, "ClusterUnavailable");
    assert!(
        message.contains(&endpoint[0]) && message.contains("BadCertificate"),
        "the message names the endpoint and the TLS refusal: {message}"
    );
    let blocked = format!("{}-blocked", env.prefix);
    env.kubectl_apply(&service_manifest(&blocked, Some(&refused), ""), false)
        .unwrap();
    let message = env
        .wait_condition(
            &blocked,
            "Reconciling",
            "ClusterUnavailable",
            Duration::from_secs(60),
        )
        .await;
    assert!(message.contains("BadCertificate"), "{message}");

    // The key never leaves the request: not in status, events or the operator's log.
    let key = std::fs::read_to_string(good.join("key.pem")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    let everything = format!(
        "{:?}{:?}{}",
        status,
        env.events("ClusterUnavailable").await,
        env.operator_log()
    );
    assert!(!everything.contains(key_line), "key material leaked");
    drop(lab);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and root for network namespaces: scripts/test.sh runs it"]
async fn two_swarms_one_operator_and_a_cluster_that_comes_back() {
    let lab = Lab::up(23, 1, None);
    let mut env = TestEnv::new("twoswarms").await;
    env.start_operator();
    let (main, other) = (format!("{}-main", env.prefix), format!("{}-lab", env.prefix));
    env.kubectl_apply(
        &cluster_manifest(&env, &main, &["unix:///var/run/docker.sock".into()], None),
        false,
    )
    .unwrap();
    env.kubectl_apply(&cluster_manifest(&env, &other, &[lab.endpoint(1)], None), false)
        .unwrap();
    let lab_docker = lab.docker(1).await;

    let on_main = format!("{}-a", env.prefix);
    let on_lab = format!("{}-b", env.prefix);
    let unset = format!("{}-c", env.prefix);
    env.kubectl_apply(&service_manifest(&on_main, Some(&main), ""), false)
        .unwrap();
    env.kubectl_apply(&service_manifest(&on_lab, Some(&other), ""), false)
        .unwrap();
    env.kubectl_apply(&service_manifest(&unset, None, ""), false)
        .unwrap();
    for name in [&on_main, &on_lab, &unset] {
        env.wait_ready(name, Duration::from_secs(120)).await;
    }
    assert!(env.swarm_service(&on_main).await.is_some());
    assert!(services_named(&lab_docker, &on_main).await.is_empty());
    assert_eq!(services_named(&lab_docker, &on_lab).await.len(), 1);
    assert!(env.swarm_service(&on_lab).await.is_none());
    // No clusterRef and no SwarmCluster `default`: the engine of the operator's flags.
    assert!(env.swarm_service(&unset).await.is_some());
    assert!(services_named(&lab_docker, &unset).await.is_empty());

    // A network of one swarm cannot be attached to a service of the other.
    env.kubectl_apply(
        &format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: {}-net}}\nspec: {{clusterRef: {{name: {main}}}}}\n",
            env.prefix
        ),
        false,
    )
    .unwrap();
    let crossed = format!("{}-crossed", env.prefix);
    env.kubectl_apply(
        &service_manifest(
            &crossed,
            Some(&other),
            &format!(", networks: [{{name: {}-net}}]", env.prefix),
        ),
        false,
    )
    .unwrap();
    let message = env
        .wait_condition(&crossed, "Stalled", "InvalidSpec", Duration::from_secs(60))
        .await;
    assert!(
        message.contains("spec.networks") && message.contains(&format!("lives on SwarmCluster {main}")),
        "{message}"
    );

    // The lab's only manager stops: its resources say so, and catch up by themselves.
    lab.stop(1);
    let late = format!("{}-late", env.prefix);
    env.kubectl_apply(&service_manifest(&late, Some(&other), ""), false)
        .unwrap();
    let message = env
        .wait_condition(
            &late,
            "Reconciling",
            "ClusterUnavailable",
            Duration::from_secs(60),
        )
        .await;
    assert!(message.contains(&lab.endpoint(1)), "{message}");
    let status = wait_cluster(&env, &other, "Ready False", |s| {
        cond(s, "Ready").is_some_and(|c| c.0 == "False")
    })
    .await;
    assert_eq!(cond(&status, "Ready").unwrap().1, "ClusterUnavailable");
    lab.start(1);
    let svc = env.wait_ready(&late, Duration::from_secs(120)).await;
    assert!(condition(&svc, "Ready").is_some());
    assert_eq!(services_named(&lab_docker, &late).await.len(), 1);

    let missing = format!("{}-nowhere", env.prefix);
    env.kubectl_apply(&service_manifest(&missing, Some("no-such-cluster"), ""), false)
        .unwrap();
    let message = env
        .wait_condition(
            &missing,
            "Reconciling",
            "ClusterUnavailable",
            Duration::from_secs(60),
        )
        .await;
    assert!(message.contains("no SwarmCluster of that name"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and root for network namespaces: scripts/test.sh runs it"]
async fn a_broken_event_stream_reconnects_and_catches_what_changed_meanwhile() {
    let lab = Lab::up(24, 1, None);
    let mut env = TestEnv::new("reconnect").await;
    // No resync to fall back on: the reconnect must bring the change in.
    env.start_operator_with(&["--resync-seconds", "3600"]);
    let cluster = format!("{}-lab", env.prefix);
    env.kubectl_apply(&cluster_manifest(&env, &cluster, &[lab.endpoint(1)], None), false)
        .unwrap();
    let name = format!("{}-web", env.prefix);
    env.kubectl_apply(
        &service_manifest(&name, Some(&cluster), ", env: [{name: MODE, value: managed}]"),
        false,
    )
    .unwrap();
    env.wait_ready(&name, Duration::from_secs(120)).await;

    let following = |log: &str| {
        log.lines()
            .filter(|l| l.contains("following swarm events") && l.contains(&cluster))
            .count()
    };
    env.wait_for("the lab's event stream", Duration::from_secs(30), || async {
        if following(&env.operator_log()) >= 1 {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;

    // The manager restarts: the operator's event stream breaks. A change is made the moment it is
    // back, while the operator may still be reconnecting.
    lab.stop(1);
    lab.start(1);
    drift_and_wait_reverted(&env, &lab, &name, Duration::from_secs(90)).await;
    let log = env.operator_log();
    // A dockerd that stops ends the stream, or is seen leaving the swarm first; one killed breaks it.
    let lost = [
        "swarm event stream broke",
        "swarm event stream ended",
        "leaving the followed manager",
    ];
    assert!(
        following(&log) >= 2 && lost.iter().any(|l| log.contains(l)),
        "the lab's stream broke and was reopened"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and root for network namespaces: scripts/test.sh runs it"]
async fn the_first_change_after_a_quiet_spell_wakes_its_resource() {
    // A swarm of its own and no default engine: no other test's events reach this operator, so
    // nothing but the change itself can wake the resource (the resync is an hour away).
    let lab = Lab::up(25, 1, None);
    let mut env = TestEnv::new("quiet").await;
    env.start_operator_with(&[
        "--resync-seconds",
        "3600",
        "--docker-host",
        "unix:///run/swl/none.sock",
    ]);
    let cluster = format!("{}-lab", env.prefix);
    env.kubectl_apply(&cluster_manifest(&env, &cluster, &[lab.endpoint(1)], None), false)
        .unwrap();
    wait_cluster(&env, &cluster, "Ready", |s| {
        cond(s, "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;
    // Created after the cluster's stream opened; the event of its own creation is the
    // operator's echo and wakes nothing.
    let name = format!("{}-web", env.prefix);
    env.kubectl_apply(
        &format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}, replicas: 0, clusterRef: {{name: {cluster}}}, env: [{{name: MODE, value: managed}}]}}\n",
            test_image("1")
        ),
        false,
    )
    .unwrap();
    env.wait_ready(&name, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let took = drift_and_wait_reverted(&env, &lab, &name, Duration::from_secs(30)).await;
    println!("reverted {took:?} after the change");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and root for network namespaces: scripts/test.sh runs it"]
async fn failover_never_moves_to_another_swarm() {
    // Two separate swarms; the cluster lists a manager of each, as a typo or a reused address would.
    let (ours, theirs) = (Lab::up(27, 1, None), Lab::up(28, 1, None));
    let mut env = TestEnv::new("oneswarm").await;
    env.start_operator();
    let cluster = format!("{}-c", env.prefix);
    env.kubectl_apply(
        &cluster_manifest(&env, &cluster, &[ours.endpoint(1), theirs.endpoint(1)], None),
        false,
    )
    .unwrap();
    let status = wait_cluster(&env, &cluster, "Ready on the first swarm", |s| {
        cond(s, "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(status.active_endpoint.as_deref(), Some(ours.endpoint(1).as_str()));
    let name = format!("{}-web", env.prefix);
    env.kubectl_apply(&service_manifest(&name, Some(&cluster), ""), false)
        .unwrap();
    env.wait_ready(&name, Duration::from_secs(60)).await;

    // Our only manager goes: the other swarm answers, but is never used.
    ours.stop(1);
    let status = wait_cluster(&env, &cluster, "unavailable, naming the other swarm", |s| {
        cond(s, "Ready").is_some_and(|c| c.0 == "False" && c.2.contains("another swarm"))
    })
    .await;
    assert_ne!(
        status.active_endpoint.as_deref(),
        Some(theirs.endpoint(1).as_str())
    );
    env.wait_condition(
        &name,
        "Reconciling",
        "ClusterUnavailable",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        services_named(&theirs.docker(1).await, &name).await.is_empty(),
        "the service was made in the other swarm"
    );
    ours.start(1);
    env.wait_ready(&name, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server: scripts/test.sh runs it"]
async fn a_resource_whose_cluster_is_gone_for_good_is_released_by_annotation() {
    let mut env = TestEnv::new("release").await;
    env.start_operator();
    let name = format!("{}-web", env.prefix);
    env.kubectl_apply(&service_manifest(&name, Some("gone-for-good"), ""), false)
        .unwrap();
    env.wait_condition(
        &name,
        "Reconciling",
        "ClusterUnavailable",
        Duration::from_secs(30),
    )
    .await;
    env.kubectl(&["delete", "swarmservice", &name, "--wait=false"]);
    // Its cluster might come back: the deletion waits, finalizer kept.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = env.services().get(&name).await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(
        waiting.metadata.finalizers.unwrap_or_default(),
        ["swarmoperator.io/cleanup"]
    );
    // The admin says it is gone for good.
    env.kubectl(&["annotate", "swarmservice", &name, "swarmoperator.io/release=true"]);
    env.wait_for("the resource gone", Duration::from_secs(30), || async {
        match env.services().get_opt(&name).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    assert_eq!(env.events("Released").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn a_cluster_serves_only_the_namespaces_its_selector_admits() {
    let mut env = TestEnv::new("nsselect").await;
    env.start_operator();
    let cluster = format!("{}-c", env.prefix);
    env.kubectl_apply(
        &format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmCluster\nmetadata:\n  name: {cluster}\n  labels: {{{CLUSTER_LABEL}: {}}}\n\
             spec:\n  endpoints: [unix:///var/run/docker.sock]\n  namespaceSelector: {{matchLabels: {{team: {}}}}}\n",
            env.namespace, env.prefix
        ),
        false,
    )
    .unwrap();
    let name = format!("{}-web", env.prefix);
    env.kubectl_apply(&service_manifest(&name, Some(&cluster), ""), false)
        .unwrap();
    let message = env
        .wait_condition(&name, "Stalled", "NotPermitted", Duration::from_secs(60))
        .await;
    assert!(message.contains("spec.namespaceSelector"), "{message}");
    assert!(env.swarm_service(&name).await.is_none(), "created anyway");

    // The admin admits the namespace; the resource's next pass proceeds.
    let ns = env.namespace.clone();
    env.kubectl(&["label", "namespace", &ns, &format!("team={}", env.prefix)]);
    env.kubectl(&["annotate", "swarmservice", &name, "touched=after-labelling"]);
    env.wait_ready(&name, Duration::from_secs(60)).await;
    assert!(env.swarm_service(&name).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn resources_of_default_never_fall_back_to_the_flags_engine() {
    // SwarmCluster `default` is one per API server: this test has its own.
    let bed = swarm_operator_e2e::PrivateApiServer::up("default-cluster");
    let mut env = TestEnv::on("dflt", Some(bed.kubeconfig())).await;
    let lab = Lab::up(29, 1, None);
    // The operator's --docker-host is this machine's engine, another swarm than the lab's.
    env.start_operator();
    env.kubectl_apply(
        &cluster_manifest(&env, "default", &[lab.endpoint(1)], None),
        false,
    )
    .unwrap();
    let name = format!("{}-web", env.prefix);
    env.kubectl_apply(&service_manifest(&name, None, ""), false)
        .unwrap();
    let ready = env.wait_ready(&name, Duration::from_secs(120)).await;
    let lab_swarm = ready.status.unwrap().swarm.expect("the status names the swarm");
    let on_lab = lab.docker(1).await;
    assert_eq!(services_named(&on_lab, &name).await.len(), 1);
    let nowhere_else = |env: &TestEnv| {
        let name = name.clone();
        let docker = env.docker.clone();
        async move { services_named(&docker, &name).await.is_empty() }
    };
    assert!(nowhere_else(&env).await);

    // Selected away (the label this operator serves is taken off): a change is not sent to the
    // flags' engine; the resource says why.
    let label = format!("{CLUSTER_LABEL}-");
    env.kubectl(&["label", "swarmcluster", "default", &label]);
    env.kubectl(&["scale", "swarmservice", &name, "--replicas", "2"]);
    let message = env
        .wait_condition(
            &name,
            "Reconciling",
            "ClusterUnavailable",
            Duration::from_secs(60),
        )
        .await;
    assert!(message.contains(&format!("on swarm {lab_swarm}")), "{message}");
    assert!(nowhere_else(&env).await, "created on the --docker-host engine");

    // Selected again: back to work on the lab.
    let label = format!("{CLUSTER_LABEL}={}", env.namespace);
    env.kubectl(&["label", "swarmcluster", "default", &label]);
    env.kubectl(&["annotate", "swarmservice", &name, "e2e/poke=1"]);
    env.wait_ready(&name, Duration::from_secs(60)).await;

    // Deleted: the same, and deleting the resource waits with its finalizer kept.
    env.kubectl(&["delete", "swarmcluster", "default"]);
    env.kubectl(&["annotate", "swarmservice", &name, "e2e/poke=2", "--overwrite"]);
    env.wait_condition(
        &name,
        "Reconciling",
        "ClusterUnavailable",
        Duration::from_secs(60),
    )
    .await;
    env.kubectl(&["delete", "swarmservice", &name, "--wait=false"]);
    let failed = || async {
        let m = swarm_operator_e2e::http_get(env.metrics_port, "/metrics")
            .await
            .unwrap();
        swarm_operator_e2e::sample(&m, "swarm_operator_reconciles_total", &[r#"outcome="error""#])
    };
    let before = failed().await;
    env.wait_for(
        "two cleanup attempts refused",
        Duration::from_secs(60),
        || async {
            let now = failed().await;
            if now >= before + 2.0 {
                Ok(())
            } else {
                Err(format!("{now}"))
            }
        },
    )
    .await;
    let waiting = env.services().get(&name).await.unwrap();
    assert_eq!(
        waiting.metadata.finalizers.unwrap_or_default(),
        ["swarmoperator.io/cleanup"]
    );
    assert!(nowhere_else(&env).await);
    assert_eq!(services_named(&on_lab, &name).await.len(), 1, "left where it is");

    // The cluster back: the deletion completes, on the lab.
    env.kubectl_apply(
        &cluster_manifest(&env, "default", &[lab.endpoint(1)], None),
        false,
    )
    .unwrap();
    env.wait_for("the resource gone", Duration::from_secs(60), || async {
        match env.services().get_opt(&name).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    assert!(services_named(&on_lab, &name).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and root for network namespaces: scripts/test.sh runs it"]
async fn the_event_stream_follows_the_active_manager_when_it_dies_or_is_demoted() {
    let lab = Lab::up(30, 3, None);
    let mut env = TestEnv::new("evfailover").await;
    // No resync to fall back on: only the event stream can bring a change in.
    env.start_operator_with(&["--resync-seconds", "3600"]);
    let cluster = format!("{}-ha", env.prefix);
    let endpoints = [lab.endpoint(1), lab.endpoint(2), lab.endpoint(3)];
    env.kubectl_apply(&cluster_manifest(&env, &cluster, &endpoints, None), false)
        .unwrap();
    let name = format!("{}-web", env.prefix);
    env.kubectl_apply(
        &service_manifest(&name, Some(&cluster), ", env: [{name: MODE, value: managed}]"),
        false,
    )
    .unwrap();
    env.wait_ready(&name, Duration::from_secs(120)).await;
    let first = env
        .wait_for("the stream on a manager", Duration::from_secs(30), || async {
            followed_other_than(&env, &lab, &cluster, 0)
        })
        .await;
    assert_eq!(first, 1, "the first endpoint is preferred");

    // The active manager dies: the stream moves on, and a change made where it went is reverted
    // from the stream (the resync is an hour away).
    lab.stop(1);
    let now = stream_leaves(&env, &lab, &cluster, &name, 1, "died").await;

    // Manager 1 back, the followed one demoted: its stream goes quiet rather than ending; the
    // operator notices and follows another.
    lab.start(1);
    let host = format!("swl30-m{now}");
    env.docker_cli(&["-H", &endpoints[0], "node", "demote", &host]);
    let after = stream_leaves(&env, &lab, &cluster, &name, now, "demoted").await;
    env.docker_cli(&["-H", &endpoints[0], "node", "promote", &host]);
    let now = after;

    // The followed manager goes silent without closing anything (its API port drops every
    // packet, as a host that vanished would): the half-open stream is noticed and left.
    let netns = format!("--net=/var/run/netns/swl30-m{now}");
    let firewall = |action: &str| {
        let rule = ["INPUT", "-p", "tcp", "--dport", "2375", "-j", "DROP"];
        let status = std::process::Command::new("nsenter")
            .args([netns.as_str(), "iptables", action])
            .args(rule)
            .status()
            .unwrap();
        assert!(status.success(), "iptables {action}");
    };
    firewall("-I");
    stream_leaves(&env, &lab, &cluster, &name, now, "silent").await;
    firewall("-D");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn join_tokens_are_kept_in_a_secret_and_rotated_on_request() {
    const WITHIN: Duration = Duration::from_secs(120);
    let lab = Lab::up(34, 1, None);
    let mut env = TestEnv::new("jointokens").await;
    // Every target at trace level: a token must not show even there.
    env.rust_log = "trace".into();
    env.start_operator();
    let cluster = format!("{}-lab", env.prefix);
    let manifest = |rotate: &str| {
        cluster_manifest(&env, &cluster, &[lab.endpoint(1)], None)
            + &format!(
                "  joinTokens: {{secretRef: {{namespace: {}, name: join}}{rotate}}}\n",
                env.namespace
            )
    };
    let manager = lab.docker(1).await;
    let swarm_tokens = || async {
        let t = manager.inspect_swarm().await.unwrap().join_tokens.unwrap();
        (t.worker.unwrap(), t.manager.unwrap())
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(env.client.clone(), &env.namespace);
    // The Secret as the API server holds it: (worker, manager, managers).
    let held = || async {
        let secret = secrets.get_opt("join").await.map_err(|e| e.to_string())?;
        let data = secret.and_then(|s| s.data).ok_or("no Secret yet")?;
        let text = |k: &str| String::from_utf8(data.get(k).map(|b| b.0.clone()).unwrap_or_default()).unwrap();
        Ok::<_, String>((text("worker"), text("manager"), text("managers")))
    };

    env.kubectl_apply(&manifest(""), false).unwrap();
    let (worker, manager_token) = swarm_tokens().await;
    let first = env
        .wait_for("the Secret to hold the swarm's tokens", WITHIN, || async {
            let now = held().await?;
            if (now.0.as_str(), now.1.as_str()) == (worker.as_str(), manager_token.as_str()) {
                Ok(now)
            } else {
                Err("other tokens".into())
            }
        })
        .await;
    assert_eq!(first.2, format!("{}:2377", Lab::ip(34, 1)), "the manager to join");
    assert!(worker.starts_with("SWMTKN-1-"), "a real token");

    // A new rotate value rotates both, once; the Secret follows.
    env.kubectl_apply(&manifest(", rotate: '2026-12-06'"), false)
        .unwrap();
    let rotated = wait_cluster(&env, &cluster, "the rotation carried out", |s| {
        s.join_tokens_rotated.as_deref() == Some("2026-12-06")
    })
    .await;
    assert!(rotated.join_tokens_rotated.is_some());
    let (worker2, manager2) = swarm_tokens().await;
    assert!(
        worker2 != worker && manager2 != manager_token,
        "the swarm's tokens were not rotated"
    );
    env.wait_for("the Secret to hold the rotated tokens", WITHIN, || async {
        let now = held().await?;
        if (now.0.as_str(), now.1.as_str()) == (worker2.as_str(), manager2.as_str()) {
            Ok(())
        } else {
            Err("the old tokens".into())
        }
    })
    .await;
    // Once: a later pass (resync 5s) does not rotate again.
    let version = manager.inspect_swarm().await.unwrap().version.unwrap().index;
    wait_cluster(&env, &cluster, "two more passes", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
    .await;
    assert_eq!(swarm_tokens().await, (worker2.clone(), manager2.clone()));
    assert_eq!(
        manager.inspect_swarm().await.unwrap().version.unwrap().index,
        version
    );

    // A Secret of that name that is not the cluster's is left untouched, and said.
    env.kubectl(&[
        "create",
        "secret",
        "generic",
        "theirs",
        "--from-literal=worker=mine",
    ]);
    env.kubectl_apply(
        &manifest(", rotate: '2026-12-06'").replace("name: join}", "name: theirs}"),
        false,
    )
    .unwrap();
    env.wait_for("a JoinTokensFailed event", WITHIN, || async {
        let events = String::from_utf8_lossy(
            &env.kubectl(&["get", "events", "-n", "default", "-o", "json"])
                .stdout,
        )
        .into_owned();
        if events.contains("JoinTokensFailed")
            && events.contains("theirs exists and does not hold this cluster's tokens")
        {
            Ok(())
        } else {
            Err("none yet".to_string())
        }
    })
    .await;
    let theirs = secrets.get("theirs").await.unwrap().data.unwrap();
    assert_eq!(theirs["worker"].0, b"mine");

    let leaks = env
        .places_showing(&[&worker, &manager_token, &worker2, &manager2])
        .await;
    assert!(leaks.is_empty(), "tokens shown: {leaks:?}");
    Api::<SwarmCluster>::all(env.client.clone())
        .delete(&cluster, &Default::default())
        .await
        .unwrap();
}
