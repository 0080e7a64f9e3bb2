//! Follows each SwarmCluster's node events (`docker events --filter type=node`) on its active
//! manager, so a node going down or a manager losing reachability shows in status at once, not at
//! the next resync. A broken stream is reopened with backoff, through whichever manager the
//! connection moves to, and the cluster is looked at once on every (re)connect because events
//! are not replayed.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;
use swarm_operator_crds::SwarmCluster;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::debug;

use crate::context::Context;

/// How often the set of followed clusters is matched to the SwarmClusters that exist.
const MATCH_EVERY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A SwarmCluster to look at, each time one of its nodes changes.
pub fn node_changes(ctx: Arc<Context>) -> impl Stream<Item = ObjectRef<SwarmCluster>> + Send {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(follow_all(ctx, tx));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

async fn follow_all(ctx: Arc<Context>, tx: mpsc::Sender<ObjectRef<SwarmCluster>>) {
    ctx.clusters.wait_until_ready().await;
    let mut followers: HashMap<String, JoinHandle<()>> = HashMap::new();
    while !tx.is_closed() {
        let names = ctx.clusters.names();
        followers.retain(|name, task| {
            let keep = names.contains(name);
            if !keep {
                task.abort();
            }
            keep
        });
        for name in names {
            followers
                .entry(name.clone())
                .or_insert_with(|| tokio::spawn(follow(ctx.clone(), name, tx.clone())));
        }
        tokio::time::sleep(MATCH_EVERY).await;
    }
}

async fn follow(ctx: Arc<Context>, name: String, tx: mpsc::Sender<ObjectRef<SwarmCluster>>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let engine = match ctx.clusters.connection(&name).await {
            Ok(connection) => connection.engine().await.ok(),
            Err(_) => None,
        };
        if let Some(engine) = engine {
            let mut events = Box::pin(engine.node_events());
            // Whatever happened while no stream was open is seen by this one look.
            if tx.send(ObjectRef::new(&name)).await.is_err() {
                return;
            }
            debug!(cluster = %name, endpoint = engine.host(), "following node events");
            while let Some(event) = events.next().await {
                if event.is_err() {
                    break;
                }
                backoff = Duration::from_millis(500);
                if tx.send(ObjectRef::new(&name)).await.is_err() {
                    return;
                }
            }
            debug!(cluster = %name, "node event stream ended");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
