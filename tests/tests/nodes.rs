//! SwarmNode on a lab swarm of one manager and two workers: nodes appear as resources, a label set
//! through one places tasks by constraint, a label set by hand stays, drain moves tasks away, and
//! promotions keep the manager count odd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use swarm_operator_crds::{SwarmCluster, SwarmNode};
use swarm_operator_e2e::{CLUSTER_LABEL, Lab, TestEnv, test_image};

const WITHIN: Duration = Duration::from_secs(120);
const LAB: u8 = 33;

/// `kubectl swarm ARGS`: (success, stdout + stderr).
fn kubectl_swarm(args: &[&str]) -> (bool, String) {
    let (ok, out, err) = swarm_operator_e2e::kubectl_swarm(args, None);
    (ok, out + &err)
}

/// Waits until SwarmNode `name` satisfies `check`, and returns it.
async fn wait_node(env: &TestEnv, name: &str, what: &str, check: impl Fn(&SwarmNode) -> bool) -> SwarmNode {
    let api: Api<SwarmNode> = Api::all(env.client.clone());
    env.wait_for(&format!("SwarmNode {name}: {what}"), WITHIN, || async {
        let node = api
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("not there")?;
        if check(&node) {
            Ok(node)
        } else {
            Err(format!("{:?}", node.status))
        }
    })
    .await
}

