//! What every reconcile is handed: the Kubernetes client, the Engine connection, the event recorder,
//! timing settings and per-object backoff state.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use kube::{
    Client, Resource,
    runtime::{
        events::{Event, EventType, Recorder, Reporter},
        reflector::ObjectRef,
    },
};
use rand::Rng;
use tracing::warn;

use swarm_operator_crds::OnCluster;

use crate::{cluster::Clusters, swarm::Engine};

#[derive(Clone, Debug)]
pub struct Settings {
    /// Safety-net re-check of a converged object (drift made out of band).
    pub resync_interval: Duration,
    /// Re-check while tasks start or an update rolls.
    pub progress_interval: Duration,
    /// First retry after an error; doubles per consecutive failure up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync_interval: Duration::from_secs(60),
            progress_interval: Duration::from_secs(2),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
        }
    }
}

pub struct Context {
    pub client: Client,
    /// The SwarmClusters' connections; resources get their engine through `engine_for`.
    pub clusters: Clusters,
    /// Every cluster's swarm events, for the controllers' triggers.
    pub events: crate::cluster::Hub,
    pub recorder: Recorder,
    pub settings: Settings,
    failures: Mutex<HashMap<String, u32>>,
    /// IDs of Swarm services whose creation this process announced.
    announced: Mutex<std::collections::HashSet<String>>,
}

impl Context {
    pub fn new(client: Client, clusters: Clusters, settings: Settings) -> Self {
        let reporter = Reporter {
            controller: "swarm-operator".into(),
            instance: std::env::var("POD_NAME")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            clusters,
            events: crate::cluster::hub(),
            settings,
            failures: Mutex::default(),
            announced: Mutex::default(),
        }
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

    /// True the first time this process sees Swarm object `id` created (so its event is said once).
    pub fn first_sight(&self, id: &str) -> bool {
        self.announced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string())
    }

    /// Forgets `obj`'s failures after a successful pass.
    pub fn succeeded<K: Resource<DynamicType = ()>>(&self, obj: &ObjectRef<K>) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&obj.to_string());
    }
}

/// The API of a namespaced kind over one namespace, or over all when `namespace` is None.
pub fn scoped_api<K>(client: Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client, ns),
        None => kube::Api::all(client),
    }
}

/// Runs one reconcile pass of `obj`, observed: counted and timed by kind and outcome, and inside a
/// span that names the resource, its Swarm object and cluster, so every log line of the pass
/// carries them.
pub async fn observed<K, F>(
    obj: &K,
    swarm_object: &str,
    pass: F,
) -> Result<kube::runtime::controller::Action, crate::Error>
where
    K: Resource<DynamicType = ()> + OnCluster,
    F: Future<Output = Result<kube::runtime::controller::Action, crate::Error>>,
{
    use tracing::Instrument;
    let kind = K::kind(&());
    let metrics = crate::metrics::metrics();
    let _running = metrics.in_flight(&kind);
    let start = std::time::Instant::now();
    let name = obj.meta().name.as_deref().unwrap_or_default();
    let resource = match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    let span = tracing::info_span!("reconcile", %resource, swarm_object, cluster = obj.cluster_name());
    let result = crate::queue::pass(obj, pass.instrument(span)).await;
    metrics.reconciled(&kind, start, result.is_ok());
    result
}

/// Longest wait before a resource whose cluster was unavailable looks again.
const CLUSTER_RETRY: Duration = Duration::from_secs(5);

/// A controller over `api` that wakes on what users change (spec, labels, annotations, finalizers,
/// deletion, which bumps the generation) and not on the status it writes itself: a status write
/// would otherwise cost one more pass of every object.
pub fn user_changes_controller<K>(api: kube::Api<K>) -> kube::runtime::Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector, watcher};
    let (reader, writer) = reflector::store();
    let changes = predicates::generation
        .combine(predicates::finalizers)
        .combine(predicates::labels)
        .combine(predicates::annotations);
    // managedFields are the larger part of a small object and nothing here reads them.
    let watch = watcher(api, watcher::Config::default().any_semantic()).modify(|obj| {
        obj.meta_mut().managed_fields = None;
    });
    let stream = reflector(writer, watch)
        .applied_objects()
        .predicate_filter(changes, Default::default())
        .inspect(crate::queue::seen);
    kube::runtime::Controller::for_stream(stream, reader)
}

/// Finalizer every kind puts on its resources, so the Swarm object goes (or is released) first.
pub const FINALIZER: &str = "swarmoperator.io/cleanup";

/// What every controller does after a failed pass: an invalid spec waits for a change; waiting for
/// something else (services leaving a network) looks again shortly; anything else backs off per
/// object, exponentially.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: std::sync::Arc<K>,
    err: &crate::Error,
    ctx: std::sync::Arc<Context>,
) -> kube::runtime::controller::Action {
    use kube::runtime::controller::Action;
    let object = ObjectRef::from_obj(obj.as_ref());
    let cause = crate::error::cause_chain(err);
    if err.waits_for_change() {
        warn!(%object, error = %cause, "waiting for a spec change");
        return Action::await_change();
    }
    if err.is_waiting() {
        tracing::debug!(%object, "{err}");
        return crate::queue::retry(obj.as_ref(), ctx.settings.progress_interval);
    }
    if err.is_cluster_unavailable() {
        // Back soon after the cluster is: the backoff grows, but never past a few seconds.
        let delay = ctx.backoff(&object).min(CLUSTER_RETRY);
        tracing::debug!(%object, error = %cause, retry_in = ?delay, "cluster unavailable");
        return crate::queue::retry(obj.as_ref(), delay);
    }
    let delay = ctx.backoff(&object);
    warn!(%object, error = %cause, retry_in = ?delay, "reconcile failed");
    crate::queue::retry(obj.as_ref(), delay)
}
