//! Health for every mode on the real swarm: Global counts the nodes that can take its tasks and
//! is never Ready with nothing running; jobs end Complete or Failed as Kubernetes Jobs do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use swarm_operator_e2e::{Lab, TestEnv, condition, services_named, test_image};

fn manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn global_is_ready_only_when_every_eligible_node_runs_a_task() {
    let mut env = TestEnv::new("global").await;
    env.start_operator();
    let healthy = format!("{}-ok", env.prefix);
    let missing = format!("{}-missing", env.prefix);
    env.kubectl_apply(
        &manifest(&healthy, &format!("{{image: {}, mode: Global}}", test_image("1"))),
        false,
    )
    .unwrap();
    env.kubectl_apply(
        &manifest(
            &missing,
            "{image: 'swarm-operator-test/no-such-image:1', mode: Global}",
        ),
        false,
    )
    .unwrap();

    let svc = env.wait_ready(&healthy, Duration::from_secs(60)).await;
    let status = svc.status.unwrap();
    assert_eq!(
        (status.replicas, status.desired_replicas),
        (Some(1), Some(1)),
        "one node here"
    );

    // A missing image: not Ready, with the Engine's error, never "0/0 tasks running".
    let message = env
        .wait_condition(&missing, "Stalled", "TasksFailing", Duration::from_secs(60))
        .await;
    assert!(message.contains("0/1"), "{message}");
    let svc = env.services().get(&missing).await.unwrap();
    assert_eq!(condition(&svc, "Ready").unwrap().status, "False");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and root for network namespaces: scripts/test.sh runs it"]
async fn global_wants_the_nodes_its_constraints_select_on_a_swarm_with_a_worker() {
    let lab = Lab::up(26, 1, None);
    lab.add_workers(1);
    let mut env = TestEnv::new("globallab").await;
    env.start_operator_with(&["--docker-host", &lab.endpoint(1)]);
    let everywhere = format!("{}-all", env.prefix);
    let workers = format!("{}-workers", env.prefix);
    env.kubectl_apply(
        &manifest(
            &everywhere,
            &format!("{{image: {}, mode: Global}}", test_image("1")),
        ),
        false,
    )
    .unwrap();
    env.kubectl_apply(
        &manifest(
            &workers,
            &format!(
                "{{image: {}, mode: Global, placement: {{constraints: ['node.role == worker']}}}}",
                test_image("1")
            ),
        ),
        false,
    )
    .unwrap();
    for (name, nodes) in [(&everywhere, 2), (&workers, 1)] {
        let status = env
            .wait_ready(name, Duration::from_secs(90))
            .await
            .status
            .unwrap();
        assert_eq!(
            (status.replicas, status.desired_replicas),
            (Some(nodes), Some(nodes)),
            "{name}"
        );
    }
    // The worker's task runs on the worker.
    let docker = lab.docker(1).await;
    let id = services_named(&docker, &workers).await[0].id.clone().unwrap();
    let worker = docker
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.spec.as_ref().and_then(|s| s.role) == Some(bollard::models::NodeSpecRoleEnum::WORKER))
        .and_then(|n| n.id)
        .unwrap();
    let tasks = docker
        .list_tasks(Some(bollard::query_parameters::ListTasksOptions {
            filters: Some([("service".to_string(), vec![id])].into()),
        }))
        .await
        .unwrap();
    let running: Vec<_> = tasks
        .iter()
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING))
        .collect();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].node_id.as_deref(), Some(worker.as_str()));
    drop(lab);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn jobs_end_complete_or_failed_with_their_progress() {
    let mut env = TestEnv::new("jobs").await;
    env.start_operator();
    let done = format!("{}-done", env.prefix);
    let broken = format!("{}-broken", env.prefix);
    env.kubectl_apply(
        &manifest(
            &done,
            &format!(
                "{{image: {}, mode: ReplicatedJob, maxConcurrent: 2, totalCompletions: 3, command: [/bin/sh, -c, 'exit 0']}}",
                test_image("1")
            ),
        ),
        false,
    )
    .unwrap();
    env.kubectl_apply(
        &manifest(
            &broken,
            &format!(
                "{{image: {}, mode: ReplicatedJob, command: [/bin/sh, -c, 'exit 3'], restartPolicy: {{condition: None}}}}",
                test_image("1")
            ),
        ),
        false,
    )
    .unwrap();

    let message = env
        .wait_condition(&done, "Complete", "Completed", Duration::from_secs(90))
        .await;
    assert_eq!(message, "3/3 completed");
    let svc = env.services().get(&done).await.unwrap();
    // kstatus: a finished job is Current.
    assert_eq!(condition(&svc, "Ready").unwrap().status, "True");
    assert_eq!(condition(&svc, "Reconciling").unwrap().status, "False");
    assert_eq!(condition(&svc, "Failed").unwrap().status, "False");
    let job = svc.status.unwrap().job.unwrap();
    assert_eq!((job.succeeded, job.completions), (3, 3));

    let message = env
        .wait_condition(&broken, "Failed", "JobFailed", Duration::from_secs(90))
        .await;
    assert!(
        message.contains("exit code 3") || message.contains("(3)"),
        "{message}"
    );
    let svc = env.services().get(&broken).await.unwrap();
    assert_eq!(condition(&svc, "Stalled").unwrap().reason, "JobFailed");
    assert_eq!(condition(&svc, "Complete").unwrap().status, "False");
    let job = svc.status.unwrap().job.unwrap();
    assert_eq!((job.succeeded, job.failed, job.completions), (0, 1, 1));
}
