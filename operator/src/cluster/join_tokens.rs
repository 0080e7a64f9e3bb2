//! `spec.joinTokens`: the swarm's join tokens kept in a Secret, so node provisioning reads them
//! from Kubernetes; a new `rotate` value rotates them once. The tokens go into that Secret only:
//! never into status, events or logs (their `Debug` prints nothing).

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::EventType,
};
use swarm_operator_crds::{SwarmCluster, cluster::JoinTokens as Spec};

use crate::{
    context::Context,
    error::Error,
    swarm::{Engine, JoinTokens},
};

/// On the Secret: the SwarmCluster whose tokens it holds.
pub const JOIN_TOKENS_OF: &str = "swarmoperator.io/join-tokens-of";

/// The `rotate` value to carry out now, if it is new.
fn rotation_due(spec: &Spec, done: Option<&str>) -> Option<String> {
    spec.rotate.clone().filter(|wanted| Some(wanted.as_str()) != done)
}

/// The managers' addresses to join (`host:port` of each reachable manager), sorted.
fn manager_addresses(nodes: &[bollard::models::Node]) -> Vec<String> {
    use bollard::models::Reachability;
    let mut out: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.manager_status.as_ref())
        .filter(|m| m.reachability == Some(Reachability::REACHABLE))
        .filter_map(|m| m.addr.clone())
        .collect();
    out.sort();
    out
}

/// The Secret's data: `worker`, `manager` and `managers`.
fn secret_data(tokens: &JoinTokens, managers: &[String]) -> BTreeMap<String, ByteString> {
    [
        ("worker", tokens.worker.clone()),
        ("manager", tokens.manager.clone()),
        ("managers", managers.join(",")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect()
}

/// Carries out `spec.joinTokens` of `cluster` on `engine` (rotation, then the Secret, written
/// only when its data differs). Returns the `rotate` value carried out, even when a later step
/// failed (a rotation done is never done twice), and how it went.
pub async fn publish(
    cluster: &SwarmCluster,
    ctx: &Context,
    engine: &Engine,
    nodes: &[bollard::models::Node],
) -> (Option<String>, Result<(), Error>) {
    let mut carried_out = cluster
        .status
        .as_ref()
        .and_then(|s| s.join_tokens_rotated.clone());
    let outcome = keep(cluster, ctx, engine, nodes, &mut carried_out).await;
    (carried_out, outcome)
}

async fn keep(
    cluster: &SwarmCluster,
    ctx: &Context,
    engine: &Engine,
    nodes: &[bollard::models::Node],
    carried_out: &mut Option<String>,
) -> Result<(), Error> {
    let Some(spec) = &cluster.spec.join_tokens else {
        return Ok(());
    };
    let (namespace, name) = (&spec.secret_ref.namespace, &spec.secret_ref.name);
    let kube_error = |operation| {
        move |source| Error::Kube {
            operation,
            object: format!("{namespace}/{name}"),
            source,
        }
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let current = api.get_opt(name).await.map_err(kube_error("get Secret"))?;
    let ours = |s: &Secret| s.labels().get(JOIN_TOKENS_OF) == Some(&cluster.name_any());
    if let Some(other) = current.as_ref().filter(|s| !ours(s)) {
        return Err(Error::InvalidSpec {
            object: format!("SwarmCluster {}", cluster.name_any()),
            message: format!(
                "spec.joinTokens.secretRef: Secret {namespace}/{} exists and does not hold this cluster's tokens \
                 (no label {JOIN_TOKENS_OF}={}); it is left untouched",
                other.name_any(),
                cluster.name_any()
            ),
        });
    }
    if let Some(wanted) = rotation_due(spec, carried_out.as_deref()) {
        engine.rotate_join_tokens().await?;
        let note = format!(
            "Rotated the worker and manager join tokens (rotate: {wanted}) into Secret {namespace}/{name}"
        );
        ctx.publish(cluster, EventType::Normal, "JoinTokensRotated", "Rotate", note)
            .await;
        *carried_out = Some(wanted);
    }
    let data = secret_data(&engine.join_tokens().await?, &manager_addresses(nodes));
    if current.as_ref().and_then(|s| s.data.as_ref()) != Some(&data) {
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": {JOIN_TOKENS_OF: cluster.name_any()}},
            "data": data,
        });
        api.patch(
            name,
            &PatchParams::apply("swarm-operator").force(),
            &Patch::Apply(secret),
        )
        .await
        .map_err(kube_error("apply Secret"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_is_due_once_per_new_value() {
        let spec = |rotate: Option<&str>| Spec {
            rotate: rotate.map(String::from),
            ..Default::default()
        };
        assert_eq!(rotation_due(&spec(None), None), None);
        assert_eq!(
            rotation_due(&spec(Some("2026-12-06")), None).as_deref(),
            Some("2026-12-06")
        );
        assert_eq!(rotation_due(&spec(Some("2026-12-06")), Some("2026-12-06")), None);
        assert_eq!(rotation_due(&spec(Some("2")), Some("1")).as_deref(), Some("2"));
    }

    #[test]
    fn the_secret_names_the_reachable_managers_and_debug_shows_no_token() {
        let nodes: Vec<bollard::models::Node> = serde_json::from_value(serde_json::json!([
            {"ManagerStatus": {"Reachability": "reachable", "Addr": "10.1.0.2:2377"}},
            {"ManagerStatus": {"Reachability": "unreachable", "Addr": "10.1.0.3:2377"}},
            {"ManagerStatus": {"Reachability": "reachable", "Addr": "10.1.0.1:2377"}},
            {"Spec": {"Role": "worker"}}
        ]))
        .unwrap();
        let tokens = JoinTokens {
            worker: "SWMTKN-1-w".into(),
            manager: "SWMTKN-1-m".into(),
        };
        let data = secret_data(&tokens, &manager_addresses(&nodes));
        let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
        assert_eq!(text("managers"), "10.1.0.1:2377,10.1.0.2:2377");
        assert_eq!(
            (text("worker"), text("manager")),
            ("SWMTKN-1-w".into(), "SWMTKN-1-m".into())
        );
        assert_eq!(format!("{tokens:?}"), "JoinTokens(..)");
    }
}
