//! SwarmStack on the real API server and swarm (scripts/test.sh): the conversion against what
//! `docker stack deploy` itself makes, the stack's life (prune, hand edits, refusals, deletion by
//! the garbage collector), and the shop from the Swarm tutorials rolled forward and back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, process::Command, time::Duration};

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};
use swarm_operator_crds::{SwarmNetwork, SwarmService, SwarmStack};
use swarm_operator_e2e::{Answers, DockerStack, Poller, TestEnv, docker, test_image};

const WITHIN: Duration = Duration::from_secs(150);

fn stacks(env: &TestEnv) -> Api<SwarmStack> {
    Api::namespaced(env.client.clone(), &env.namespace)
}

/// Applies a SwarmStack named `name` with `compose` and `variables` (server-side apply).
async fn apply_stack(env: &TestEnv, name: &str, compose: &str, variables: &[(&str, &str)], extra: Value) {
    let vars: BTreeMap<&str, &str> = variables.iter().copied().collect();
    let mut spec = json!({"compose": compose, "variables": vars});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let obj = json!({
        "apiVersion": "swarmoperator.io/v1alpha1",
        "kind": "SwarmStack",
        "metadata": {"name": name, "namespace": env.namespace},
        "spec": spec,
    });
    stacks(env)
        .patch(name, &PatchParams::apply("e2e-test").force(), &Patch::Apply(obj))
        .await
        .unwrap();
}

/// Waits until the stack's condition `type_` is True with `reason` for its current generation;
/// returns the stack.
async fn wait_stack(env: &TestEnv, name: &str, type_: &str, reason: &str) -> SwarmStack {
    env.wait_for(&format!("SwarmStack {name} {type_}/{reason}"), WITHIN, || async {
        let s = stacks(env).get(name).await.map_err(|e| e.to_string())?;
        let status = s.status.clone().unwrap_or_default();
        let c = status.conditions.iter().find(|c| c.type_ == type_);
        match c {
            Some(c)
                if c.status == "True"
                    && c.reason == reason
                    && status.observed_generation == s.metadata.generation =>
            {
                Ok(s)
            }
            _ => Err(format!("{:?}", s.status)),
        }
    })
    .await
}

/// The swarm-operator binary the tests run.
fn operator_bin() -> String {
    std::env::var("SWARM_OPERATOR_BIN")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/swarm-operator").into())
}

