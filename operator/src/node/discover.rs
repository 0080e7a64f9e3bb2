//! Finds the nodes of every swarm this operator serves and makes a SwarmNode for each node that
//! has none: at once on a node event (a node joined), and every `--resync-seconds` besides. A
//! SwarmNode made here has no spec: it only reports, until someone asks it for something.

use std::sync::Arc;

use kube::{
    Api,
    api::{ObjectMeta, PostParams},
    runtime::reflector::Store,
};
use swarm_operator_crds::{
    ClusterRef, DEFAULT_CLUSTER, OnCluster, SwarmNode, SwarmNodeSpec, node::DISCOVERED,
};
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use super::{plan::hostname, serves};
use crate::{connections::SwarmEvent, context::Context, error::Error};

pub async fn run(ctx: Arc<Context>, store: Store<SwarmNode>) {
    let mut events = ctx.events.subscribe();
    let mut every = tokio::time::interval(ctx.settings.resync_interval);
    loop {
        let clusters: Vec<String> = tokio::select! {
            _ = every.tick() => served(&ctx),
            event = events.recv() => match event {
                Ok(SwarmEvent::Changed { cluster, kind, .. }) if kind == "node" => vec![cluster],
                Ok(SwarmEvent::Resync { cluster }) => vec![cluster],
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => served(&ctx),
                Err(RecvError::Closed) => return,
            },
        };
        for cluster in clusters.iter().filter(|c| serves(&ctx, c)) {
            if let Err(e) = discover(&ctx, &store, cluster).await {
                debug!(%cluster, error = %e, "nodes not discovered this time");
            }
        }
    }
}

/// The clusters whose nodes this operator keeps.
fn served(ctx: &Context) -> Vec<String> {
    let mut names = ctx.clusters.names();
    if !names.iter().any(|n| n == DEFAULT_CLUSTER) {
        names.push(DEFAULT_CLUSTER.to_string());
    }
    names
}

/// The name of the SwarmNode made for `hostname` of `cluster`, if the hostname can be part of
/// an object name: the hostname in cluster `default`, `<cluster>.<hostname>` elsewhere.
pub fn name_for(cluster: &str, hostname: &str) -> Option<String> {
    let name = if cluster == DEFAULT_CLUSTER {
        hostname.to_string()
    } else {
        format!("{cluster}.{hostname}")
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    valid.then_some(name)
}

async fn discover(ctx: &Context, store: &Store<SwarmNode>, cluster: &str) -> Result<(), Error> {
    let engine = ctx.clusters.connection(cluster).await?.engine().await?;
    let known: Vec<String> = store
        .state()
        .iter()
        .filter(|n| n.cluster_name() == cluster)
        .map(|n| n.hostname())
        .collect();
    let api: Api<SwarmNode> = Api::all(ctx.client.clone());
    for node in engine.nodes().await? {
        let hostname = hostname(&node);
        if known.contains(&hostname) {
            continue;
        }
        let Some(name) = name_for(cluster, &hostname) else {
            debug!(%hostname, "no SwarmNode name can be made of this hostname");
            continue;
        };
        let made = SwarmNode {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(DISCOVERED.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            spec: SwarmNodeSpec {
                cluster_ref: (cluster != DEFAULT_CLUSTER).then(|| ClusterRef {
                    name: cluster.to_string(),
                }),
                hostname: (name != hostname).then_some(hostname.clone()),
                ..Default::default()
            },
            status: None,
        };
        match api.create(&PostParams::default(), &made).await {
            Ok(_) => debug!(%name, "made a SwarmNode for a node found"),
            // Someone made it meanwhile (a user, or the watch had not shown it yet).
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(source) => {
                return Err(Error::Kube {
                    operation: "create SwarmNode",
                    object: name,
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swarmnode_is_named_after_the_hostname_and_its_cluster() {
        assert_eq!(name_for("default", "vm-1").as_deref(), Some("vm-1"));
        assert_eq!(name_for("prod", "worker-2").as_deref(), Some("prod.worker-2"));
        assert_eq!(name_for("default", "Laptop_1"), None, "not a Kubernetes name");
    }
}
