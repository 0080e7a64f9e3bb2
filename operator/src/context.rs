//! What every reconcile is handed: the Kubernetes client, the swarms' connections and events, the
//! event recorder, timing settings, per-object backoff state, and the process's instruments (metrics
//! and the queue mirror), owned here rather than in globals so two operators can share a process.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// How long a created service's ID is remembered: a pass that still reads a status from before
/// the create (the watch lags the write) must not take the service for a stranger's or a lost
/// create's. Minutes, where the lag is seconds.
const ANNOUNCED_FOR: Duration = Duration::from_secs(600);

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Client, Resource,
    runtime::{
        events::{Event, EventType},
        reflector::ObjectRef,
    },
};
use rand::Rng;
use tracing::{debug, warn};

use swarm_operator_crds::OnCluster;

use crate::{
    connections::{Clusters, Hub},
    expiring::Expiring,
    metrics::Metrics,
    queue::Queues,
    recorder::Recorder,
    swarm::Engine,
};

#[derive(Clone, Debug)]
pub struct Settings {
    /// Safety-net re-check of a converged object (drift made out of band).
    pub resync_interval: Duration,
    /// Re-check while tasks start or an update rolls.
    pub progress_interval: Duration,
    /// First retry after an error; doubles per consecutive failure up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The operator serves only the SwarmClusters `--cluster-selector` picks: the nodes of its
    /// flags' engine are left to the operator that serves them all.
    pub selected_clusters_only: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync_interval: Duration::from_secs(60),
            progress_interval: Duration::from_secs(2),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            selected_clusters_only: false,
        }
    }
}

pub struct Context {
    pub client: Client,
    /// The SwarmClusters' connections; resources get their engine through `engine_for`.
    pub clusters: Arc<Clusters>,
    /// Every cluster's swarm events, for the controllers' triggers.
    pub events: Hub,
    pub recorder: Recorder,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// The mirror of every controller's reconcile queue (see `queue`).
    pub queues: Arc<Queues>,
    failures: Mutex<HashMap<String, u32>>,
    /// IDs of Swarm services this process created, or announced as created, in the last
    /// `ANNOUNCED_FOR`: long enough for any cached status to show the ID, so memory follows the
    /// rate of creation, not the number of services ever made.
    announced: Mutex<Expiring<String, ()>>,
    /// The versions this process wrote a status over, by object: a cached copy still at one of
    /// them is older than what the API server holds (see `current`).
    superseded: Mutex<Expiring<String, String>>,
    /// What services use, as each scope's SwarmService controller watches it (by its namespace,
    /// None for all): its passes read there instead of with a GET per reference.
    service_dependencies: Mutex<HashMap<Option<String>, crate::service::DependencyStores>>,
}

/// How long a superseded version is remembered: far longer than a watch takes to catch up.
const SUPERSEDED_FOR: Duration = Duration::from_secs(60);

/// Pure: whether a copy at `version` is one this process has written a status over. Versions are
/// only compared for equality, as Kubernetes allows.
fn superseded_copy(superseded: Option<&String>, version: Option<&String>) -> bool {
    version.is_some() && superseded == version
}

fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

