//! Reconcile of one SwarmCluster: make or keep its connection, find a working manager, and report
//! what `docker info` and `docker node ls` show of the swarm, with Ready and QuorumAtRisk. Runs on
//! the cluster's resync interval and at once when a node changes (see `events`).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        WatchStreamExt,
        controller::{Action, Controller},
        events::EventType,
        reflector::{self, Store, reflector},
        watcher::{self, watcher},
    },
};
use swarm_operator_crds::{
    SwarmCluster, SwarmClusterStatus,
    cluster::{NodeStatus, QUORUM_AT_RISK, REASON_BARE_MAJORITY, REASON_QUORUM_LOST},
    common::Duration as SpecDuration,
    conditions::{
        FALSE, READY, REASON_CLUSTER_UNAVAILABLE, REASON_CONNECTED, REASON_INVALID_TLS_SECRET, TRUE, UNKNOWN,
    },
};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{health, join_tokens};
use crate::{
    conditions::{self, Summary},
    connections::{SwarmEvent, triggers},
    context::Context,
    controller::{drive, observed},
    error::Error,
    queue::Queue,
    status::apply_status,
};

/// Resync of a SwarmCluster without `resyncInterval`.
const DEFAULT_RESYNC: Duration = Duration::from_secs(30);
/// Resync while managers are missing or none answers.
const DEGRADED_RESYNC: Duration = Duration::from_secs(5);

/// The SwarmCluster controller, before it runs, with its store (what resources resolve
/// `clusterRef` against) and a flag that turns true once the store holds every SwarmCluster.
/// `selector` limits it to SwarmClusters with matching labels.
pub fn controller(
    client: Client,
    selector: Option<&str>,
    queue: Arc<Queue>,
) -> (
    Controller<SwarmCluster>,
    Store<SwarmCluster>,
    watch::Receiver<bool>,
) {
    let config = watch_config(selector);
    let (reader, writer) = reflector::store();
    // The store's own readiness wakes a single waiter, and the controller is already it.
    let (ready_tx, ready_rx) = watch::channel(false);
    let watch = watcher(Api::<SwarmCluster>::all(client), config).backoff(crate::controller::watch_backoff());
    let stream = reflector(writer, watch)
        .inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                ready_tx.send_replace(true);
            }
        })
        .applied_objects()
        .inspect(move |item| queue.watched(item));
    (Controller::for_stream(stream, reader.clone()), reader, ready_rx)
}

/// The SwarmClusters `selector` picks (all without one), any version.
fn watch_config(selector: Option<&str>) -> watcher::Config {
    let config = watcher::Config::default().any_semantic();
    match selector {
        Some(selector) => config.labels(selector),
        None => config,
    }
}

/// The SwarmClusters alone in a store, for reads outside a term of leadership (the logs API,
/// served by every replica): the store, its readiness, and the watch that fills it, to be run.
pub fn watched(
    client: Client,
    selector: Option<&str>,
) -> (
    Store<SwarmCluster>,
    watch::Receiver<bool>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    let (ready_tx, ready_rx) = watch::channel(false);
    let watch = watcher(Api::<SwarmCluster>::all(client), watch_config(selector))
        .backoff(crate::controller::watch_backoff());
    let filling = reflector(writer, watch).for_each(move |event| {
        if matches!(event, Ok(watcher::Event::InitDone)) {
            ready_tx.send_replace(true);
        }
        futures::future::ready(())
    });
    (reader, ready_rx, filling)
}

pub async fn run(controller: Controller<SwarmCluster>, ctx: Arc<Context>, concurrency: u16) {
    let node_changes = triggers(
        &ctx.events,
        controller.store(),
        ctx.queues.of::<SwarmCluster>(),
        |event, _| matches!(event, SwarmEvent::Changed { kind, .. } if kind == "node"),
    );
    drive(controller.reconcile_on(node_changes), reconcile, ctx, concurrency).await;
}

