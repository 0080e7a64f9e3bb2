//! The scaffolding every controller shares: the watch that wakes on what users change, the
//! finalizer name, the observed pass (span, metrics, queue mirror), the error policy, and the loop
//! that drives a controller until shutdown.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Resource,
    runtime::{
        Controller,
        controller::{Action, Config as ControllerConfig},
        reflector::ObjectRef,
    },
};
use swarm_operator_crds::OnCluster;
use tracing::{debug, warn};

use crate::{
    cause::cause_chain,
    context::{Context, resource_name},
    error::Error,
    queue::Queue,
};

/// Finalizer every kind puts on its resources, so the Swarm object goes (or is released) first.
pub const FINALIZER: &str = "swarmoperator.io/cleanup";

/// Longest wait before a resource whose cluster was unavailable looks again.
const CLUSTER_RETRY: Duration = Duration::from_secs(5);

/// How every watch retries after the API server failed it (restarted, unreachable): soon, then
/// doubling, never more than `WATCH_RETRY_CAP` apart, so a change made once the API server is back
/// is seen within seconds. client-go's 30 s cap would leave the operator deaf for that long.
pub fn watch_backoff() -> kube::runtime::watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(WATCH_RETRY_CAP)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// Longest wait between two attempts of a failed watch.
pub const WATCH_RETRY_CAP: Duration = Duration::from_secs(2);

/// The objects of `api` touched (created, changed, deleted), watched with [`watch_backoff`]: what
/// a controller's `.watches_stream()` wakes its own objects on.
pub fn touched<O>(
    api: kube::Api<O>,
    config: kube::runtime::watcher::Config,
) -> impl futures::Stream<Item = Result<O, kube::runtime::watcher::Error>> + Send + 'static
where
    O: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use kube::runtime::{WatchStreamExt, watcher};
    watcher(api, config).backoff(watch_backoff()).touched_objects()
}

/// The objects of `api`, kept in a store as [`touched`] sees them change (without what
/// [`forget_unread`] drops), and the stream of those changes.
#[allow(clippy::type_complexity)]
pub fn stored<O>(
    api: kube::Api<O>,
    config: kube::runtime::watcher::Config,
) -> (
    kube::runtime::reflector::Store<O>,
    impl futures::Stream<Item = Result<O, kube::runtime::watcher::Error>> + Send + 'static,
)
where
    O: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::WatchStreamExt;
    let (reader, events) = reflected(api, config);
    (reader, events.touched_objects())
}

/// A watch of `api` (retried with [`watch_backoff`]) feeding a store of its objects, without
/// what [`forget_unread`] drops: the store and the watch's events.
#[allow(clippy::type_complexity)]
fn reflected<O>(
    api: kube::Api<O>,
    config: kube::runtime::watcher::Config,
) -> (
    kube::runtime::reflector::Store<O>,
    impl futures::Stream<Item = Result<kube::runtime::watcher::Event<O>, kube::runtime::watcher::Error>>
    + Send
    + 'static,
)
where
    O: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (reader, writer) = reflector::store();
    let watch = watcher(api, config)
        .backoff(watch_backoff())
        .modify(forget_unread);
    (reader, reflector(writer, watch))
}

/// The API of a namespaced kind over one namespace, or over all when `namespace` is None.
pub fn scoped_api<K>(client: kube::Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client, ns),
        None => kube::Api::all(client),
    }
}

/// A controller over `api` that wakes on what users change (spec, labels, annotations, finalizers,
/// deletion, which bumps the generation) and not on the status it writes itself: a status write
/// would otherwise cost one more pass of every object.
pub fn user_changes_controller<K>(api: kube::Api<K>, queue: Arc<Queue>) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
    let changes = predicates::generation
        .combine(predicates::finalizers)
        .combine(predicates::labels)
        .combine(predicates::annotations);
    let (reader, events) = reflected(api, watcher::Config::default().any_semantic());
    let stream = events
        .applied_objects()
        .predicate_filter(changes, Default::default())
        .inspect(move |item| queue.watched(item));
    Controller::for_stream(stream, reader)
}

