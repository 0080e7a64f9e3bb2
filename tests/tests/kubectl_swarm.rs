//! `kubectl swarm` as a user runs it (kubectl finds the plugin on PATH): the tasks of a service,
//! the history of its specs, and a rollback to the first that Swarm then runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use swarm_operator_e2e::{TestEnv, condition, test_image};

const WITHIN: Duration = Duration::from_secs(150);

/// `kubectl swarm ARGS -n <namespace>`: (success, stdout, stderr).
fn kubectl_swarm(env: &TestEnv, args: &[&str]) -> (bool, String, String) {
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["-n", env.namespace.as_str()])
        .collect();
    swarm_operator_e2e::kubectl_swarm(&args, None)
}

/// Waits until the resource's generation `generation` is written and Ready.
async fn wait_written(env: &TestEnv, name: &str, generation: i64) {
    env.wait_for(&format!("generation {generation} Ready"), WITHIN, || async {
        let svc = env.services().get(name).await.map_err(|e| e.to_string())?;
        let ready = condition(&svc, "Ready").is_some_and(|c| c.status == "True");
        let written = svc.status.as_ref().and_then(|s| s.written_generation);
        if ready && written == Some(generation) && svc.metadata.generation == Some(generation) {
            Ok(())
        } else {
            Err(format!("written {written:?}, ready {ready}"))
        }
    })
    .await;
}

/// The image column of each row of `kubectl swarm history`, by revision.
fn history_rows(env: &TestEnv, name: &str) -> Vec<(String, String, String)> {
    let (ok, out, err) = kubectl_swarm(env, &["history", name]);
    assert!(ok, "{err}");
    out.lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[0].to_string(), cells[1].to_string(), cells[2].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn ps_history_and_rollback_to_the_first_generation() {
    let mut env = TestEnv::new("plugin").await;
    env.start_operator();
    let name = format!("{}-web", env.prefix);
    let manifest = |tag: &str, replicas: u8| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
             spec: {{image: {}, replicas: {replicas}}}",
            test_image(tag)
        )
    };
    for (generation, (tag, replicas)) in [("1", 1), ("2", 1), ("2", 2)].into_iter().enumerate() {
        env.apply(&manifest(tag, replicas)).await;
        wait_written(&env, &name, generation as i64 + 1).await;
    }
    let (one, two) = (test_image("1"), test_image("2"));
    let row = |r: &str, image: &str, replicas: &str| (r.to_string(), image.to_string(), replicas.to_string());
    assert_eq!(
        history_rows(&env, &name),
        [row("1", &one, "1"), row("2", &two, "1"), row("3*", &two, "2")]
    );

    // ps: the two tasks of generation 3, running, as docker service ps names them.
    let (ok, out, err) = kubectl_swarm(&env, &["ps", &name]);
    assert!(ok, "{err}");
    assert!(out.starts_with("ID "), "{out}");
    for slot in [1, 2] {
        let task = format!("{name}.{slot} ");
        assert!(
            out.lines().any(|l| l.contains(&task) && l.contains("Running")),
            "no running task {task}in:\n{out}"
        );
    }
    let (_, json, _) = kubectl_swarm(&env, &["ps", &name, "-o", "json"]);
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert!(tasks.len() >= 2, "{json}");

    // Roll back to the first: a new generation with its spec, which Swarm runs.
    let (ok, out, err) = kubectl_swarm(&env, &["rollback", &name, "--to-revision", "1"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("swarmservice.swarmoperator.io/{name} rolled back to revision 1 (generation 4)")
    );
    wait_written(&env, &name, 4).await;
    let spec = env.swarm_service_json(&name)["Spec"].clone();
    assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Image"], one.as_str());
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 1);
    assert_eq!(env.running_tasks(&name).await.len(), 1);
    assert_eq!(
        history_rows(&env, &name),
        [
            row("1", &one, "1"),
            row("2", &two, "1"),
            row("3", &two, "2"),
            row("4*", &one, "1")
        ]
    );

    // Errors are one clear line.
    let (ok, _, err) = kubectl_swarm(&env, &["rollback", &name, "--to-revision", "9"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "error: SwarmService {name} has no revision 9: revisions 1 to 4 are kept (kubectl swarm history {name})"
        )
    );
    let (ok, _, err) = kubectl_swarm(&env, &["ps", "nothing-here"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "error: SwarmService nothing-here not found in namespace {}",
            env.namespace
        )
    );
}