fn inspect(kind: &str, name: &str) -> Value {
    let out = Command::new("docker")
        .args([kind, "inspect", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {kind} inspect {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.remove(0)
}

/// Swarm network ID -> name.
fn network_names() -> BTreeMap<String, String> {
    docker(&["network", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}}"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, name)| (id.to_string(), name.to_string()))
        .collect()
}

/// Drops nulls, empty strings, lists and objects, recursively: the Engine's omitempty.
fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for value in map.values_mut() {
                prune_empty(value);
            }
            map.retain(|_, value| !is_empty(value));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A service's Spec as the Engine holds it, with what legitimately differs between two
/// deployments of one file taken out: the stack's name, the operator's own labels, network IDs,
/// secret and config IDs and names (the operator versions them), and Engine defaults written
/// out by one side and left to the Engine by the other.
fn normalised(spec: &Value, stack: &str, networks: &BTreeMap<String, String>) -> Value {
    let mut s = spec.clone();
    let scoped = |name: &str| name.replacen(&format!("{stack}_"), "STACK_", 1);
    s["Name"] = scoped(s["Name"].as_str().unwrap()).into();
    let stack_labels = |labels: &mut Value| {
        if let Some(map) = labels.as_object_mut() {
            map.retain(|k, _| !k.starts_with("swarmoperator.io/"));
            if map.contains_key("com.docker.stack.namespace") {
                map.insert("com.docker.stack.namespace".into(), "STACK".into());
            }
        }
    };
    stack_labels(&mut s["Labels"]);
    let task = &mut s["TaskTemplate"];
    stack_labels(&mut task["ContainerSpec"]["Labels"]);
    if let Some(nets) = task["Networks"].as_array_mut() {
        for n in nets.iter_mut() {
            let id = n["Target"].as_str().unwrap_or_default().to_string();
            let name = networks.get(&id).cloned().unwrap_or(id);
            n["Target"] = scoped(&name).into();
        }
        nets.sort_by_key(|n| n["Target"].as_str().unwrap_or_default().to_string());
    }
    for (list, id, name) in [
        ("Secrets", "SecretID", "SecretName"),
        ("Configs", "ConfigID", "ConfigName"),
    ] {
        if let Some(items) = task["ContainerSpec"][list].as_array_mut() {
            for item in items.iter_mut() {
                let m = item.as_object_mut().unwrap();
                m.remove(id);
                m.remove(name);
            }
            items.sort_by_key(|i| i["File"]["Name"].as_str().unwrap_or_default().to_string());
        }
    }
    if let Some(mounts) = task["ContainerSpec"]["Mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["Type"] == "volume"
                && let Some(src) = m["Source"].as_str()
            {
                m["Source"] = scoped(src).into();
            }
            stack_labels(&mut m["VolumeOptions"]["Labels"]);
        }
    }
    // The CLI writes out `false`, the default.
    if task["ContainerSpec"]["Privileges"]["NoNewPrivileges"] == false {
        task["ContainerSpec"]["Privileges"]["NoNewPrivileges"] = Value::Null;
    }
    if task["ContainerSpec"]["Isolation"] == "default" {
        task["ContainerSpec"]["Isolation"] = Value::Null;
    }
    for key in ["UpdateConfig", "RollbackConfig"] {
        let u = &mut s[key];
        if u.is_object() {
            let defaults = [
                ("Monitor", json!(5_000_000_000_i64)),
                ("FailureAction", json!("pause")),
                ("Order", json!("stop-first")),
            ];
            for (field, default) in defaults {
                if is_empty(&u[field]) || u[field] == 0 {
                    u[field] = default;
                }
            }
            for field in ["Delay", "MaxFailureRatio"] {
                if u[field] == 0 {
                    u[field] = Value::Null;
                }
            }
        }
    }
    if is_empty(&s["EndpointSpec"]["Mode"]) {
        s["EndpointSpec"]["Mode"] = "vip".into();
    }
    prune_empty(&mut s);
    s
}

/// Every compose key the golden file uses, to say what the comparison covers.
const GOLDEN_KEYS: &[&str] = &[
    "image",
    "entrypoint",
    "command",
    "environment",
    "labels",
    "ports (short)",
    "ports (long)",
    "networks (aliases)",
    "volumes (named)",
    "volumes (bind)",
    "volumes (tmpfs)",
    "secrets (short)",
    "secrets (long)",
    "configs",
    "healthcheck",
    "user",
    "working_dir",
    "hostname",
    "stop_grace_period",
    "stop_signal",
    "init",
    "read_only",
    "tty",
    "cap_add",
    "cap_drop",
    "sysctls",
    "ulimits",
    "dns",
    "dns_search",
    "extra_hosts",
    "logging",
    "restart",
    "deploy.mode",
    "deploy.replicas",
    "deploy.endpoint_mode",
    "deploy.labels",
    "deploy.update_config",
    "deploy.rollback_config",
    "deploy.restart_policy",
    "deploy.resources",
    "deploy.placement",
    "networks (top: driver, attachable, labels, driver_opts, external)",
    "volumes (top: labels)",
];

const GOLDEN: &str = r#"
services:
  web:
    image: swarm-operator-test/whoami:${TAG:-1}
    entrypoint: ["/bin/sh", "-c"]
    command: "httpd -f -p 80 -h /www"
    environment:
      MODE: prod
      LEVEL: "3"
    labels: [com.example.container=web]
    ports:
      - "81"
      - target: 90
        published: 9090
        protocol: udp
        mode: host
    networks:
      front:
        aliases: [web.front]
      ext:
    volumes:
      - data:/data
      - /tmp:/host-tmp:ro
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 67108864}
    secrets:
      - db
      - source: api_key
        target: api.key
        uid: "1000"
        gid: "1000"
        mode: 0400
    configs:
      - source: site
        target: /etc/site.conf
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:80/"]
      interval: 5s
      timeout: 3s
      retries: 3
      start_period: 2s
    user: "0:0"
    working_dir: /www
    hostname: "web-{{.Task.Slot}}"
    stop_grace_period: 20s
    stop_signal: SIGINT
    init: true
    read_only: true
    tty: true
    cap_add: [net_admin]
    cap_drop: [MKNOD]
    sysctls: {net.core.somaxconn: "1024"}
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
    dns: [192.0.2.53]
    dns_search: [example.internal]
    extra_hosts: ["db.local:192.0.2.3"]
    logging: {driver: json-file, options: {max-size: 1m}}
    deploy:
      mode: replicated
      replicas: 0
      endpoint_mode: vip
      labels: {com.example.service: web}
      update_config: {parallelism: 2, delay: 1s, failure_action: rollback, monitor: 10s, max_failure_ratio: 0.5, order: start-first}
      rollback_config: {parallelism: 1, order: stop-first, failure_action: continue}
      restart_policy: {condition: on-failure, delay: 3s, max_attempts: 4, window: 30s}
      resources:
        limits: {cpus: "0.5", memory: 200M, pids: 100}
        reservations: {cpus: "0.25", memory: 100M}
      placement:
        constraints: [node.role == manager]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
  agent:
    image: swarm-operator-test/whoami:1
    restart: on-failure:3
    deploy:
      mode: global
      endpoint_mode: dnsrr
      placement: {constraints: [node.labels.none == x]}
networks:
  front:
    driver: overlay
    attachable: true
    labels: {com.example.net: front}
    driver_opts: {com.docker.network.driver.mtu: "1400"}
  ext:
    external: true
    name: ${EXT}
volumes:
  data:
    labels: {com.example.vol: data}
secrets:
  db:
    file: ./db.txt
    x-kubernetes: {secret: golden, key: db}
  api_key:
    file: ./db.txt
    x-kubernetes: {secret: golden, key: db}
configs:
  site:
    file: ./site.conf
    x-kubernetes: {configMap: site, key: site.conf}
"#;

/// The same file three ways: `docker stack deploy`, a SwarmStack, and `swarm-operator convert
/// --split` applied with kubectl. The Engine's ServiceSpecs (and the networks) must agree.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn the_conversion_matches_docker_stack_deploy() {
    let mut env = TestEnv::new("golden").await;
    println!(
        "compose keys compared: {} ({})",
        GOLDEN_KEYS.len(),
        GOLDEN_KEYS.join(", ")
    );
    let ext = format!("{}-ext", env.prefix);
    env.docker_cli(&["network", "create", "--driver", "overlay", "--attachable", &ext]);
    let dir = std::env::temp_dir().join(format!("{}-golden", env.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("db.txt"), "s3cret\n").unwrap();
    std::fs::write(dir.join("site.conf"), "listen 80\n").unwrap();
    std::fs::write(dir.join("docker-stack.yml"), GOLDEN).unwrap();
    env.kubectl(&[
        "create",
        "secret",
        "generic",
        "golden",
        "--from-literal=db=s3cret\n",
    ]);
    env.kubectl(&[
        "create",
        "configmap",
        "site",
        &format!("--from-file=site.conf={}", dir.join("site.conf").display()),
    ]);

    // The reference: the CLI on the same swarm.
    let cli = format!("{}-cli", env.prefix);
    let _cleanup = DockerStack(cli.clone());
    let out = Command::new("docker")
        .current_dir(&dir)
        .env("EXT", &ext)
        .args([
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            "docker-stack.yml",
            &cli,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    env.start_operator();
    let op = format!("{}-op", env.prefix);
    apply_stack(&env, &op, GOLDEN, &[("EXT", &ext)], json!({})).await;
    // The same compiler, from the command line.
    let conv = format!("{}-cv", env.prefix);
    let converted = Command::new(operator_bin())
        .current_dir(&dir)
        .args([
            "convert",
            "-f",
            "docker-stack.yml",
            "--name",
            &conv,
            "--split",
            "--set",
            &format!("EXT={ext}"),
        ])
        .output()
        .unwrap();
    assert!(
        converted.status.success(),
        "convert: {}",
        String::from_utf8_lossy(&converted.stderr)
    );
    env.kubectl_apply(&String::from_utf8_lossy(&converted.stdout), false)
        .unwrap();

    for service in ["web", "agent"] {
        let names = [&cli, &op, &conv].map(|stack| format!("{stack}_{service}"));
        env.wait_for(&format!("{names:?} in the swarm"), WITHIN, || async {
            let missing: Vec<&String> = names
                .iter()
                .filter(|n| {
                    !Command::new("docker")
                        .args(["service", "inspect", n])
                        .output()
                        .unwrap()
                        .status
                        .success()
                })
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{missing:?}"))
            }
        })
        .await;
        let networks = network_names();
        let [reference, stack, convert] = [&cli, &op, &conv].map(|stack| {
            normalised(
                &inspect("service", &format!("{stack}_{service}"))["Spec"],
                stack,
                &networks,
            )
        });
        assert_eq!(
            stack,
            reference,
            "{service}: SwarmStack vs docker stack deploy\nstack: {}\ncli:   {}",
            serde_json::to_string_pretty(&stack).unwrap(),
            serde_json::to_string_pretty(&reference).unwrap()
        );
        assert_eq!(convert, stack, "{service}: convert --split vs SwarmStack");
    }
    // The networks the stack made, as the CLI makes them.
    let net = |stack: &str| {
        let n = inspect("network", &format!("{stack}_front"));
        let mut labels = n["Labels"].clone();
        labels
            .as_object_mut()
            .unwrap()
            .retain(|k, _| !k.starts_with("swarmoperator.io/"));
        labels["com.docker.stack.namespace"] = "STACK".into();
        // The VXLAN ID is the swarm's pick for each network.
        let mut options = n["Options"].clone();
        options
            .as_object_mut()
            .unwrap()
            .remove("com.docker.network.driver.overlay.vxlanid_list");
        json!({"Driver": n["Driver"], "Attachable": n["Attachable"], "Internal": n["Internal"], "Labels": labels, "Options": options})
    };
    assert_eq!(net(&op), net(&cli), "the front network");
    // `docker stack` on the swarm sees the operator's stack as one of its own.
    let listed = docker(&["stack", "ls", "--format", "{{.Name}} {{.Services}}"]);
    assert!(
        listed.lines().any(|l| l == format!("{op} 2")),
        "docker stack ls: {listed}"
    );
    let services = docker(&["stack", "services", &op, "--format", "{{.Name}}"]);
    assert_eq!(services.lines().count(), 2, "{services}");

    drop(_cleanup);
    let _ = std::fs::remove_dir_all(&dir);
    stacks(&env).delete(&op, &Default::default()).await.unwrap();
    env.kubectl(&[
        "delete",
        "swarmservices,swarmnetworks,swarmsecrets,swarmconfigs",
        "-l",
        &format!("swarmoperator.io/stack={conv}"),
    ]);
    env.docker_rm_when_free("network", &ext, WITHIN).await;
}

/// Prune, hand edits put back, a refused key that changes nothing, ignored keys reported, and
/// the garbage collector removing everything with the stack.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn a_stack_is_pruned_kept_refused_and_deleted_as_one_unit() {
    let mut env = TestEnv::new("stacklife").await;
    env.start_operator();
    let name = format!("{}-app", env.prefix);
    let file = |extra_service: bool, bad_key: bool| {
        let mut f = format!(
            "services:\n  web:\n    image: {}\n    build: .\n    depends_on: [worker]\n    deploy:\n      replicas: ${{WEB_REPLICAS:?WEB_REPLICAS is required}}\n",
            test_image("1")
        );
        if bad_key {
            f.push_str("      replica_count: 3\n");
        }
        if extra_service {
            f.push_str(&format!("  worker:\n    image: {}\n", test_image("1")));
        }
        f
    };
    // Variables from a ConfigMap that does not exist yet: the stack waits for it.
    let values = format!("{name}-values");
    let from = json!({"valuesFrom": [{"configMapRef": {"name": values}}]});
    let with = |extra: Value| {
        let mut spec = from.clone();
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec
    };
    apply_stack(&env, &name, &file(true, false), &[], from.clone()).await;
    wait_stack(&env, &name, "Reconciling", "SourceMissing").await;
    env.kubectl(&["create", "configmap", &values, "--from-literal=WEB_REPLICAS=2"]);
    let s = wait_stack(&env, &name, "Ready", "Running").await;
    let status = s.status.unwrap();
    assert_eq!(status.ready_services.as_deref(), Some("2/2"));
    assert_eq!(status.ignored, ["services.web.build", "services.web.depends_on"]);
    let warned = env.events("IgnoredKeys").await;
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].1.contains("services.web.build"), "{warned:?}");
    let web = format!("{name}_web");
    let worker = format!("{name}_worker");
    assert_eq!(
        env.swarm_service_json(&web)["Spec"]["Mode"]["Replicated"]["Replicas"],
        2
    );
    let listed = docker(&["stack", "ls", "--format", "{{.Name}} {{.Services}}"]);
    assert!(
        listed.lines().any(|l| l == format!("{name} 2")),
        "docker stack ls: {listed}"
    );

    // A hand edit of a child is put back.
    let services: Api<SwarmService> = env.services();
    let child = format!("{name}-web");
    services
        .patch(
            &child,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    env.wait_for("the hand edit put back", WITHIN, || async {
        let svc = services.get(&child).await.map_err(|e| e.to_string())?;
        let swarm = env.swarm_service_json(&web)["Spec"]["Mode"]["Replicated"]["Replicas"].clone();
        if svc.spec.replicas == Some(2) && swarm == 2 {
            Ok(())
        } else {
            Err(format!("{:?} {swarm}", svc.spec.replicas))
        }
    })
    .await;

    // A child deleted by hand is made again, and its service with it (the stack wakes on the
    // deletion itself: it reads its children from the services' watch).
    let before = services
        .get(&format!("{name}-worker"))
        .await
        .unwrap()
        .metadata
        .uid;
    services
        .delete(&format!("{name}-worker"), &Default::default())
        .await
        .unwrap();
    env.wait_for("the deleted child made again", WITHIN, || async {
        let again = services
            .get(&format!("{name}-worker"))
            .await
            .map_err(|e| e.to_string())?;
        let ready = again.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        let listed = docker(&[
            "service",
            "ls",
            "--filter",
            &format!("name={worker}"),
            "--format",
            "{{.Name}}",
        ]);
        let on_swarm = listed.lines().any(|l| l == worker);
        if again.metadata.uid != before && ready && on_swarm {
            Ok(())
        } else {
            Err(format!(
                "uid {:?} ready {ready} on the swarm {on_swarm}",
                again.metadata.uid
            ))
        }
    })
    .await;

    // `kubectl get swstack` shows the services and how many are ready.
    // (The stack may show the reverted child Progressing for a moment: poll until it settles.)
    let want = [name.as_str(), name.as_str(), "2", "2/2", "Running"];
    env.wait_for("kubectl get swstack: 2 services, 2/2 Running", WITHIN, || async {
        let listed = String::from_utf8_lossy(&env.kubectl(&["get", "swstack", &name]).stdout).into_owned();
        let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            &header[..5],
            ["NAME", "STACK", "SERVICES", "READY", "STATUS"],
            "{listed}"
        );
        let row: Vec<&str> = listed.lines().nth(1).unwrap().split_whitespace().collect();
        if row[..5] == want { Ok(()) } else { Err(listed) }
    })
    .await;

    // `convert --diff`: nothing for the file as deployed; a change shows as a diff, exit 1.
    let path = std::env::temp_dir().join(format!("{}-stack.yml", env.namespace));
    std::fs::write(&path, file(true, false)).unwrap();
    let diff = |replicas: &str| {
        Command::new(operator_bin())
            .args(["convert", "--diff", "-n", &env.namespace, "--name", &name, "-f"])
            .arg(&path)
            .args(["--set", &format!("WEB_REPLICAS={replicas}")])
            .output()
            .unwrap()
    };
    let same = diff("2");
    let shown = String::from_utf8_lossy(&same.stdout).into_owned();
    assert_eq!(
        (same.status.code(), shown.as_str()),
        (Some(0), ""),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let more = diff("4");
    let shown = String::from_utf8_lossy(&more.stdout).into_owned();
    assert_eq!(more.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!("--- live/SwarmService/{name}-web")),
        "{shown}"
    );
    assert!(
        shown.contains("-  replicas: 2") && shown.contains("+  replicas: 4"),
        "{shown}"
    );
    let _ = std::fs::remove_file(&path);

    // A change of the ConfigMap redeploys; a required variable gone stalls the stack naming it.
    env.kubectl(&[
        "patch",
        "configmap",
        &values,
        "-p",
        r#"{"data":{"WEB_REPLICAS":"3"}}"#,
    ]);
    env.wait_for("web scaled to 3 from the ConfigMap", WITHIN, || async {
        let r = env.swarm_service_json(&web)["Spec"]["Mode"]["Replicated"]["Replicas"].clone();
        if r == 3 { Ok(()) } else { Err(r.to_string()) }
    })
    .await;
    env.kubectl(&[
        "patch",
        "configmap",
        &values,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/WEB_REPLICAS"}]"#,
    ]);
    // The ConfigMap is not the stack's generation: wait for the condition's message.
    env.wait_for("Stalled naming WEB_REPLICAS", WITHIN, || async {
        let s = stacks(&env).get(&name).await.unwrap().status.unwrap_or_default();
        match s.conditions.iter().find(|c| c.type_ == "Stalled") {
            Some(c) if c.status == "True" && c.message.contains("WEB_REPLICAS is required") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        env.swarm_service_json(&web)["Spec"]["Mode"]["Replicated"]["Replicas"],
        3,
        "nothing changed"
    );
    let warned: Vec<_> = env
        .events("InvalidSpec")
        .await
        .into_iter()
        .filter(|(t, note)| t == "Warning" && note.contains("WEB_REPLICAS is required"))
        .collect();
    assert_eq!(
        warned.len(),
        1,
        "one Warning for a refusal a ConfigMap brought: {warned:?}"
    );
    env.kubectl(&[
        "patch",
        "configmap",
        &values,
        "-p",
        r#"{"data":{"WEB_REPLICAS":"2"}}"#,
    ]);
    wait_stack(&env, &name, "Ready", "Running").await;

    // Paused: a change of the file waits, and is applied once unpaused.
    apply_stack(
        &env,
        &name,
        &file(false, false),
        &[],
        with(json!({"paused": true})),
    )
    .await;
    wait_stack(&env, &name, "Stalled", "Paused").await;
    assert!(
        env.swarm_service(&worker).await.is_some(),
        "paused: worker not pruned yet"
    );
    apply_stack(&env, &name, &file(true, false), &[], from.clone()).await;
    wait_stack(&env, &name, "Ready", "Running").await;

    // An unknown key: refused naming it and its line, one Warning, nothing changed.
    apply_stack(&env, &name, &file(false, true), &[], from.clone()).await;
    let refused = wait_stack(&env, &name, "Stalled", "InvalidSpec").await;
    let message = &refused
        .status
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains("services.web.deploy.replica_count (line 8)"),
        "{message}"
    );
    let warnings: Vec<_> = env
        .events("InvalidSpec")
        .await
        .into_iter()
        .filter(|(t, note)| t == "Warning" && note.contains("replica_count"))
        .collect();
    assert_eq!(warnings.len(), 1, "one Warning: {warnings:?}");
    assert!(
        env.swarm_service(&worker).await.is_some(),
        "nothing half-applied: worker stays"
    );

    // Many unknown keys at once: the condition names every one; the Warning's note, which the
    // API server refuses beyond 1024 bytes, is cut to fit rather than lost.
    let many: String = (0..60).map(|i| format!("not_a_key_{i}: 1\n")).collect();
    apply_stack(
        &env,
        &name,
        &format!("{}{many}", file(false, false)),
        &[],
        from.clone(),
    )
    .await;
    let refused = env
        .wait_for("the stack refusing sixty keys", WITHIN, || async {
            let s = stacks(&env).get(&name).await.map_err(|e| e.to_string())?;
            let stalled = s.status.into_iter().flat_map(|st| st.conditions).find(|c| {
                c.type_ == "Stalled" && c.reason == "InvalidSpec" && c.message.contains("not_a_key_59")
            });
            stalled.map(|c| c.message).ok_or_else(|| "not yet".to_string())
        })
        .await;
    assert!(refused.len() > 1024, "{refused}");
    let note = env
        .wait_for("its Warning", WITHIN, || async {
            env.events("InvalidSpec")
                .await
                .into_iter()
                .find(|(t, note)| t == "Warning" && note.contains("not_a_key_0"))
                .map(|(_, note)| note)
                .ok_or_else(|| "none".to_string())
        })
        .await;
    assert!(
        note.len() <= 1024 && note.ends_with('…'),
        "{} bytes: {note}",
        note.len()
    );
    assert!(
        refused.starts_with(note.trim_end_matches('…')),
        "{note} / {refused}"
    );

    // A child the API server refuses (a memory limit under the Engine's 4 MiB, which the
    // SwarmService rules refuse): the stack names it, and nothing of the change is applied, not
    // even the new service written before it, nor the new network the services wait for: every
    // write goes through the server's dry run first, those of services held back included.
    let with_tiny = format!(
        "{}  aa-new:\n    image: {image}\n    networks: [extra]\n  zz-tiny:\n    image: {image}\n    deploy: {{resources: {{limits: {{memory: 1M}}}}}}\nnetworks:\n  extra: {{}}\n",
        file(true, false).replace("${WEB_REPLICAS:?WEB_REPLICAS is required}", "4"),
        image = test_image("1")
    );
    apply_stack(&env, &name, &with_tiny, &[], from.clone()).await;
    let refused = wait_stack(&env, &name, "Stalled", "InvalidSpec").await;
    let message = refused
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap()
        .message;
    assert!(
        message.contains(&format!("SwarmService {name}-zz-tiny")) && message.contains("4Mi"),
        "{message}"
    );
    assert!(
        services
            .get_opt(&format!("{name}-aa-new"))
            .await
            .unwrap()
            .is_none(),
        "half-applied: aa-new created"
    );
    let networks: Api<SwarmNetwork> = Api::namespaced(env.client.clone(), &env.namespace);
    assert!(
        networks
            .get_opt(&format!("{name}-extra"))
            .await
            .unwrap()
            .is_none(),
        "half-applied: the network of the refused change created"
    );
    assert_eq!(
        services.get(&child).await.unwrap().spec.replicas,
        Some(2),
        "half-applied: web changed"
    );

    // The worker leaves the file: pruned, in Kubernetes and in the swarm.
    apply_stack(&env, &name, &file(false, false), &[], from.clone()).await;
    wait_stack(&env, &name, "Ready", "Running").await;
    env.wait_for("worker pruned", WITHIN, || async {
        let gone_k8s = services
            .get_opt(&format!("{name}-worker"))
            .await
            .unwrap()
            .is_none();
        let gone_swarm = env.swarm_service(&worker).await.is_none();
        if gone_k8s && gone_swarm {
            Ok(())
        } else {
            Err(format!("k8s gone {gone_k8s}, swarm gone {gone_swarm}"))
        }
    })
    .await;

    // With prune: false, a service that leaves the file stays.
    apply_stack(&env, &name, &file(true, false), &[], from.clone()).await;
    wait_stack(&env, &name, "Ready", "Running").await;
    apply_stack(
        &env,
        &name,
        &file(false, false),
        &[],
        with(json!({"prune": false})),
    )
    .await;
    wait_stack(&env, &name, "Ready", "Running").await;
    assert!(
        services
            .get_opt(&format!("{name}-worker"))
            .await
            .unwrap()
            .is_some(),
        "kept"
    );
    assert!(env.swarm_service(&worker).await.is_some(), "kept in the swarm");

    // A SwarmService of that name that is not the stack's is never taken over.
    let theirs = format!("{name}-extra");
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {theirs}}}\nspec: {{image: {}, serviceName: {}-theirs}}\n",
        test_image("2"),
        env.prefix
    ))
    .await;
    let with_extra = format!("{}  extra:\n    image: {}\n", file(false, false), test_image("1"));
    apply_stack(&env, &name, &with_extra, &[], from.clone()).await;
    let conflict = wait_stack(&env, &name, "Stalled", "NameConflict").await;
    let message = conflict
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap()
        .message;
    assert!(message.contains(&format!("SwarmService {theirs}")), "{message}");
    let untouched = services.get(&theirs).await.unwrap();
    assert_eq!(untouched.spec.image, test_image("2"));
    assert!(
        untouched.metadata.owner_references.is_none(),
        "not owned by the stack"
    );
    apply_stack(&env, &name, &file(false, false), &[], from.clone()).await;
    wait_stack(&env, &name, "Ready", "Running").await;
    services.delete(&theirs, &Default::default()).await.unwrap();

    // Deleting the stack: the garbage collector deletes the children, their controllers the
    // Swarm objects (the stack has no finalizer of its own).
    stacks(&env).delete(&name, &Default::default()).await.unwrap();
    env.wait_for("everything of the stack gone", WITHIN, || async {
        let left = services.list(&Default::default()).await.unwrap().items.len();
        let swarm = docker(&[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.docker.stack.namespace={name}"),
        ]);
        let nets = docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.docker.stack.namespace={name}"),
        ]);
        if left == 0 && swarm.trim().is_empty() && nets.trim().is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{left} SwarmServices, services {swarm:?}, networks {nets:?}"
            ))
        }
    })
    .await;
}