async fn reconcile(cluster: Arc<SwarmCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let swarm = cluster
        .status
        .as_ref()
        .and_then(|s| s.swarm_id.clone())
        .unwrap_or_default();
    observed(
        &ctx,
        cluster.as_ref(),
        &swarm,
        reconcile_pass(cluster.clone(), ctx.clone()),
    )
    .await
}

async fn reconcile_pass(cluster: Arc<SwarmCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let observed = observe(&cluster, &ctx).await;
    announce(&cluster, &ctx, &observed).await;
    let api: Api<SwarmCluster> = Api::all(ctx.client.clone());
    write_status(&cluster, &ctx, &api, &observed).await?;
    // Swarm sends a node event when a node goes down but none when it is back, nor when a
    // manager's reachability changes: a degraded swarm is looked at more often.
    let resync = resync_interval(&cluster);
    let degraded = !observed.summary.is_ready()
        || [REASON_BARE_MAJORITY, REASON_QUORUM_LOST].contains(&observed.risk.reason);
    Ok(crate::queue::requeue(if degraded {
        resync.min(DEGRADED_RESYNC)
    } else {
        resync
    }))
}

fn resync_interval(cluster: &SwarmCluster) -> Duration {
    cluster
        .spec
        .resync_interval
        .as_ref()
        .and_then(|d: &SpecDuration| d.nanos().ok())
        .filter(|n| *n > 0)
        .map(|n| Duration::from_nanos(n as u64))
        .unwrap_or(DEFAULT_RESYNC)
}

/// What one pass saw of the swarm.
struct Observed {
    summary: Summary,
    active_endpoint: Option<String>,
    swarm_id: Option<String>,
    nodes: Vec<NodeStatus>,
    quorum: Option<health::Quorum>,
    risk: health::Risk,
    /// The `spec.joinTokens.rotate` value carried out; None: as before.
    join_tokens_rotated: Option<String>,
}

impl Observed {
    fn down(summary: Summary) -> Self {
        // A manager that answers but has no leader is the one case where we know quorum is gone.
        let lost = summary.message().contains("does not have a leader");
        Observed {
            risk: health::Risk {
                at_risk: lost,
                reason: if lost {
                    REASON_QUORUM_LOST
                } else {
                    REASON_CLUSTER_UNAVAILABLE
                },
                message: if lost {
                    "the swarm has no leader: a majority of managers is lost and no change is accepted".into()
                } else {
                    "no manager answers, so quorum cannot be assessed".into()
                },
            },
            summary,
            active_endpoint: None,
            swarm_id: None,
            nodes: Vec::new(),
            quorum: None,
            join_tokens_rotated: None,
        }
    }
}

async fn observe(cluster: &SwarmCluster, ctx: &Context) -> Observed {
    let connection = match ctx.clusters.refresh(cluster).await {
        Ok(c) => c,
        Err(e) => {
            return Observed::down(Summary::Stalled {
                reason: REASON_INVALID_TLS_SECRET,
                message: e.message,
            });
        }
    };
    // A second try lets a call that found the endpoint gone move to the next one in this pass.
    let mut last = None;
    for _ in 0..2 {
        let engine = match connection.engine().await {
            Ok(engine) => engine,
            Err(e) => {
                return Observed::down(Summary::Reconciling {
                    reason: REASON_CLUSTER_UNAVAILABLE,
                    message: e.message,
                });
            }
        };
        let seen =
            async { Ok::<_, crate::swarm::EngineError>((engine.swarm_info().await?, engine.nodes().await?)) };
        match seen.await {
            Ok((info, raw_nodes)) => {
                let (join_tokens_rotated, kept) =
                    join_tokens::publish(cluster, ctx, &engine, &raw_nodes).await;
                if let Err(e) = kept {
                    // The swarm is reached all the same: said (an event series), retried next pass.
                    warn!(cluster = %cluster.name_any(), error = %e, "join tokens not kept");
                    let note = format!("Join tokens not kept: {e}");
                    ctx.publish(cluster, EventType::Warning, "JoinTokensFailed", "Publish", note)
                        .await;
                }
                let nodes = health::node_statuses(&raw_nodes);
                let quorum = health::quorum(&nodes);
                let risk = health::risk(&quorum);
                let leader = quorum.leader.as_deref().unwrap_or("none");
                return Observed {
                    summary: Summary::Ready {
                        reason: REASON_CONNECTED,
                        message: format!(
                            "connected to {}; {}/{} managers reachable, leader {leader}",
                            engine.host(),
                            quorum.reachable,
                            quorum.total
                        ),
                    },
                    active_endpoint: Some(engine.host().to_string()),
                    swarm_id: info.swarm_id,
                    nodes,
                    quorum: Some(quorum),
                    risk,
                    join_tokens_rotated,
                };
            }
            Err(e) => last = Some(e),
        }
    }
    Observed::down(Summary::Reconciling {
        reason: REASON_CLUSTER_UNAVAILABLE,
        message: last.map(|e| e.engine_message()).unwrap_or_default(),
    })
}

