//! SwarmService end to end, on the real kube-apiserver and the real swarm (scripts/test.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::{Api, api::ListParams};
use rand::Rng;
use swarm_operator_e2e::{OWNER_UID, TestEnv, condition, task_host_ports, task_http_get};

const READY_WITHIN: Duration = Duration::from_secs(120);

use swarm_operator_e2e::test_image as image;

async fn events_with_reason(env: &TestEnv, reason: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.namespace);
    let all = events.list(&ListParams::default()).await.unwrap().items;
    all.into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn apply_scale_roll_and_delete() {
    let mut env = TestEnv::new("lifecycle").await;
    env.start_operator();
    let name = format!("{}-web", env.prefix);
    let ingress_port: i32 = rand::rng().random_range(20000..29000);
    let manifest = |tag: &str| {
        format!(
            r#"
apiVersion: swarmoperator.io/v1alpha1
kind: SwarmService
metadata: {{name: {name}}}
spec:
  image: {image}
  replicas: 2
  env: [{{name: GREETING, value: hello}}, {{name: EMPTY}}]
  labels: {{team: web}}
  ports:
  - {{target: 80, mode: Host}}
  - {{target: 8080, published: {ingress_port}}}
"#,
            image = image(tag)
        )
    };
    let cr = env.apply(&manifest("1")).await;

    // The Swarm service holds exactly what the spec says, as the Engine reports it.
    let swarm = env
        .wait_for("the Swarm service", READY_WITHIN, || async {
            env.swarm_service(&name)
                .await
                .ok_or_else(|| "not created yet".to_string())
        })
        .await;
    let spec = swarm.spec.clone().unwrap();
    let container = spec.task_template.unwrap().container_spec.unwrap();
    assert_eq!(container.image.as_deref(), Some(image("1").as_str()));
    assert_eq!(container.env.unwrap(), ["GREETING=hello", "EMPTY="]);
    let labels = spec.labels.unwrap();
    assert_eq!(labels["team"], "web");
    assert_eq!(labels[OWNER_UID], cr.metadata.uid.clone().unwrap());
    assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(2));
    let ports = spec.endpoint_spec.unwrap().ports.unwrap();
    let modes: Vec<String> = ports
        .iter()
        .map(|p| format!("{:?}/{:?}/{:?}", p.target_port, p.published_port, p.publish_mode))
        .collect();
    assert!(
        modes.contains(&"Some(80)/None/Some(HOST)".to_string()),
        "{modes:?}"
    );
    assert!(
        modes.contains(&format!("Some(8080)/Some({ingress_port})/Some(INGRESS)")),
        "{modes:?}"
    );

    // Ready, for the current generation, with the counts and the ID the swarm has.
    let ready = env.wait_ready(&name, READY_WITHIN).await;
    let status = ready.status.clone().unwrap();
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert_eq!((status.replicas, status.desired_replicas), (Some(2), Some(2)));
    assert_eq!(status.service_id, swarm.id);

    // Each replica answers HTTP on its host-mode port.
    let tasks = env.running_tasks(&name).await;
    assert_eq!(tasks.len(), 2);
    for task in &tasks {
        let port = task_host_ports(task)[0];
        let body = task_http_get(port, "/").await.unwrap();
        assert!(
            body.contains("Hostname: ") && body.contains("Version: 1"),
            "{body}"
        );
    }

    // `kubectl scale` works like `docker service scale`.
    env.kubectl(&["scale", &format!("swarmservice/{name}"), "--replicas=5"]);
    env.wait_for("5 running tasks", READY_WITHIN, || async {
        let n = env.running_tasks(&name).await.len();
        if n == 5 {
            Ok(())
        } else {
            Err(format!("{n} running"))
        }
    })
    .await;
    let scaled = env.wait_ready(&name, READY_WITHIN).await;
    assert_eq!(scaled.status.unwrap().replicas, Some(5));

    // Image :1 -> :2 rolls every task; the replicas then answer as version 2.
    env.apply(&manifest("2").replace("replicas: 2", "replicas: 5"))
        .await;
    env.wait_ready(&name, READY_WITHIN).await;
    let tasks = env.running_tasks(&name).await;
    assert_eq!(tasks.len(), 5);
    for task in &tasks {
        let task_image = task
            .spec
            .as_ref()
            .and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.image.clone());
        assert_eq!(task_image, Some(image("2")));
        let body = task_http_get(task_host_ports(task)[0], "/").await.unwrap();
        assert!(body.contains("Version: 2"), "{body}");
    }
    assert_eq!(
        env.swarm_service(&name).await.unwrap().id,
        swarm.id,
        "updated in place, not recreated"
    );

    // Deleting the resource removes the Swarm service.
    env.kubectl(&["delete", &format!("swarmservice/{name}"), "--timeout=60s"]);
    assert!(env.swarm_service(&name).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn unmanaged_service_of_the_same_name_is_left_alone() {
    let mut env = TestEnv::new("conflict").await;
    let name = format!("{}-taken", env.prefix);
    env.create_unmanaged_service(&name, &image("1"), &[("owner", "someone-else")])
        .await;
    let before = env.swarm_service(&name).await.unwrap();

    env.start_operator();
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}, replicas: 3}}",
        image("2")
    ))
    .await;
    let stalled = env
        .wait_for("Stalled/NameConflict", READY_WITHIN, || async {
            let svc = env.services().get(&name).await.map_err(|e| e.to_string())?;
            match condition(&svc, "Stalled") {
                Some(c) if c.status == "True" && c.reason == "NameConflict" => Ok(svc.clone()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    let ready = condition(&stalled, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NameConflict")
    );
    assert!(
        condition(&stalled, "Stalled")
            .unwrap()
            .message
            .contains("already exists")
    );
    assert!(
        !events_with_reason(&env, "NameConflict").await.is_empty(),
        "a Warning event says why"
    );

    // Give the operator a few passes; the other service must not move.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = env.swarm_service(&name).await.unwrap();
    assert_eq!(
        after.version, before.version,
        "the unmanaged service was written to"
    );
    let labels = after.spec.unwrap().labels.unwrap();
    assert!(!labels.contains_key(OWNER_UID));

    // Deleting the resource does not delete what it never owned.
    env.kubectl(&["delete", &format!("swarmservice/{name}"), "--timeout=60s"]);
    assert!(env.swarm_service(&name).await.is_some());
    env.docker.delete_service(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn image_that_cannot_run_is_reported_and_blocks_nothing() {
    let mut env = TestEnv::new("badimage").await;
    env.start_operator();
    let bad = format!("{}-bad", env.prefix);
    let good = format!("{}-good", env.prefix);
    // A tag that exists nowhere, from the loopback registry scripts/test.sh runs, so the pull the
    // node attempts stays on this machine.
    let registry = std::env::var("REGISTRY").expect("REGISTRY is set by scripts/test.sh");
    let missing = format!("{registry}/swarm-operator-test/whoami:does-not-exist");
    for (name, image) in [(&bad, missing.clone()), (&good, image("1"))] {
        env.apply(&format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: \"{image}\"}}"
        ))
        .await;
    }
    env.wait_ready(&good, READY_WITHIN).await;
    let failing = env
        .wait_for("Stalled/TasksFailing", READY_WITHIN, || async {
            let svc = env.services().get(&bad).await.map_err(|e| e.to_string())?;
            match condition(&svc, "Stalled") {
                Some(c) if c.status == "True" && c.reason == "TasksFailing" => Ok(c.message.clone()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    // Engine 20.10 says "No such image", current ones say why the reference did not resolve.
    assert!(
        (failing.contains("No such image") || failing.contains("failed to resolve reference"))
            && failing.contains("does-not-exist"),
        "{failing}"
    );
    assert!(failing.starts_with("0/1 tasks running"), "{failing}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn operator_restarted_mid_flow_picks_up_without_duplicates() {
    let mut env = TestEnv::new("restart").await;
    let name = format!("{}-web", env.prefix);
    let manifest = |tag: &str| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}, replicas: 3}}",
            image(tag)
        )
    };
    env.apply(&manifest("1")).await;
    env.start_operator();
    // Killed as soon as the Swarm service exists: before the status says anything about it.
    let created = env
        .wait_for("the Swarm service", READY_WITHIN, || async {
            env.swarm_service(&name)
                .await
                .ok_or_else(|| "not yet".to_string())
        })
        .await;
    env.kill_operator();

    // A change made while no operator runs, then a restart.
    env.apply(&manifest("2")).await;
    env.start_operator();
    // Killed again in the middle of the rolling update.
    env.wait_for("the update to start", READY_WITHIN, || async {
        let s = env.swarm_service(&name).await.ok_or("gone")?;
        let img = s
            .spec
            .and_then(|s| s.task_template)
            .and_then(|t| t.container_spec)
            .and_then(|c| c.image);
        if img == Some(image("2")) {
            Ok(())
        } else {
            Err(format!("{img:?}"))
        }
    })
    .await;
    env.kill_operator();
    env.start_operator();

    let ready = env.wait_ready(&name, READY_WITHIN).await;
    let owned = env.owned_services().await;
    assert_eq!(owned.len(), 1, "exactly one Swarm service for the resource");
    assert_eq!(owned[0].id, created.id, "the same service, updated in place");
    assert_eq!(ready.status.unwrap().replicas, Some(3));
    let tasks = env.running_tasks(&name).await;
    assert!(tasks.iter().all(|t| {
        t.spec
            .as_ref()
            .and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            == Some(image("2"))
    }));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn every_field_group_round_trips_and_an_unchanged_spec_writes_nothing() {
    let mut env = TestEnv::new("fields").await;
    env.start_operator();
    let name = format!("{}-all", env.prefix);
    let manifest = include_str!("../fixtures/every-field.yaml")
        .replace("name: every-field}", &format!("name: {name}}}"))
        .replace("every-field-data", &format!("{name}-data"));
    env.apply(&manifest).await;
    let ready = env.wait_ready(&name, READY_WITHIN).await;

    // Each field group as the Engine reports it.
    let swarm = env.swarm_service(&name).await.unwrap();
    let inspected = env.swarm_service_json(&name);
    let spec = &inspected["Spec"];
    let c = &spec["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["Healthcheck"]["Interval"], 2_000_000_000i64);
    assert_eq!(c["Healthcheck"]["Timeout"], 1_500_000_000i64);
    assert_eq!(c["Healthcheck"]["Test"][0], "CMD");
    assert_eq!(c["Hostname"], "web-{{.Task.Slot}}");
    assert_eq!(
        (c["User"].as_str(), c["Dir"].as_str()),
        (Some("root"), Some("/www"))
    );
    assert_eq!(c["Groups"], serde_json::json!(["nogroup"]));
    assert_eq!(
        (c["Init"].as_bool(), c["ReadOnly"].as_bool(), c["TTY"].as_bool()),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["StopGracePeriod"], 3_000_000_000i64);
    assert_eq!(c["CapabilityAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
    assert_eq!(c["CapabilityDrop"], serde_json::json!(["CAP_MKNOD"]));
    assert_eq!(c["Sysctls"]["net.core.somaxconn"], "1024");
    assert_eq!(
        c["Ulimits"],
        serde_json::json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
    );
    assert_eq!(c["DNSConfig"]["Search"], serde_json::json!(["example.internal"]));
    assert_eq!(c["Hosts"], serde_json::json!(["10.1.2.3 db.internal db"]));
    assert_eq!(c["Labels"]["tier"], "front");
    let mounts = c["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 3);
    assert_eq!(mounts[0]["TmpfsOptions"]["SizeBytes"], 16_777_216);
    assert_eq!(mounts[1]["VolumeOptions"]["DriverConfig"]["Name"], "local");
    assert_eq!(
        (mounts[2]["Type"].as_str(), mounts[2]["ReadOnly"].as_bool()),
        (Some("bind"), Some(true))
    );
    let t = &spec["TaskTemplate"];
    assert_eq!(
        t["Resources"]["Limits"],
        serde_json::json!({"NanoCPUs": 500_000_000, "MemoryBytes": 67_108_864, "Pids": 100})
    );
    assert_eq!(t["Resources"]["Reservations"]["NanoCPUs"], 100_000_000);
    assert_eq!(t["RestartPolicy"]["Condition"], "on-failure");
    assert_eq!(t["RestartPolicy"]["Window"], 60_000_000_000i64);
    assert_eq!(
        t["Placement"]["Constraints"],
        serde_json::json!(["node.role == manager"])
    );
    assert_eq!(t["Placement"]["MaxReplicas"], 2);
    assert_eq!(t["LogDriver"]["Options"]["max-size"], "1m");
    assert_eq!(spec["UpdateConfig"]["Order"], "start-first");
    assert_eq!(spec["UpdateConfig"]["FailureAction"], "rollback");
    assert_eq!(spec["RollbackConfig"]["Monitor"], 90_000_000_000i64);
    assert_eq!(spec["EndpointSpec"]["Mode"], "dnsrr");
    // ...and in the running containers.
    let task = &env.running_tasks(&name).await[0];
    let container_id = task
        .status
        .as_ref()
        .unwrap()
        .container_status
        .as_ref()
        .unwrap()
        .container_id
        .clone()
        .unwrap();
    let inspect = env.docker.inspect_container(&container_id, None).await.unwrap();
    let host = inspect.host_config.unwrap();
    assert_eq!(host.init, Some(true));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.memory, Some(67_108_864));

    // Re-reconciled with nothing changed: the service's version index does not move.
    let version = swarm.version.clone();
    for i in 0..3 {
        env.kubectl(&[
            "annotate",
            "--overwrite",
            &format!("swarmservice/{name}"),
            &format!("e2e/poke={i}"),
        ]);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.swarm_service(&name).await.unwrap().version,
        version,
        "an unchanged spec was written"
    );
    let after = env.services().get(&name).await.unwrap();
    assert_eq!(
        after.status, ready.status,
        "status rewritten with nothing changed"
    );
}