/// A backend of the shop: its alias on the shared `backend` overlay, DNSRR (no IPVS here).
fn shop_backend(alias: &str) -> String {
    format!(
        r#"
services:
  api:
    image: {image}
    networks:
      backend:
        aliases: [{alias}]
    healthcheck: {{test: ["CMD", "wget", "-qO-", "http://127.0.0.1:80/"], interval: 2s, timeout: 2s, retries: 3}}
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config: {{parallelism: 1, order: start-first, failure_action: rollback}}
      resources: {{limits: {{memory: 200M}}, reservations: {{memory: 100M}}}}
networks:
  backend: {{external: true, name: "${{BACKEND}}"}}
"#,
        image = test_image("1")
    )
}

/// The front end: `${IMG_TAG}` and `${REPLICAS}` as the tutorials write them, a task port
/// published in host mode, and a cache service beside it.
fn shop_front(cache_release: &str, healthcheck: &str) -> String {
    format!(
        r#"
services:
  web:
    image: swarm-operator-test/whoami:${{IMG_TAG:-1}}
    ports: [{{target: 80, mode: host}}]
    networks: [frontend, backend]
    healthcheck: {{test: {healthcheck}, interval: 1s, timeout: 2s, retries: 2}}
    deploy:
      replicas: ${{REPLICAS:-2}}
      endpoint_mode: dnsrr
      update_config: {{parallelism: 1, order: start-first, failure_action: rollback, monitor: 4s}}
      rollback_config: {{parallelism: 0, order: start-first}}
      resources: {{limits: {{memory: 200M}}, reservations: {{memory: 100M}}}}
  cache:
    image: swarm-operator-test/whoami:1
    environment: {{RELEASE: "{cache_release}"}}
    networks: [frontend]
networks:
  frontend: {{attachable: true}}
  backend: {{external: true, name: "${{BACKEND}}"}}
"#
    )
}