impl Context {
    pub fn new(
        client: Client,
        clusters: Arc<Clusters>,
        settings: Settings,
        metrics: Arc<Metrics>,
        queues: Arc<Queues>,
    ) -> Self {
        let instance = std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok());
        Context {
            recorder: Recorder::new(client.clone(), "swarm-operator", instance),
            client,
            clusters,
            events: crate::connections::hub(),
            settings,
            metrics,
            queues,
            failures: Mutex::default(),
            announced: Mutex::new(Expiring::new(ANNOUNCED_FOR)),
            superseded: Mutex::new(Expiring::new(SUPERSEDED_FOR)),
            service_dependencies: Mutex::default(),
        }
    }

    /// The SwarmService controller of `scope` (a namespace, None for all) keeps `stores`.
    pub fn serve_service_dependencies(&self, scope: Option<&str>, stores: crate::service::DependencyStores) {
        let mut all = self
            .service_dependencies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        all.insert(scope.map(str::to_string), stores);
    }

    /// What services of `namespace` use, as the controller serving them watches it.
    pub fn service_dependencies(&self, namespace: &str) -> Option<crate::service::DependencyStores> {
        let all = self
            .service_dependencies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        all.get(&Some(namespace.to_string()))
            .or_else(|| all.get(&None))
            .cloned()
    }

    /// The engine of a working manager of the cluster `obj` lives on.
    pub async fn engine_for<K: OnCluster>(&self, obj: &K) -> Result<Engine, crate::Error> {
        let connection = self.clusters.connection(obj.cluster_name()).await?;
        Ok(connection.engine().await?)
    }

    /// Publishes an event on `obj`; a failure to publish is logged, never fatal.
    pub async fn publish<K>(&self, obj: &K, type_: EventType, reason: &str, action: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            warn!(error = %e, reason, "could not publish event");
        }
    }

    /// Next retry delay for `obj` after one more consecutive failure: exponential with jitter.
    pub fn backoff<K: Resource<DynamicType = ()>>(&self, obj: &ObjectRef<K>) -> Duration {
        let attempts = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(obj.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let base = self
            .settings
            .min_backoff
            .saturating_mul(1u32 << attempts.min(16).saturating_sub(1));
        let capped = base.min(self.settings.max_backoff);
        // Up to +50% jitter so objects failing together do not retry in lockstep.
        let jitter = rand::rng().random_range(0.0..0.5);
        capped.mul_f64(1.0 + jitter).min(self.settings.max_backoff)
    }

    /// True the first time this process knows Swarm service `id` as created (its own create, or
    /// one whose answer was lost), so a lost create is announced once.
    pub fn first_announcement(&self, id: &str) -> bool {
        self.announced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), ())
            .is_none()
    }

    /// Notes that this process wrote a status over `obj` as it is (its version now superseded).
    pub fn wrote_over<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        if let Some(version) = obj.meta().resource_version.clone() {
            self.superseded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(object_key(obj), version);
        }
    }

    /// The object a pass should work on: the cached copy, unless this process has since written a
    /// status over that very version (the watch has not caught up yet), then the API server's.
    /// A pass on the older copy would take its own create for someone else's, or put older facts
    /// back. `None` when it is gone.
    pub async fn current<K>(&self, obj: Arc<K>) -> Result<Option<Arc<K>>, crate::Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let stale = {
            let mut superseded = self.superseded.lock().unwrap_or_else(|p| p.into_inner());
            superseded_copy(
                superseded.get(&object_key(obj.as_ref())),
                obj.meta().resource_version.as_ref(),
            )
        };
        if !stale {
            return Ok(Some(obj));
        }
        debug!(object = %object_key(obj.as_ref()), "the cached copy is older than this process's status write: reading it");
        let api: kube::Api<K> = kube::Api::namespaced(
            self.client.clone(),
            obj.meta().namespace.as_deref().unwrap_or_default(),
        );
        let name = obj.meta().name.clone().unwrap_or_default();
        let fresh = api.get_opt(&name).await.map_err(|source| crate::Error::Kube {
            operation: "get",
            object: name,
            source,
        })?;
        Ok(fresh.map(Arc::new))
    }

    /// Forgets `obj`'s failures after a successful pass.
    pub fn succeeded<K: Resource<DynamicType = ()>>(&self, obj: &ObjectRef<K>) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&obj.to_string());
    }
}

/// How a resource is named in errors, logs and the reconcile span: `Kind namespace/name`, or
/// `Kind name` when cluster-scoped.
pub fn resource_name<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    let kind = K::kind(&());
    let name = obj.meta().name.as_deref().unwrap_or_default();
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod superseded_tests {
    use super::superseded_copy;

    #[test]
    fn only_the_very_version_written_over_is_read_again() {
        let (old, new) = ("41".to_string(), "42".to_string());
        assert!(
            superseded_copy(Some(&old), Some(&old)),
            "the watch has not shown the write"
        );
        assert!(!superseded_copy(Some(&old), Some(&new)), "the watch caught up");
        assert!(!superseded_copy(None, Some(&old)), "nothing written over");
        assert!(!superseded_copy(None, None));
    }
}