/// kubectl's client-side apply keeps the whole object it applied in this annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what a store need not hold of an object: its managedFields (the larger part of a small
/// object) and kubectl's copy of it (a client-side apply). Nothing here reads either.
pub fn forget_unread<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Runs `controller` with `reconcile` and the shared error policy until a shutdown signal.
pub async fn drive<K, R, F>(controller: Controller<K>, reconcile: R, ctx: Arc<Context>, concurrency: u16)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    R: FnMut(Arc<K>, Arc<Context>) -> F,
    F: Future<Output = Result<Action, Error>> + Send + 'static,
{
    drive_with(
        controller,
        reconcile,
        ctx,
        ControllerConfig::default().concurrency(concurrency),
    )
    .await
}

/// [`drive`] with a controller configuration of its own (a debounce).
pub async fn drive_with<K, R, F>(
    controller: Controller<K>,
    reconcile: R,
    ctx: Arc<Context>,
    config: ControllerConfig,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    R: FnMut(Arc<K>, Arc<Context>) -> F,
    F: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let queue = ctx.queues.of::<K>();
    controller
        .with_config(config)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            queue.not_found(&result);
            match result {
                Ok((obj, action)) => debug!(object = %obj, ?action, "reconciled"),
                Err(e) => debug!(error = %cause_chain(&e), "reconcile failed"),
            }
            futures::future::ready(())
        })
        .await;
}

/// Runs one reconcile pass of `obj`, observed: counted and timed by kind and outcome, and inside a
/// span that names the resource, its Swarm object and cluster, so every log line of the pass
/// carries them.
pub fn observed<'a, K, F>(
    ctx: &'a Context,
    obj: &'a K,
    swarm_object: &'a str,
    pass: F,
) -> impl Future<Output = Result<Action, Error>> + 'a
where
    K: Resource<DynamicType = ()> + OnCluster,
    F: Future<Output = Result<Action, Error>> + 'a,
{
    use tracing::Instrument;
    // The pass goes on the heap first: carried by value through the span, the queue's task-local
    // scope and this future, each level keeping room for it, a service's pass (31 KB) made every
    // running pass's task 126 KB.
    let pass = Box::pin(pass);
    async move {
        let kind = K::kind(&());
        let _running = ctx.metrics.in_flight(&kind);
        let start = std::time::Instant::now();
        let resource = resource_name(obj);
        let span = tracing::info_span!("reconcile", %resource, swarm_object, cluster = obj.cluster_name());
        let result = ctx.queues.of::<K>().pass(obj, pass.instrument(span)).await;
        ctx.metrics.reconciled(&kind, start, result.is_ok());
        result
    }
}

/// What every controller does after a failed pass: an invalid spec waits for a change; waiting for
/// something else (services leaving a network) looks again shortly; anything else backs off per
/// object, exponentially.
pub fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    let object = ObjectRef::from_obj(obj.as_ref());
    let queue = ctx.queues.of::<K>();
    let cause = cause_chain(err);
    if err.waits_for_change() {
        warn!(%object, error = %cause, "waiting for a spec change");
        return Action::await_change();
    }
    if err.is_waiting() {
        debug!(%object, "{err}");
        return queue.retry(obj.as_ref(), ctx.settings.progress_interval);
    }
    if err.is_cluster_unavailable() {
        // Back soon after the cluster is: the backoff grows, but never past a few seconds.
        let delay = ctx.backoff(&object).min(CLUSTER_RETRY);
        debug!(%object, error = %cause, retry_in = ?delay, "cluster unavailable");
        return queue.retry(obj.as_ref(), delay);
    }
    let delay = ctx.backoff(&object);
    warn!(%object, error = %cause, retry_in = ?delay, "reconcile failed");
    queue.retry(obj.as_ref(), delay)
}
