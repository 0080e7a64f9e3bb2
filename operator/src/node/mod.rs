//! SwarmNode: the swarm's nodes as cluster-scoped resources. Two parts:
//!
//! ```text
//!  discover.rs  node events, resync ─► a SwarmNode for each node that has none (created, no spec)
//!  mod.rs       one pass per SwarmNode: find the node by hostname ─► plan.rs (pure: availability,
//!               managed labels, role judged over the whole swarm) ─► docker node update ─► status
//! ```
//!
//! Cluster-scoped like SwarmCluster, it uses `controller.rs` but not `pass.rs`: no finalizer (a
//! node is never removed by deleting its resource; deleting it only stops the management).

mod discover;
mod plan;

use std::{collections::HashMap, sync::Arc};

use futures::StreamExt;

use bollard::models::{Node, NodeState};
use kube::{
    Api,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::EventType,
        reflector::{self, Store},
        watcher,
    },
};
use swarm_operator_crds::{
    DEFAULT_CLUSTER, OnCluster, SwarmNode, SwarmNodeStatus,
    conditions::{REASON_CLUSTER_UNAVAILABLE, REASON_RUNNING},
    node::{NodeRole, REASON_NODE_NOT_FOUND, REASON_QUORUM_PROTECTED},
};
use tracing::info;

use crate::{
    conditions::{self, Summary},
    connections::{SwarmEvent, triggers},
    context::Context,
    controller::{drive, observed, watch_backoff},
    error::Error,
    status::apply_status,
};

/// The node is not ready (down, unknown or disconnected); proceeds by itself when it is back.
const REASON_NODE_NOT_READY: &str = "NodeNotReady";

/// Whether this operator keeps the SwarmNodes of cluster `name`: the SwarmClusters it serves, and
/// the engine of its flags (`default` without a SwarmCluster) unless `--cluster-selector` gives
/// it only some clusters (the operator that serves them all keeps that engine's nodes).
fn serves(ctx: &Context, name: &str) -> bool {
    ctx.clusters.names().iter().any(|n| n == name)
        || (name == DEFAULT_CLUSTER && !ctx.settings.selected_clusters_only)
}

/// Runs the SwarmNode controller and the discovery of nodes until a shutdown signal.
pub async fn run(ctx: Arc<Context>, concurrency: u16) {
    let (reader, writer) = reflector::store();
    let queue = ctx.queues.of::<SwarmNode>();
    let watch = watcher(
        Api::<SwarmNode>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .backoff(watch_backoff());
    let stream = reflector::reflector(writer, watch)
        .applied_objects()
        .inspect(move |item| queue.watched(item));
    let controller = Controller::for_stream(stream, reader.clone());
    let node_changes = triggers(
        &ctx.events,
        controller.store(),
        ctx.queues.of::<SwarmNode>(),
        |event, node: &SwarmNode| matches!(event, SwarmEvent::Changed { kind, name, .. } if kind == "node" && *name == node.hostname()),
    );
    let store = reader.clone();
    let reconcile = move |node: Arc<SwarmNode>, ctx: Arc<Context>| reconcile(node, ctx, store.clone());
    // Discovery runs as long as the controller: a shutdown signal ends the controller, and the
    // term with it. Joined, the discovery loop would keep a stopping operator alive until killed.
    tokio::select! {
        () = drive(
            controller.reconcile_on(node_changes),
            reconcile,
            ctx.clone(),
            concurrency
        ) => {}
        () = discover::run(ctx.clone(), reader) => {}
    }
}

async fn reconcile(
    node: Arc<SwarmNode>,
    ctx: Arc<Context>,
    store: Store<SwarmNode>,
) -> Result<Action, Error> {
    if !serves(&ctx, node.cluster_name()) {
        return Ok(Action::await_change());
    }
    let swarm = node
        .status
        .as_ref()
        .and_then(|s| s.swarm.clone())
        .unwrap_or_default();
    observed(
        &ctx,
        node.as_ref(),
        &swarm,
        pass(node.clone(), ctx.clone(), store),
    )
    .await
}

/// What a pass saw and decided.
struct Outcome {
    summary: Summary,
    node: Option<Node>,
    managed_labels: Vec<String>,
    swarm: Option<String>,
}

async fn pass(node: Arc<SwarmNode>, ctx: Arc<Context>, store: Store<SwarmNode>) -> Result<Action, Error> {
    let outcome = match ctx.engine_for(node.as_ref()).await {
        Ok(engine) => converge(&node, &ctx, &engine, &roles_asked(&store, node.cluster_name())).await?,
        Err(Error::ClusterUnavailable(e)) => Outcome {
            summary: Summary::Reconciling {
                reason: REASON_CLUSTER_UNAVAILABLE,
                message: e.to_string(),
            },
            node: None,
            managed_labels: node.status.clone().unwrap_or_default().managed_labels,
            swarm: None,
        },
        Err(e) => return Err(e),
    };
    if let Summary::Stalled { reason, message } = &outcome.summary {
        let before = node
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        if crate::pass::entering_stall(before, reason) {
            ctx.publish(
                node.as_ref(),
                EventType::Warning,
                reason,
                "Reconcile",
                message.clone(),
            )
            .await;
        }
    }
    write_status(&node, &ctx, &outcome).await?;
    let ready = outcome.summary.is_ready();
    Ok(crate::queue::requeue(if ready {
        ctx.settings.resync_interval
    } else {
        ctx.settings.progress_interval * 5
    }))
}

/// Finds the node, plans and writes its spec; the node as read after.
async fn converge(
    node: &SwarmNode,
    ctx: &Context,
    engine: &crate::swarm::Engine,
    roles: &HashMap<String, NodeRole>,
) -> Result<Outcome, Error> {
    let hostname = node.hostname();
    let swarm = engine.swarm_info().await?.swarm_id;
    let nodes = engine.nodes().await?;
    let managed_before = node.status.clone().unwrap_or_default().managed_labels;
    let Some(found) = nodes.iter().find(|n| plan::hostname(n) == hostname).cloned() else {
        return Ok(Outcome {
            summary: Summary::Stalled {
                reason: REASON_NODE_NOT_FOUND,
                message: format!("no node of the swarm has hostname {hostname} (docker node ls)"),
            },
            node: None,
            managed_labels: managed_before,
            swarm,
        });
    };
    let plan = plan::plan(&node.spec, &managed_before, &found, &nodes, roles);
    let mut seen = found;
    if let Some((spec, changes)) = plan.write {
        let id = seen.id.clone().unwrap_or_default();
        let version = seen.version.as_ref().and_then(|v| v.index).unwrap_or_default() as i64;
        engine.update_node(&id, version, spec).await?;
        let changes = changes.join(", ");
        info!(node = %hostname, %changes, "updated node");
        let note = format!("Updated node {hostname}: {changes}");
        ctx.publish(node, EventType::Normal, "Updated", "Update", note)
            .await;
        seen = engine
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.id.as_deref() == Some(id.as_str()))
            .unwrap_or(seen);
    }
    let summary = match plan.role_refused {
        Some(message) => Summary::Stalled {
            reason: REASON_QUORUM_PROTECTED,
            message,
        },
        None => readiness(&seen),
    };
    Ok(Outcome {
        summary,
        node: Some(seen),
        managed_labels: plan.managed_labels,
        swarm,
    })
}

