//! Follows each cluster's swarm events (`docker events --filter scope=swarm`: services, networks,
//! secrets, configs, nodes) on its active manager and hands them to the controllers, which wake the
//! resources they concern at once: an out-of-band change is reverted in seconds, not at the next
//! resync. A broken stream is reopened with backoff, through whichever manager the connection moves
//! to; events are not replayed, so every (re)connect also asks for one resync of the whole cluster.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use kube::{
    Resource,
    runtime::reflector::{ObjectRef, Store},
};
use tokio::{
    sync::broadcast::{self, error::RecvError},
    task::JoinHandle,
};
use tracing::{debug, info};

use super::Clusters;
use crate::queue::Queue;

/// How often the set of followed clusters is matched to the SwarmClusters that exist.
const MATCH_EVERY: Duration = Duration::from_secs(1);
/// Longest wait before a broken stream is opened again: a failover moves it within that.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the followed manager is asked whether it still is one: a demoted manager's stream
/// goes quiet instead of ending, and so does one whose host vanished (a half-open connection).
const STILL_MANAGER_EVERY: Duration = Duration::from_secs(3);
/// How long that question may take before the manager counts as gone (it waits its turn under
/// --engine-qps like any call).
const STILL_MANAGER_WITHIN: Duration = Duration::from_secs(10);

/// What the swarm said happened, in the words of the Engine's event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwarmEvent {
    /// A service, network, secret, config or node (`kind` as the Engine says) named `name` changed.
    Changed {
        cluster: String,
        kind: String,
        name: String,
    },
    /// The stream of `cluster` (re)opened; what happened while it was closed is unknown.
    Resync { cluster: String },
}

impl SwarmEvent {
    pub fn cluster(&self) -> &str {
        match self {
            SwarmEvent::Changed { cluster, .. } | SwarmEvent::Resync { cluster } => cluster,
        }
    }
}

/// The events of every cluster, for any number of controllers.
pub type Hub = broadcast::Sender<SwarmEvent>;

pub fn hub() -> Hub {
    broadcast::channel(4096).0
}

/// The resources of `store` that `event` concerns, as a controller trigger. `concerns` says
/// whether a resource is the owner of what changed; a resync or a lagging receiver wakes every
/// resource of the cluster (or of all clusters).
pub fn triggers<K>(
    hub: &Hub,
    store: Store<K>,
    queue: Arc<Queue>,
    concerns: impl Fn(&SwarmEvent, &K) -> bool + Send + 'static,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + swarm_operator_crds::OnCluster + Clone + Send + Sync + 'static,
{
    let rx = hub.subscribe();
    futures::stream::unfold((rx, store, concerns), move |(mut rx, store, concerns)| {
        let queue = queue.clone();
        async move {
            let woken: Vec<ObjectRef<K>> = loop {
                let received = rx.recv().await;
                // The store as it is now, not as it was when the wait began: that may have been
                // before the resource existed.
                let objects = store.state();
                let matching: Vec<ObjectRef<K>> = match received {
                    Ok(event) => objects
                        .iter()
                        .filter(|o| o.cluster_name() == event.cluster())
                        .filter(|o| matches!(event, SwarmEvent::Resync { .. }) || concerns(&event, o))
                        .map(|o| ObjectRef::from_obj(o.as_ref()))
                        .collect(),
                    Err(RecvError::Lagged(missed)) => {
                        debug!(missed, "swarm events came faster than handled; resync of all");
                        objects.iter().map(|o| ObjectRef::from_obj(o.as_ref())).collect()
                    }
                    Err(RecvError::Closed) => return None,
                };
                if !matching.is_empty() {
                    break matching;
                }
            };
            Some((
                futures::stream::iter(queue.requested(woken)),
                (rx, store, concerns),
            ))
        }
    })
    .flatten()
}

/// A follower task that ends with its handle: dropping [`follow_all`] ends every stream it follows.
struct Follower(JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows the events of every cluster this operator serves, and of `default` (which may be the
/// engine of the operator's flags), until dropped.
pub async fn follow_all(clusters: Arc<Clusters>, events: Hub) {
    clusters.wait_until_ready().await;
    let mut followers: HashMap<String, Follower> = HashMap::new();
    loop {
        let mut names = clusters.names();
        names.push(swarm_operator_crds::DEFAULT_CLUSTER.to_string());
        followers.retain(|name, _| names.contains(name));
        for name in names {
            followers
                .entry(name.clone())
                .or_insert_with(|| Follower(tokio::spawn(follow(clusters.clone(), events.clone(), name))));
        }
        tokio::time::sleep(MATCH_EVERY).await;
    }
}

async fn follow(clusters: Arc<Clusters>, hub: Hub, cluster: String) {
    let mut backoff = Duration::ZERO;
    loop {
        let connection = clusters.connection(&cluster).await.ok();
        let engine = match &connection {
            Some(connection) => connection.engine().await.ok(),
            None => None,
        };
        if let (Some(connection), Some(engine)) = (connection, engine) {
            let mut events = Box::pin(engine.swarm_events());
            info!(%cluster, endpoint = engine.host(), "following swarm events");
            connection.forget_listing().await;
            let _ = hub.send(SwarmEvent::Resync {
                cluster: cluster.clone(),
            });
            let mut check = tokio::time::interval(STILL_MANAGER_EVERY);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            check.tick().await;
            loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    _ = check.tick() => match still_manager(&engine).await {
                        Ok(()) => continue,
                        Err(why) => {
                            info!(%cluster, endpoint = engine.host(), %why, "leaving the followed manager");
                            break;
                        }
                    },
                };
                let (kind, name) = match event {
                    Some(Ok(event)) => event,
                    Some(Err(e)) => {
                        info!(%cluster, error = %crate::cause::cause_chain(&e), "swarm event stream broke");
                        break;
                    }
                    None => {
                        info!(%cluster, "swarm event stream ended");
                        break;
                    }
                };
                backoff = Duration::ZERO;
                if !connection.event(&kind, &name) {
                    debug!(%cluster, %kind, %name, "event of our own write");
                    continue;
                }
                let _ = hub.send(SwarmEvent::Changed {
                    cluster: cluster.clone(),
                    kind,
                    name,
                });
            }
            // Whatever ended the stream, the next pick probes the endpoints again: the
            // preferred manager that works now, not the one that just failed.
            engine.set_failed();
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
    }
}

/// Whether the followed endpoint still answers as a manager of an active swarm, in time.
async fn still_manager(engine: &crate::swarm::Engine) -> Result<(), String> {
    match tokio::time::timeout(STILL_MANAGER_WITHIN, engine.swarm_info()).await {
        Err(_) => Err(format!("no answer within {STILL_MANAGER_WITHIN:?}")),
        Ok(Err(e)) => Err(e.engine_message()),
        Ok(Ok(info)) => info.not_a_manager().map_or(Ok(()), Err),
    }
}
