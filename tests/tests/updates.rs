//! Rolling updates, rollbacks, drift, adoption and orphaning, observed from Kubernetes, on the real
//! API server and swarm (scripts/test.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use swarm_operator_e2e::{Answers, OWNER_UID, Poller, TestEnv};

const WITHIN: Duration = Duration::from_secs(150);

use swarm_operator_e2e::test_image as image;

fn image_of(env: &TestEnv, name: &str) -> String {
    env.swarm_service_json(name)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn failing_update_is_rolled_back_reported_and_not_repushed() {
    let mut env = TestEnv::new("rollback").await;
    env.start_operator();
    let name = format!("{}-web", env.prefix);
    let manifest = |tag: &str, health: &str| {
        format!(
            r#"
apiVersion: swarmoperator.io/v1alpha1
kind: SwarmService
metadata: {{name: {name}}}
spec:
  image: {image}
  replicas: 2
  healthcheck: {{test: {health}, interval: 1s, timeout: 1s, retries: 1}}
  updateConfig: {{parallelism: 1, failureAction: Rollback, monitor: 4s, order: StopFirst}}
  rollbackConfig: {{parallelism: 2, monitor: 1s}}
"#,
            image = image(tag)
        )
    };
    let healthy = r#"["CMD", "wget", "-qO-", "http://127.0.0.1:80/"]"#;
    env.apply(&manifest("1", healthy)).await;
    env.wait_ready(&name, WITHIN).await;

    // Generation 2: image :2 whose healthcheck fails. Swarm rolls back by itself.
    env.apply(&manifest("2", r#"["CMD-SHELL", "exit 1"]"#)).await;
    let message = env.wait_condition(&name, "Stalled", "RolledBack", WITHIN).await;
    assert!(message.contains("Swarm rolled back generation 2"), "{message}");
    let svc = env.services().get(&name).await.unwrap();
    let status = svc.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert!(status.update_status.unwrap().state.starts_with("rollback"));
    assert!(
        env.events("RolledBack").await.iter().any(|(t, _)| t == "Warning"),
        "a Warning event"
    );
    assert_eq!(image_of(&env, &name), image("1"), "the previous spec runs");

    // No loop: once Swarm has finished rolling back (its own progress moves the version index),
    // the operator does not push the failing generation again.
    env.wait_for("rollback_completed", WITHIN, || async {
        let state = env.swarm_service_json(&name)["UpdateStatus"]["State"].clone();
        if state == "rollback_completed" {
            Ok(())
        } else {
            Err(state.to_string())
        }
    })
    .await;
    let version = env.swarm_service_json(&name)["Version"]["Index"].clone();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        env.swarm_service_json(&name)["Version"]["Index"],
        version,
        "the rolled-back spec was pushed again"
    );

    // Generation 3, fixed: proceeds normally.
    env.apply(&manifest("2", healthy)).await;
    let ready = env.wait_ready(&name, WITHIN).await;
    assert_eq!(ready.metadata.generation, Some(3));
    assert_eq!(image_of(&env, &name), image("2"));
    assert_eq!(ready.status.unwrap().update_status.unwrap().state, "completed");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn a_rollback_by_hand_is_reported_as_one_held_and_left_by_a_new_generation() {
    let mut env = TestEnv::new("handrollback").await;
    env.start_operator();
    let name = format!("{}-web", env.prefix);
    // failureAction Rollback, as a production service has it: who rolled back is not read off it.
    let manifest = |tag: &str, replicas: u8| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
             spec: {{image: {}, replicas: {replicas}, updateConfig: {{failureAction: Rollback, monitor: 1s}}, \
             rollbackConfig: {{monitor: 1s}}}}",
            image(tag)
        )
    };
    env.apply(&manifest("1", 1)).await;
    env.wait_ready(&name, WITHIN).await;
    env.apply(&manifest("2", 1)).await;
    env.wait_for("generation 2 to run", WITHIN, || async {
        let svc = env.services().get(&name).await.map_err(|e| e.to_string())?;
        let ready = swarm_operator_e2e::condition(&svc, "Ready").is_some_and(|c| c.status == "True");
        if ready && svc.status.and_then(|s| s.written_generation) == Some(2) {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;

    // Someone at a manager rolls it back by hand.
    env.docker_cli(&["service", "update", "--detach", "--rollback", &name]);
    let message = env
        .wait_condition(&name, "Stalled", "ManualRollback", WITHIN)
        .await;
    assert!(
        message.starts_with("generation 2 was rolled back by hand on the swarm"),
        "{message}"
    );
    let warning = env
        .wait_for("a Warning ManualRollback event", WITHIN, || async {
            let found = env.events("ManualRollback").await;
            found
                .into_iter()
                .find(|(t, _)| t == "Warning")
                .ok_or_else(|| "none yet".to_string())
        })
        .await;
    assert_eq!(warning.1, message);
    assert!(
        env.events("RolledBack").await.is_empty(),
        "reported as Swarm's own rollback"
    );

    // Once Swarm says only "rollback completed", the status still says who asked; the previous
    // spec runs and is not pushed over.
    env.wait_for(
        "the rollback to complete, still told as manual",
        WITHIN,
        || async {
            let svc = env.services().get(&name).await.map_err(|e| e.to_string())?;
            let status = svc.status.clone().unwrap_or_default();
            let state = status.update_status.map(|u| u.state).unwrap_or_default();
            let reason = swarm_operator_e2e::condition(&svc, "Stalled").map(|c| c.reason.clone());
            match (state.as_str(), reason.as_deref(), status.rollback) {
                ("rollback_completed", Some("ManualRollback"), Some(r)) if r.manual => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(image_of(&env, &name), image("1"), "the previous spec runs");
    assert!(
        env.events("DriftReverted").await.is_empty(),
        "a rollback by hand reverted as drift"
    );

    // A new generation is applied as usual, and the rollback leaves the status.
    env.apply(&manifest("2", 2)).await;
    env.wait_for("generation 3 to run", WITHIN, || async {
        let svc = env.services().get(&name).await.map_err(|e| e.to_string())?;
        let status = svc.status.clone().unwrap_or_default();
        let ready = swarm_operator_e2e::condition(&svc, "Ready").is_some_and(|c| c.status == "True");
        if ready && status.written_generation == Some(3) && status.rollback.is_none() {
            Ok(())
        } else {
            Err(format!("{:?}", status.rollback))
        }
    })
    .await;
    assert_eq!(image_of(&env, &name), image("2"));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn after_a_rollback_a_generation_that_waits_for_a_dependency_is_pushed_when_it_appears() {
    let mut env = TestEnv::new("rollbackdep").await;
    env.start_operator();
    let name = format!("{}-web", env.prefix);
    let manifest = |tag: &str, health: &str, extra: &str| {
        format!(
            r#"
apiVersion: swarmoperator.io/v1alpha1
kind: SwarmService
metadata: {{name: {name}}}
spec:
  image: {image}
  replicas: 1
  healthcheck: {{test: {health}, interval: 1s, timeout: 1s, retries: 1}}
  updateConfig: {{failureAction: Rollback, monitor: 3s}}
  {extra}
"#,
            image = image(tag)
        )
    };
    let healthy = r#"["CMD", "wget", "-qO-", "http://127.0.0.1:80/"]"#;
    env.apply(&manifest("1", healthy, "")).await;
    env.wait_ready(&name, WITHIN).await;
    env.apply(&manifest("2", r#"["CMD-SHELL", "exit 1"]"#, "")).await;
    env.wait_condition(&name, "Stalled", "RolledBack", WITHIN).await;

    // Generation 3 mounts a SwarmSecret that does not exist yet: observed, not written.
    env.apply(&manifest("2", healthy, "secrets: [{name: late}]"))
        .await;
    let waiting = env
        .wait_condition(&name, "Reconciling", "WaitingForDependency", WITHIN)
        .await;
    assert!(waiting.contains("SwarmSecret late"), "{waiting}");
    assert_eq!(
        env.services()
            .get(&name)
            .await
            .unwrap()
            .status
            .unwrap()
            .observed_generation,
        Some(3)
    );
    assert_eq!(
        image_of(&env, &name),
        image("1"),
        "nothing written while it waits"
    );

    // The dependency appears: generation 3 is written to the swarm, not held as rolled back.
    env.kubectl(&[
        "create",
        "secret",
        "generic",
        "late-source",
        "--from-literal=password=s3cr3t",
    ]);
    env.kubectl_apply(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmSecret\nmetadata: {name: late}\nspec: {secretRef: {name: late-source, key: password}}\n",
        false,
    )
    .unwrap();
    let ready = env.wait_ready(&name, WITHIN).await;
    assert_eq!(ready.metadata.generation, Some(3));
    assert_eq!(image_of(&env, &name), image("2"));
    let secrets = env.swarm_service_json(&name)["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"].clone();
    assert_eq!(secrets[0]["File"]["Name"], "late", "{secrets}");
    assert!(
        env.events("DriftReverted").await.is_empty(),
        "the user's own change was reported as drift"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn out_of_band_changes_are_reverted_and_reported() {
    let mut env = TestEnv::new("drift").await;
    env.start_operator_with(&["--resync-seconds", "3"]);
    let name = format!("{}-web", env.prefix);
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
         spec: {{image: {}, replicas: 1, env: [{{name: KEEP, value: me}}]}}",
        image("1")
    ))
    .await;
    env.wait_ready(&name, WITHIN).await;

    // The same hand edit twice: reverted each time, and reported as one Event counted twice (a
    // series, as client-go records a repeated event), not two.
    let mut first_note = None;
    for times in 1..=2 {
        env.docker_cli(&[
            "service",
            "update",
            "--detach",
            "--image",
            &image("2"),
            "--replicas",
            "2",
            "--env-rm",
            "KEEP",
            &name,
        ]);
        env.wait_for("the drift to be reverted", WITHIN, || async {
            let spec = env.swarm_service_json(&name)["Spec"].clone();
            let c = &spec["TaskTemplate"]["ContainerSpec"];
            let reverted = c["Image"] == image("1").as_str()
                && c["Env"] == serde_json::json!(["KEEP=me"])
                && spec["Mode"]["Replicated"]["Replicas"] == 1;
            if reverted { Ok(()) } else { Err(spec.to_string()) }
        })
        .await;
        // The event follows the write that reverted the spec: wait for it rather than race it.
        let note = env
            .wait_for(
                &format!("a Warning DriftReverted event counted {times} time(s)"),
                WITHIN,
                || async {
                    let warnings: Vec<_> = env
                        .event_series("DriftReverted")
                        .await
                        .into_iter()
                        .filter(|(t, _, _)| t == "Warning")
                        .collect();
                    match warnings.as_slice() {
                        [(_, note, count)] if *count == times => Ok(note.clone()),
                        other => Err(format!("{other:?}")),
                    }
                },
            )
            .await;
        for field in [
            "TaskTemplate.ContainerSpec.Image",
            "TaskTemplate.ContainerSpec.Env",
            "Mode.Replicated.Replicas",
        ] {
            assert!(note.contains(field), "{note} does not name {field}");
        }
        assert_eq!(first_note.get_or_insert(note.clone()), &note);
        env.wait_ready(&name, WITHIN).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn the_adopt_annotation_alone_takes_nothing_over() {
    let mut env = TestEnv::new("noadopt").await;
    let name = format!("{}-admins", env.prefix);
    let created = env
        .create_unmanaged_service(&name, &image("1"), &[("team", "admin")])
        .await;
    env.start_operator();
    let manifest = format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata:\n  name: {name}\n  annotations: {{swarmoperator.io/adopt: \"true\"}}\n\
         spec: {{image: {}, replicas: 0}}",
        image("2")
    );
    env.apply(&manifest).await;
    let message = env.wait_condition(&name, "Stalled", "NotPermitted", WITHIN).await;
    assert!(message.contains("allowAdoption"), "{message}");
    let spec = env.swarm_service_json(&name)["Spec"].clone();
    assert!(spec["Labels"].get(OWNER_UID).is_none(), "taken over: {spec}");
    assert_eq!(
        spec["TaskTemplate"]["ContainerSpec"]["Image"],
        image("1").as_str()
    );
    // Deleting the resource leaves the admin's service where it was.
    env.kubectl(&["delete", &format!("swarmservice/{name}"), "--timeout=60s"]);
    assert_eq!(env.swarm_service_json(&name)["ID"], created.as_str());
    env.docker.delete_service(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn adopt_then_orphan() {
    let mut env = TestEnv::new("adopt").await;
    let name = format!("{}-legacy", env.prefix);
    let created = env
        .create_unmanaged_service(&name, &image("1"), &[("team", "legacy")])
        .await;
    // The operator's own engine allows adoption only when its admin says so.
    env.start_operator_with(&["--allow-adoption"]);
    let manifest = format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata:\n  name: {name}\n  annotations: {{swarmoperator.io/adopt: \"true\"}}\n\
         spec: {{image: {}, replicas: 2, deletionPolicy: Orphan, labels: {{team: platform}}}}",
        image("2")
    );
    let cr = env.apply(&manifest).await;
    let ready = env.wait_ready(&name, WITHIN).await;
    assert_eq!(
        ready.status.unwrap().service_id,
        Some(created),
        "the existing service, not a new one"
    );
    let spec = env.swarm_service_json(&name)["Spec"].clone();
    assert_eq!(
        spec["Labels"][OWNER_UID],
        cr.metadata.uid.unwrap().as_str(),
        "owner labels added"
    );
    assert_eq!(spec["Labels"]["team"], "platform", "the resource's spec wins");
    assert_eq!(
        spec["TaskTemplate"]["ContainerSpec"]["Image"],
        image("2").as_str()
    );
    assert!(env.events("Adopted").await.iter().any(|(t, _)| t == "Normal"));

    // deletionPolicy Orphan: the service keeps running, without the owner labels.
    env.kubectl(&["delete", &format!("swarmservice/{name}"), "--timeout=60s"]);
    let after = env.swarm_service_json(&name);
    assert!(
        after["Spec"]["Labels"].get(OWNER_UID).is_none(),
        "owner labels removed"
    );
    assert_eq!(after["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(env.running_tasks(&name).await.len(), 2);
    env.docker.delete_service(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn status_shows_update_tasks_and_endpoint() {
    let mut env = TestEnv::new("status").await;
    env.start_operator();
    let name = format!("{}-web", env.prefix);
    let manifest = |tag: &str| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
             spec: {{image: {}, replicas: 2, ports: [{{target: 80, mode: Host}}]}}",
            image(tag)
        )
    };
    env.apply(&manifest("1")).await;
    env.wait_ready(&name, WITHIN).await;
    env.apply(&manifest("2")).await;
    let ready = env.wait_ready(&name, WITHIN).await;
    let status = ready.status.unwrap();
    let update = status.update_status.expect("updateStatus");
    assert_eq!(update.state, "completed");
    assert!(update.started_at.is_some() && update.completed_at.is_some());
    let running: Vec<_> = status.tasks.iter().filter(|t| t.state == "running").collect();
    assert_eq!(running.len(), 2, "{:?}", status.tasks);
    let hostname = env
        .docker_cli(&["info", "--format", "{{.Name}}"])
        .trim()
        .to_string();
    assert!(
        running
            .iter()
            .all(|t| t.node.as_deref() == Some(hostname.as_str()) && t.slot.is_some())
    );
    let ports = status.endpoint.expect("endpoint").ports;
    assert_eq!(
        (
            ports[0].target,
            ports[0].mode.as_str(),
            ports[0].protocol.as_str()
        ),
        (80, "host", "tcp")
    );
}

/// Counts a client's failed requests over a StartFirst rolling update. The client polls the service
/// by its name on an overlay network with DNSRR (the kernel here has no IPVS, so no VIP).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn start_first_update_drops_no_request() {
    let mut env = TestEnv::new("startfirst").await;
    let net = format!("{}-net", env.prefix);
    env.docker_cli(&["network", "create", "--driver", "overlay", "--attachable", &net]);
    env.start_operator();
    let name = format!("{}-web", env.prefix);
    let manifest = |tag: &str| {
        format!(
            r#"
apiVersion: swarmoperator.io/v1alpha1
kind: SwarmService
metadata: {{name: {name}}}
spec:
  image: {image}
  replicas: 2
  endpointMode: DNSRR
  networks: [{{name: {net}, external: true}}]
  updateConfig: {{parallelism: 1, order: StartFirst, monitor: 2s, failureAction: Pause}}
"#,
            image = image(tag)
        )
    };
    env.apply(&manifest("1")).await;
    env.wait_ready(&name, WITHIN).await;

    let poller = Poller::start(&format!("{}-poller", env.prefix), &net, &name);
    poller.wait_answers(&env, 10, WITHIN).await;
    env.apply(&manifest("2")).await;
    env.wait_ready(&name, WITHIN).await;
    poller.wait_only(&env, "2", WITHIN).await;
    let Answers { v1, v2, failed } = poller.stop();
    println!("requests during the update: {v1} answered by v1, {v2} by v2, {failed} failed");
    assert!(
        v1 >= 10 && v2 >= 10,
        "the client polled across the update: {v1} v1, {v2} v2"
    );
    assert_eq!(failed, 0, "failed requests during a StartFirst update");

    env.kubectl(&["delete", &format!("swarmservice/{name}"), "--timeout=60s"]);
    env.docker_rm_when_free("network", &net, WITHIN).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn what_only_the_swarm_can_judge_is_reported_in_its_words() {
    let mut env = TestEnv::new("unschedulable").await;
    env.start_operator();
    let name = format!("{}-nowhere", env.prefix);
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
         spec: {{image: {}, placement: {{constraints: [\"node.labels.zone == mars\"]}}}}",
        image("1")
    ))
    .await;
    let message = env
        .wait_for("Reconciling with the scheduler's reason", WITHIN, || async {
            let svc = env.services().get(&name).await.map_err(|e| e.to_string())?;
            match swarm_operator_e2e::condition(&svc, "Reconciling") {
                Some(c) if c.status == "True" && c.message.contains("no suitable node") => {
                    Ok(c.message.clone())
                }
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    assert!(message.starts_with("0/1 tasks running"), "{message}");

    // The Engine refuses a spec outright: Stalled with its own message.
    let refused = format!("{}-refused", env.prefix);
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {refused}}}\n\
         spec: {{image: {}, resources: {{reservations: {{memory: 1Mi}}}}}}",
        image("1")
    ))
    .await;
    let stalled = env
        .wait_condition(&refused, "Stalled", "InvalidSpec", WITHIN)
        .await;
    assert!(stalled.contains("Must be at least 4MiB"), "{stalled}");
    assert!(
        env.swarm_service(&refused).await.is_none(),
        "nothing half-applied"
    );
}
