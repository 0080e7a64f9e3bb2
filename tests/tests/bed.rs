//! The test bed behaves as a real cluster: kube-controller-manager deletes namespaces and collects
//! objects whose owner is gone, so what the operator does at those moments is tested too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, PostParams};
use swarm_operator_e2e::{TestEnv, test_image};

const WITHIN: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server, controller manager and swarm: scripts/test.sh runs it"]
async fn namespaces_are_deleted_and_owned_objects_collected() {
    let mut env = TestEnv::new("bed").await;
    env.start_operator();
    let (owner, other) = (format!("{}-owner", env.prefix), format!("{}-other", env.prefix));
    for name in [&owner, &other] {
        env.apply(&format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}, replicas: 0}}",
            test_image("1")
        ))
        .await;
    }
    let svc = env.wait_ready(&owner, WITHIN).await;

    // Garbage collection: an object owned by the SwarmService goes with it.
    let maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let owned: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "owned", "ownerReferences": [{
            "apiVersion": "swarmoperator.io/v1alpha1", "kind": "SwarmService",
            "name": owner, "uid": svc.metadata.uid.unwrap()
        }]},
        "data": {"k": "v"}
    }))
    .unwrap();
    maps.create(&PostParams::default(), &owned).await.unwrap();
    env.services()
        .delete(&owner, &DeleteParams::default())
        .await
        .unwrap();
    env.wait_for("the owned ConfigMap collected", WITHIN, || async {
        match maps.get_opt("owned").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    assert!(env.swarm_service(&owner).await.is_none());

    // Namespace deletion finishes: the operator releases its finalizers, the namespace goes.
    env.wait_ready(&other, WITHIN).await;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .delete(&env.namespace, &DeleteParams::default())
        .await
        .unwrap();
    env.wait_namespace_gone(WITHIN).await;
    assert!(
        env.swarm_service(&other).await.is_none(),
        "its Swarm service was left"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server, controller manager and swarm: scripts/test.sh runs it"]
async fn a_namespace_whose_orphaned_service_uses_its_secret_terminates() {
    let mut env = TestEnv::new("orphanns").await;
    env.start_operator();
    let service = format!("{}-app", env.prefix);
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db-source}}\nstringData: {{value: s3cr3t-orphan}}\n---\n\
         apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmSecret\nmetadata: {{name: db}}\nspec: {{secretRef: {{name: db-source, key: value}}}}\n---\n\
         apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {service}}}\n\
         spec: {{image: {}, replicas: 0, deletionPolicy: Orphan, secrets: [{{name: db}}]}}\n",
        test_image("1")
    );
    env.kubectl_apply(&manifest, false).unwrap();
    env.wait_ready(&service, WITHIN).await;
    let secret_id =
        env.swarm_service_json(&service)["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretID"]
            .as_str()
            .unwrap()
            .to_string();

    // The orphaned service keeps the secret version in use for ever: the namespace must still go.
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .delete(&env.namespace, &DeleteParams::default())
        .await
        .unwrap();
    env.wait_namespace_gone(WITHIN).await;

    // Both stay in the swarm, running as before, and neither is anyone's any more.
    let spec = env.swarm_service_json(&service);
    assert_eq!(
        spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretID"],
        secret_id.as_str()
    );
    let secret: serde_json::Value =
        serde_json::from_str(&env.docker_cli(&["secret", "inspect", &secret_id])).unwrap();
    for object in [&spec["Spec"]["Labels"], &secret[0]["Spec"]["Labels"]] {
        let owned = object
            .as_object()
            .is_some_and(|l| l.keys().any(|k| k.starts_with("swarmoperator.io/owner")));
        assert!(!owned, "owner labels left: {object}");
    }
    env.docker_cli(&["service", "rm", &service]);
    env.docker_rm_when_free("secret", &secret_id, WITHIN).await;
}