fn condition(node: &SwarmNode, type_: &str) -> Option<(String, String, String)> {
    node.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn set_spec(env: &TestEnv, name: &str, spec: serde_json::Value) {
    Api::<SwarmNode>::all(env.client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn nodes_are_resources_whose_labels_place_tasks_drain_moves_them_and_promotions_keep_quorum() {
    let lab = Lab::up(LAB, 1, None);
    lab.add_workers(2);
    let mut env = TestEnv::new("nodes").await;
    env.start_operator();
    let cluster = format!("{}-lab", env.prefix);
    env.kubectl_apply(
        &format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmCluster\nmetadata:\n  name: {cluster}\n  \
             labels: {{{CLUSTER_LABEL}: {}}}\nspec:\n  endpoints: [{}]\n  insecure: true\n",
            env.namespace,
            lab.endpoint(1)
        ),
        false,
    )
    .unwrap();
    let host = |i: u8| format!("swl{LAB}-m{i}");
    let named = |i: u8| format!("{cluster}.{}", host(i));

    // Every node appears, reported as docker node ls reports it.
    for (i, role) in [(1, "manager"), (2, "worker"), (3, "worker")] {
        let node = wait_node(&env, &named(i), "Ready", |n| {
            condition(n, "Ready").is_some_and(|c| c.0 == "True")
        })
        .await;
        let status = node.status.unwrap();
        assert_eq!(status.hostname.as_deref(), Some(host(i).as_str()));
        assert_eq!(status.role.as_deref(), Some(role));
        assert_eq!(status.availability.as_deref(), Some("active"));
        assert_eq!(status.state.as_deref(), Some("ready"));
        assert!(status.engine_version.is_some());
    }
    let listed = String::from_utf8_lossy(&env.kubectl(&["get", "swarmnodes"]).stdout).into_owned();
    let manager_row = listed
        .lines()
        .find(|l| l.starts_with(&named(1)))
        .unwrap_or_default();
    assert!(
        manager_row.contains("Leader") && manager_row.contains("ready"),
        "{listed}"
    );

    // A label set through SwarmNode places a service's tasks by constraint; one set by hand stays.
    let docker = lab.docker(1).await;
    let worker_id = |i: u8| {
        let docker = docker.clone();
        async move {
            let nodes = docker
                .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
                .await
                .unwrap();
            let node = nodes.into_iter().find(|n| {
                n.description.as_ref().and_then(|d| d.hostname.as_deref()) == Some(host(i).as_str())
            });
            node.unwrap().id.unwrap()
        }
    };
    let w2 = worker_id(2).await;
    // As `docker node update --label-add hand=1` at a manager.
    let inspected = docker.inspect_node(&w2).await.unwrap();
    let mut spec = inspected.spec.unwrap();
    spec.labels
        .get_or_insert_default()
        .insert("hand".into(), "1".into());
    let version = inspected.version.unwrap().index.unwrap() as i64;
    docker
        .update_node(
            &w2,
            spec,
            bollard::query_parameters::UpdateNodeOptions { version },
        )
        .await
        .unwrap();
    set_spec(
        &env,
        &named(2),
        serde_json::json!({"labels": {"zone": "b", "rack": "r1"}}),
    )
    .await;
    let node = wait_node(&env, &named(2), "labelled", |n| {
        n.status
            .as_ref()
            .is_some_and(|s| s.labels.get("zone").map(String::as_str) == Some("b"))
    })
    .await;
    let status = node.status.unwrap();
    assert_eq!(
        status.labels.get("hand").map(String::as_str),
        Some("1"),
        "the hand label stays"
    );
    assert_eq!(status.managed_labels, ["rack", "zone"]);
    // rack leaves the spec: removed from the node; hand stays.
    Api::<SwarmNode>::all(env.client.clone())
        .patch(
            &named(2),
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(serde_json::json!([
                    {"op": "remove", "path": "/spec/labels/rack"}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    let node = wait_node(&env, &named(2), "rack removed", |n| {
        n.status.as_ref().is_some_and(|s| !s.labels.contains_key("rack"))
    })
    .await;
    assert_eq!(
        node.status.unwrap().labels.get("hand").map(String::as_str),
        Some("1")
    );

    let zoned = format!("{}-zoned", env.prefix);
    let spread = format!("{}-spread", env.prefix);
    env.kubectl_apply(
        &format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {zoned}}}\n\
             spec: {{image: {image}, replicas: 2, clusterRef: {{name: {cluster}}}, placement: {{constraints: ['node.labels.zone == b']}}}}\n---\n\
             apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {spread}}}\n\
             spec: {{image: {image}, replicas: 3, clusterRef: {{name: {cluster}}}}}\n",
            image = test_image("1")
        ),
        false,
    )
    .unwrap();
    let tasks_on = |service: String| {
        let docker = docker.clone();
        async move {
            let filters = std::collections::HashMap::from([
                ("service".to_string(), vec![service]),
                ("desired-state".to_string(), vec!["running".to_string()]),
            ]);
            // Before the service exists: no tasks.
            let tasks = docker
                .list_tasks(Some(bollard::query_parameters::ListTasksOptions {
                    filters: Some(filters),
                }))
                .await
                .unwrap_or_default();
            tasks
                .into_iter()
                .filter(|t| {
                    t.status.as_ref().and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING)
                })
                .map(|t| t.node_id.unwrap_or_default())
                .collect::<Vec<_>>()
        }
    };
    env.wait_for(
        "the zoned tasks to run on the labelled worker",
        WITHIN,
        || async {
            let nodes = tasks_on(zoned.clone()).await;
            if nodes.len() == 2 && nodes.iter().all(|n| *n == w2) {
                Ok(())
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    )
    .await;
    env.wait_for("the spread tasks to run", WITHIN, || async {
        let nodes = tasks_on(spread.clone()).await;
        if nodes.len() == 3 {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    })
    .await;

    // Drain: the worker's tasks go elsewhere (the zoned ones, nowhere else to go, stop).
    let (ok, said) = kubectl_swarm(&["drain", &named(2)]);
    assert!(
        ok && said.trim() == format!("swarmnode.swarmoperator.io/{} drained", named(2)),
        "{said}"
    );
    env.wait_for("no task left running on the drained worker", WITHIN, || async {
        let (zoned_nodes, spread_nodes) = (tasks_on(zoned.clone()).await, tasks_on(spread.clone()).await);
        if zoned_nodes.is_empty() && spread_nodes.len() == 3 && !spread_nodes.contains(&w2) {
            Ok(())
        } else {
            Err(format!("{zoned_nodes:?} {spread_nodes:?}"))
        }
    })
    .await;
    wait_node(&env, &named(2), "drained", |n| {
        n.status.as_ref().and_then(|s| s.availability.as_deref()) == Some("drain")
    })
    .await;
    let (ok, said) = kubectl_swarm(&["uncordon", &named(2)]);
    assert!(ok, "{said}");
    env.wait_for("the zoned tasks back on the worker", WITHIN, || async {
        let nodes = tasks_on(zoned.clone()).await;
        if nodes.len() == 2 {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    })
    .await;

    // One worker promoted alone would make two managers: refused, naming why.
    set_spec(&env, &named(2), serde_json::json!({"role": "Manager"})).await;
    let refused = wait_node(&env, &named(2), "QuorumProtected", |n| {
        condition(n, "Stalled").is_some_and(|c| c.0 == "True" && c.1 == "QuorumProtected")
    })
    .await;
    let message = condition(&refused, "Stalled").unwrap().2;
    assert!(message.contains("would leave 2 managers"), "{message}");
    assert_eq!(refused.status.unwrap().role.as_deref(), Some("worker"));
    // Both workers: three managers, odd, both promoted.
    set_spec(&env, &named(3), serde_json::json!({"role": "Manager"})).await;
    for i in [2, 3] {
        wait_node(&env, &named(i), "a reachable manager", |n| {
            let s = n.status.clone().unwrap_or_default();
            s.role.as_deref() == Some("manager")
                && s.manager_status.as_deref() == Some("Reachable")
                && condition(n, "Ready").is_some_and(|c| c.0 == "True")
        })
        .await;
    }

    // Deleting the resources leaves the nodes as they are.
    Api::<SwarmCluster>::all(env.client.clone())
        .delete(&cluster, &Default::default())
        .await
        .unwrap();
    for i in 1..=3 {
        env.kubectl(&["delete", "swarmnode", &named(i)]);
    }
}