const HEALTHY: &str = r#"["CMD", "wget", "-qO-", "http://127.0.0.1:80/"]"#;

/// The container of one running task of `service` on this machine.
fn a_container_of(service: &str) -> String {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ])
    .lines()
    .next()
    .unwrap_or_default()
    .to_string()
}

/// The image and environment the swarm holds for `service`.
fn image_and_env(service: &str) -> (Value, Value) {
    let spec = inspect("service", service)["Spec"]["TaskTemplate"]["ContainerSpec"].clone();
    (spec["Image"].clone(), spec["Env"].clone())
}

/// The shop from the Swarm tutorials: two backends on an external overlay with aliases, a front
/// end that reaches them, scaled with ${REPLICAS}, rolled with ${IMG_TAG} without a failed
/// request, rolled back by Swarm on a bad tag (the stack names the service), and a bad change of
/// the file reverted as Git would: every service converges back.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn the_shop_deploys_scales_rolls_and_reverts_as_stacks() {
    let mut env = TestEnv::new("shop").await;
    let backend = format!("{}-backend", env.prefix);
    env.docker_cli(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--attachable",
        &backend,
    ]);
    env.start_operator();
    let (product, coupon, front) = (
        format!("{}-product", env.prefix),
        format!("{}-coupon", env.prefix),
        format!("{}-front", env.prefix),
    );
    let vars = |extra: &[(&'static str, &'static str)]| {
        let mut v: Vec<(&str, &str)> = vec![("BACKEND", backend.as_str())];
        v.extend_from_slice(extra);
        v
    };
    apply_stack(&env, &product, &shop_backend("prod.api"), &vars(&[]), json!({})).await;
    apply_stack(&env, &coupon, &shop_backend("coupon.api"), &vars(&[]), json!({})).await;
    apply_stack(&env, &front, &shop_front("1", HEALTHY), &vars(&[]), json!({})).await;
    for stack in [&product, &coupon, &front] {
        let s = wait_stack(&env, stack, "Ready", "Running").await;
        let status = s.status.unwrap();
        assert!(status.services.iter().all(|l| l.ready), "{:?}", status.services);
    }

    // The front end reaches both backends by their aliases.
    let web = format!("{front}_web");
    let container = a_container_of(&web);
    for alias in ["prod.api", "coupon.api"] {
        // busybox's wget -T crashes under `docker exec`; `timeout` bounds it instead.
        let url = format!("http://{alias}/");
        let answer = docker(&["exec", &container, "timeout", "5", "wget", "-qO-", &url]);
        assert!(answer.contains("Version: 1"), "{alias}: {answer}");
    }
    // Its task port is published on the node.
    let tasks = env.running_tasks(&web).await;
    let port = swarm_operator_e2e::task_host_ports(&tasks[0])[0];
    let page = swarm_operator_e2e::task_http_get(port, "/").await.unwrap();
    assert!(page.contains("Version: 1"), "{page}");

    // REPLICAS=4 scales the front end.
    apply_stack(
        &env,
        &front,
        &shop_front("1", HEALTHY),
        &vars(&[("REPLICAS", "4")]),
        json!({}),
    )
    .await;
    env.wait_for("4 front tasks", WITHIN, || async {
        let s = stacks(&env).get(&front).await.unwrap().status.unwrap_or_default();
        let running = env.running_tasks(&web).await.len();
        let line = s
            .services
            .iter()
            .find(|l| l.name == "web")
            .cloned()
            .unwrap_or_default();
        if running == 4 && line.running == Some(4) && line.ready {
            Ok(())
        } else {
            Err(format!("{running} {line:?}"))
        }
    })
    .await;

    // IMG_TAG=2 rolls it; a client on the front network counts failed requests meanwhile.
    let poller = Poller::start(
        &format!("{}-poller", env.prefix),
        &format!("{front}_frontend"),
        "web",
    );
    poller.wait_answers(&env, 10, WITHIN).await;
    let rolled = vars(&[("REPLICAS", "4"), ("IMG_TAG", "2")]);
    apply_stack(&env, &front, &shop_front("1", HEALTHY), &rolled, json!({})).await;
    wait_stack(&env, &front, "Ready", "Running").await;
    poller.wait_only(&env, "2", WITHIN).await;
    let Answers { v1, v2, failed } = poller.stop();
    println!("requests during IMG_TAG=2: {v1} answered by v1, {v2} by v2, {failed} failed");
    assert!(
        v1 >= 10 && v2 >= 10,
        "the client polled across the update: {v1} v1, {v2} v2"
    );
    assert_eq!(failed, 0, "failed requests while the stack rolled");

    // A bad IMG_TAG (a release that fails its healthcheck): Swarm rolls the front end back; the
    // stack says which service.
    apply_stack(
        &env,
        &front,
        &shop_front("1", HEALTHY),
        &vars(&[("REPLICAS", "4"), ("IMG_TAG", "broken")]),
        json!({}),
    )
    .await;
    let s = wait_stack(&env, &front, "Stalled", "RolledBack").await;
    let stalled = s
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert!(stalled.message.contains(&web), "{}", stalled.message);
    env.wait_for("v2 running again", WITHIN, || async {
        let state = inspect("service", &web)["UpdateStatus"]["State"].clone();
        if state == "rollback_completed" {
            Ok(())
        } else {
            Err(state.to_string())
        }
    })
    .await;
    assert_eq!(image_and_env(&web).0, "swarm-operator-test/whoami:2");

    // Back to IMG_TAG=2, then a bad change of the file itself: the cache's release and a front
    // end whose healthcheck fails. Swarm rolls the front end back; the cache took the change.
    apply_stack(&env, &front, &shop_front("1", HEALTHY), &rolled, json!({})).await;
    wait_stack(&env, &front, "Ready", "Running").await;
    let before = [image_and_env(&web), image_and_env(&format!("{front}_cache"))];
    apply_stack(
        &env,
        &front,
        &shop_front("2", r#"["CMD-SHELL", "exit 1"]"#),
        &rolled,
        json!({}),
    )
    .await;
    wait_stack(&env, &front, "Stalled", "RolledBack").await;
    assert_ne!(
        image_and_env(&format!("{front}_cache")),
        before[1],
        "the cache took the bad change"
    );
    // The revert: the file as it was. Every service converges back and the stack is Ready.
    apply_stack(&env, &front, &shop_front("1", HEALTHY), &rolled, json!({})).await;
    wait_stack(&env, &front, "Ready", "Running").await;
    let after = [image_and_env(&web), image_and_env(&format!("{front}_cache"))];
    assert_eq!(after, before, "every service back as before the bad change");
    let healthcheck =
        inspect("service", &web)["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"].clone();
    assert_eq!(
        healthcheck,
        json!(["CMD", "wget", "-qO-", "http://127.0.0.1:80/"])
    );

    for stack in [&front, &coupon, &product] {
        stacks(&env)
            .delete(stack.as_str(), &Default::default())
            .await
            .unwrap();
    }
    env.docker_rm_when_free("network", &backend, WITHIN).await;
}
