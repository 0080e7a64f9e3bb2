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

/// What a watched kind is: a Kubernetes resource the watches decode, the stores hold and the
/// controllers' tasks share.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

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
    O: Watched,
{
    use kube::runtime::WatchStreamExt;
    let (reader, writer) = kube::runtime::reflector::store();
    (reader, reflected_into(writer, api, config).touched_objects())
}

/// A watch of `api` (retried with [`watch_backoff`]) feeding the store of `writer` (which its
/// caller may have handed readers of) without what [`forget_unread`] drops: the watch's events.
fn reflected_into<O>(
    writer: kube::runtime::reflector::store::Writer<O>,
    api: kube::Api<O>,
    config: kube::runtime::watcher::Config,
) -> impl futures::Stream<Item = Result<kube::runtime::watcher::Event<O>, kube::runtime::watcher::Error>>
+ Send
+ 'static
where
    O: Watched,
{
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let watch = watcher(api, config)
        .backoff(watch_backoff())
        .modify(forget_unread);
    reflector(writer, watch)
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
    K: Watched,
{
    let (_, writer) = kube::runtime::reflector::store();
    user_changes_controller_sharing(api, queue, writer, |_: &K| {})
}

/// [`user_changes_controller`] whose watch fills the store of `writer`, so that another
/// controller can read the same objects rather than watch and hold them a second time, and calls
/// `touched` with every object the watch reports (created, changed, its status too, deleted, or
/// listed again) once the store has it: what that other controller wakes on.
pub fn user_changes_controller_sharing<K>(
    api: kube::Api<K>,
    queue: Arc<Queue>,
    writer: kube::runtime::reflector::store::Writer<K>,
    touched: impl Fn(&K) + Send + 'static,
) -> Controller<K>
where
    K: Watched,
{
    use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
    let changes = predicates::generation
        .combine(predicates::finalizers)
        .combine(predicates::labels)
        .combine(predicates::annotations);
    let reader = writer.as_reader();
    let listed = reader.clone();
    let events =
        reflected_into(writer, api, watcher::Config::default().any_semantic()).inspect(move |event| {
            if let Ok(event) = event {
                report_touched(event, &listed, &touched);
            }
        });
    let stream = events
        .applied_objects()
        .predicate_filter(changes, Default::default())
        .inspect(move |item| queue.watched(item));
    Controller::for_stream(stream, reader)
}

/// Calls `touched` with the objects `event` of a watch created, changed or deleted, once `store`
/// has taken it: a relist's only once it has ended (the store takes them all then), as the store
/// has them.
fn report_touched<K: Resource<DynamicType = ()> + Clone>(
    event: &kube::runtime::watcher::Event<K>,
    store: &kube::runtime::reflector::Store<K>,
    touched: &impl Fn(&K),
) {
    use kube::runtime::watcher::Event;
    match event {
        Event::Apply(obj) | Event::Delete(obj) => touched(obj),
        Event::InitDone => store.state().iter().for_each(|obj| touched(obj)),
        Event::Init | Event::InitApply(_) => {}
    }
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
    K: Watched,
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
    K: Watched,
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{reflector, watcher::Event};

    use super::report_touched;

    fn cm(name: &str, data: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.metadata.namespace = Some("ns".into());
        cm.data = Some([("k".to_string(), data.to_string())].into());
        cm
    }

    /// What a controller sharing its watch reports to the other: every change and deletion,
    /// after the store has it; a relist's objects once the store has taken them all.
    #[test]
    fn a_shared_watch_reports_what_its_store_has_taken() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let seen = Mutex::new(Vec::new());
        let touched = |obj: &ConfigMap| {
            let in_store = store
                .get(&reflector::ObjectRef::from_obj(obj))
                .map(|o| o.data.clone());
            seen.lock()
                .unwrap()
                .push((obj.metadata.name.clone().unwrap(), in_store));
        };
        let mut step = |event: Event<ConfigMap>| {
            writer.apply_watcher_event(&event);
            report_touched(&event, &store, &touched);
            std::mem::take(&mut *seen.lock().unwrap())
        };
        let data = |v: &str| Some(cm("x", v).data);
        assert_eq!(step(Event::Init), []);
        assert_eq!(step(Event::InitApply(cm("a", "1"))), []);
        assert_eq!(step(Event::InitDone), [("a".to_string(), data("1"))]);
        assert_eq!(step(Event::Apply(cm("a", "2"))), [("a".to_string(), data("2"))]);
        assert_eq!(step(Event::Apply(cm("b", "1"))), [("b".to_string(), data("1"))]);
        // Deleted: reported, and already gone from the store.
        assert_eq!(step(Event::Delete(cm("a", "2"))), [("a".to_string(), None)]);
        // A relist: nothing until it ends, then what it listed (b, gone meanwhile, is not).
        assert_eq!(step(Event::Init), []);
        assert_eq!(step(Event::InitApply(cm("c", "1"))), []);
        assert_eq!(step(Event::InitDone), [("c".to_string(), data("1"))]);
    }
}