/// Events on what changed since the status the API server holds: readiness, the endpoint in use,
/// and quorum risk.
async fn announce(cluster: &SwarmCluster, ctx: &Context, now: &Observed) {
    let before = cluster.status.clone().unwrap_or_default();
    let was = |type_: &str| {
        before
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let ready_before = was(READY).is_some_and(|(s, _)| s == TRUE);
    if ready_before && !now.summary.is_ready() {
        ctx.publish(
            cluster,
            EventType::Warning,
            now.summary.reason(),
            "Connect",
            now.summary.message().to_string(),
        )
        .await;
    }
    if let (Some(from), Some(to)) = (&before.active_endpoint, &now.active_endpoint)
        && from != to
    {
        info!(cluster = %cluster.name_any(), %from, %to, "moved to another manager endpoint");
        let note = format!("moved from {from} to {to}, the next endpoint that works");
        ctx.publish(cluster, EventType::Warning, "Failover", "Connect", note)
            .await;
    }
    let risk_before = was(QUORUM_AT_RISK);
    let risk_now = (flag(now.risk.at_risk), now.risk.reason.to_string());
    if now.quorum.is_some() && risk_before.as_ref() != Some(&risk_now) {
        let type_ = if now.risk.at_risk {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.publish(
            cluster,
            type_,
            now.risk.reason,
            "AssessQuorum",
            now.risk.message.clone(),
        )
        .await;
    }
}

fn flag(on: bool) -> String {
    if on { TRUE } else { FALSE }.to_string()
}

async fn write_status(
    cluster: &SwarmCluster,
    ctx: &Context,
    api: &Api<SwarmCluster>,
    o: &Observed,
) -> Result<(), Error> {
    let previous = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = cluster.metadata.generation;
    let mut conditions = conditions::conditions(previous, generation, &o.summary);
    let risk_status = match (&o.quorum, o.risk.at_risk) {
        (None, false) => UNKNOWN.to_string(),
        (_, at_risk) => flag(at_risk),
    };
    conditions.push(conditions::condition(
        previous,
        generation,
        QUORUM_AT_RISK,
        &risk_status,
        o.risk.reason,
        &o.risk.message,
    ));
    let before = cluster.status.clone().unwrap_or_default();
    let status = SwarmClusterStatus {
        observed_generation: generation,
        conditions,
        active_endpoint: o.active_endpoint.clone(),
        // While no manager answers, keep what was last seen of the swarm and its nodes.
        swarm_id: o.swarm_id.clone().or(before.swarm_id.clone()),
        // None answers: reachable is what we can reach, nothing; the total is the last count seen.
        managers_reachable: Some(o.quorum.as_ref().map_or(0, |q| q.reachable)),
        managers_total: o.quorum.as_ref().map(|q| q.total).or(before.managers_total),
        leader: o.quorum.as_ref().and_then(|q| q.leader.clone()),
        nodes: if o.quorum.is_some() {
            o.nodes.clone()
        } else {
            before.nodes.clone()
        },
        join_tokens_rotated: o
            .join_tokens_rotated
            .clone()
            .or(before.join_tokens_rotated.clone()),
    };
    apply_status(ctx, api, cluster, cluster.status.as_ref(), &status).await
}
