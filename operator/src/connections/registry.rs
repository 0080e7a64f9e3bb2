//! Which connection serves a resource: the SwarmCluster its `clusterRef` names (or `default`),
//! read from the operator's cache of SwarmClusters; with no SwarmCluster `default`, the engine the
//! operator was started with. Connections are kept per cluster and rebuilt when its endpoints or
//! TLS files change.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use swarm_operator_crds::{DEFAULT_CLUSTER, SwarmCluster, cluster::SecretRef};

use super::connection::{Connection, Unavailable};
use crate::swarm::{EngineCalls, TlsFiles};

pub struct Clusters {
    client: Client,
    store: Store<SwarmCluster>,
    /// The engine from the operator's flags, for resources of cluster `default` when no
    /// SwarmCluster of that name exists.
    fallback: Arc<Connection>,
    /// By cluster name: the connection and the (uid, generation) of the SwarmCluster it was made for.
    connections: Mutex<HashMap<String, (Made, Arc<Connection>)>>,
    /// True once the store holds every SwarmCluster (see `cluster::controller`).
    ready: tokio::sync::watch::Receiver<bool>,
    /// The --engine-qps bound and call counters every connection's engines share.
    calls: Arc<EngineCalls>,
    /// Whether resources on the fallback engine may adopt unmanaged services (--allow-adoption).
    fallback_allows_adoption: bool,
}

type Made = (Option<String>, Option<i64>);

impl Clusters {
    pub fn new(
        client: Client,
        store: Store<SwarmCluster>,
        ready: tokio::sync::watch::Receiver<bool>,
        fallback_endpoint: &str,
        fallback_allows_adoption: bool,
        calls: Arc<EngineCalls>,
    ) -> Self {
        Clusters {
            client,
            store,
            fallback: Arc::new(Connection::new(
                DEFAULT_CLUSTER,
                vec![fallback_endpoint.to_string()],
                None,
                None,
                calls.clone(),
            )),
            connections: Mutex::default(),
            ready,
            calls,
            fallback_allows_adoption,
        }
    }

    /// Resolves when the cache of SwarmClusters has been filled once, so no resource is sent to
    /// the fallback engine before a SwarmCluster `default` could be seen.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.clone();
        if ready.wait_for(|r| *r).await.is_err() {
            tracing::warn!("the SwarmCluster watch ended before it listed them all");
        }
    }

    /// Names of the SwarmClusters this operator serves.
    pub fn names(&self) -> Vec<String> {
        self.store.state().iter().map(|c| c.name_any()).collect()
    }

    /// Whether resources on the cluster named `name` may adopt Swarm services they did not make:
    /// the SwarmCluster's `allowAdoption`, or --allow-adoption for the fallback engine.
    pub fn adoption_allowed(&self, name: &str) -> bool {
        match self.store.get(&ObjectRef::new(name)) {
            Some(cluster) => cluster.spec.allow_adoption,
            None => name == DEFAULT_CLUSTER && self.fallback_allows_adoption,
        }
    }

    /// Which namespaces may use the cluster named `name`, when its SwarmCluster says.
    pub fn namespace_selector(
        &self,
        name: &str,
    ) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector> {
        self.store
            .get(&ObjectRef::new(name))?
            .spec
            .namespace_selector
            .clone()
    }

    /// The connection of the cluster named `name`.
    pub async fn connection(&self, name: &str) -> Result<Arc<Connection>, Unavailable> {
        match self.store.get(&ObjectRef::new(name)) {
            Some(cluster) => {
                // The Secret is read again only by the cluster's own reconcile (`refresh`).
                if let Some(kept) = self.kept(&cluster) {
                    return Ok(kept);
                }
                self.refresh(&cluster).await
            }
            None if name == DEFAULT_CLUSTER => Ok(self.fallback.clone()),
            None => Err(Unavailable {
                cluster: name.to_string(),
                message: "no SwarmCluster of that name is served by this operator".into(),
            }),
        }
    }

    /// The connection for `cluster` as its spec and TLS Secret say now, reusing the one kept
    /// while they are unchanged.
    pub async fn refresh(&self, cluster: &SwarmCluster) -> Result<Arc<Connection>, Unavailable> {
        let name = cluster.name_any();
        let tls = match &cluster.spec.tls {
            Some(secret) => Some(self.tls_files(secret).await.map_err(|message| Unavailable {
                cluster: name.clone(),
                message,
            })?),
            None => None,
        };
        let made_for = (cluster.uid(), cluster.metadata.generation);
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((made, kept)) = connections.get_mut(&name)
            && kept.matches(&cluster.spec.endpoints, tls.as_ref())
        {
            *made = made_for;
            return Ok(kept.clone());
        }
        // The swarm the status saw for this very spec; a new spec may name another swarm.
        let status = cluster.status.as_ref();
        let swarm = status
            .filter(|s| s.observed_generation == cluster.metadata.generation)
            .and_then(|s| s.swarm_id.clone());
        let made = Arc::new(Connection::new(
            &name,
            cluster.spec.endpoints.clone(),
            tls,
            swarm,
            self.calls.clone(),
        ));
        connections.insert(name, (made_for, made.clone()));
        Ok(made)
    }

    fn kept(&self, cluster: &SwarmCluster) -> Option<Arc<Connection>> {
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let (made, kept) = connections.get(&cluster.name_any())?;
        (*made == (cluster.uid(), cluster.metadata.generation)).then(|| kept.clone())
    }

    /// Reads ca.pem, cert.pem and key.pem from the Secret. Errors name keys, never content.
    async fn tls_files(&self, secret: &SecretRef) -> Result<TlsFiles, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &secret.namespace);
        let where_ = format!("TLS Secret {}/{}", secret.namespace, secret.name);
        let found = api
            .get_opt(&secret.name)
            .await
            .map_err(|e| format!("cannot read {where_}: {e}"))?
            .ok_or_else(|| format!("{where_} does not exist"))?;
        let data = found.data.unwrap_or_default();
        let key = |k: &str| {
            data.get(k)
                .map(|v| v.0.clone())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{where_} has no {k}"))
        };
        Ok(TlsFiles {
            ca: key("ca.pem")?,
            cert: key("cert.pem")?,
            key: key("key.pem")?,
        })
    }
}