/// The role each SwarmNode of cluster `cluster` asks for, by hostname.
fn roles_asked(store: &Store<SwarmNode>, cluster: &str) -> HashMap<String, NodeRole> {
    store
        .state()
        .iter()
        .filter(|n| n.cluster_name() == cluster)
        .filter_map(|n| Some((n.hostname(), n.spec.role?)))
        .collect()
}

fn readiness(node: &Node) -> Summary {
    let status = node.status.clone().unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    let word = |s: Option<String>| s.unwrap_or_default();
    let said = format!(
        "{}, {}, {}",
        word(status.state.map(|s| s.to_string())),
        word(spec.availability.map(|a| a.to_string())),
        word(spec.role.map(|r| r.to_string()))
    );
    if status.state == Some(NodeState::READY) {
        Summary::Ready {
            reason: REASON_RUNNING,
            message: said,
        }
    } else {
        Summary::Reconciling {
            reason: REASON_NODE_NOT_READY,
            message: format!("{said}: {}", word(status.message)),
        }
    }
}

async fn write_status(node: &SwarmNode, ctx: &Context, o: &Outcome) -> Result<(), Error> {
    let before = node.status.clone().unwrap_or_default();
    let previous = before.conditions.as_slice();
    let conditions = conditions::conditions(previous, node.metadata.generation, &o.summary);
    let seen = o.node.as_ref();
    let spec = seen.and_then(|n| n.spec.clone()).unwrap_or_default();
    let status = seen.and_then(|n| n.status.clone()).unwrap_or_default();
    let text = |s: Option<String>| s.filter(|s| !s.is_empty());
    let found = seen.is_some();
    let status = SwarmNodeStatus {
        observed_generation: node.metadata.generation,
        conditions,
        swarm: o.swarm.clone().or(before.swarm.clone()),
        node_id: if found {
            seen.and_then(|n| n.id.clone())
        } else {
            before.node_id.clone()
        },
        hostname: Some(node.hostname()),
        role: if found {
            text(spec.role.map(|r| r.to_string()))
        } else {
            before.role.clone()
        },
        availability: if found {
            text(spec.availability.map(|a| a.to_string()))
        } else {
            before.availability.clone()
        },
        state: if found {
            text(status.state.map(|s| s.to_string()))
        } else {
            before.state.clone()
        },
        manager_status: if found {
            seen.and_then(|n| n.manager_status.as_ref()).map(|m| {
                if m.leader == Some(true) {
                    "Leader".to_string()
                } else {
                    let r = m.reachability.map(|r| r.to_string()).unwrap_or_default();
                    let mut chars = r.chars();
                    chars
                        .next()
                        .map(|c| c.to_uppercase().chain(chars).collect())
                        .unwrap_or_default()
                }
            })
        } else {
            before.manager_status.clone()
        },
        address: if found {
            text(status.addr)
        } else {
            before.address.clone()
        },
        engine_version: if found {
            text(
                seen.and_then(|n| n.description.as_ref())
                    .and_then(|d| d.engine.as_ref())
                    .and_then(|e| e.engine_version.clone()),
            )
        } else {
            before.engine_version.clone()
        },
        labels: if found {
            spec.labels.unwrap_or_default().into_iter().collect()
        } else {
            before.labels.clone()
        },
        managed_labels: o.managed_labels.clone(),
    };
    let api: Api<SwarmNode> = Api::all(ctx.client.clone());
    apply_status(ctx, &api, node, node.status.as_ref(), &status).await
}
