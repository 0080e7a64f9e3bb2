//! The pass every namespaced kind follows, written once. A kind plugs in by implementing
//! [`Reconciled`]; this module does the rest:
//!
//! ```text
//!  finalizer ─ Apply ──► converge (the kind's dereference → build → plan → apply → observe)
//!            │             ├─ Ok(outcome) ─► Stalled? one Warning on entering it ─► status ─► requeue
//!            │             └─ Err(error)  ─► status keeps the facts it had, conditions say the
//!            │                               failure ─► one Warning with the cause ─► error policy
//!            └ Cleanup ─► the kind's cleanup (remove, release or wait)
//! ```

use std::{sync::Arc, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        events::EventType,
        finalizer::{Event as Finalizer, finalizer},
        reflector::ObjectRef,
    },
};
use swarm_operator_crds::{
    OnCluster,
    conditions::{REASON_NOT_PERMITTED, STALLED, TRUE},
};
use tracing::warn;

use crate::{
    cause::cause_chain,
    conditions::{self, Summary},
    connections::{SwarmEvent, triggers},
    context::{Context, resource_name},
    controller::{FINALIZER, drive, observed},
    error::Error,
    status::apply_status,
};

/// What the pass reads and writes of every kind's status: the kstatus conditions, and the swarm
/// the resource's objects are on.
pub trait PassStatus {
    fn conditions(&self) -> &[Condition];
    fn swarm(&self) -> Option<&str>;
    fn set_swarm(&mut self, swarm: Option<String>);
}

macro_rules! pass_status {
    ($($status:ty),*) => {$(
        impl PassStatus for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn swarm(&self) -> Option<&str> {
                self.swarm.as_deref()
            }
            fn set_swarm(&mut self, swarm: Option<String>) {
                self.swarm = swarm;
            }
        }
    )*};
}

pass_status!(
    swarm_operator_crds::SwarmServiceStatus,
    swarm_operator_crds::SwarmNetworkStatus,
    swarm_operator_crds::VersionedStatus
);

/// What a kind's `converge` concluded: the summary for the conditions, the facts for the rest of
/// the status, and when to look again.
pub struct Outcome<F> {
    pub summary: Summary,
    pub facts: F,
    pub requeue: Duration,
}

/// One namespaced kind whose resources each stand for Swarm objects.
pub trait Reconciled:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + OnCluster
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    type Status: PassStatus + serde::Serialize + PartialEq + Send + Sync;
    /// What a pass learned of the swarm that the status reports besides the conditions.
    type Facts: Send;

    /// The name of the Swarm object this resource stands for, for logs.
    fn swarm_name(&self) -> String;
    /// Whether a swarm event about the `kind` object `name` (as the Engine words them) concerns
    /// this resource.
    fn concerns(&self, kind: &str, name: &str) -> bool;
    fn status(&self) -> Option<&Self::Status>;
    /// The conditions the status holds now.
    fn conditions(&self) -> &[Condition] {
        self.status().map(PassStatus::conditions).unwrap_or_default()
    }
    /// The facts the status holds now, kept by a pass that fails before it could observe.
    fn facts_before(&self) -> Self::Facts;
    /// The whole status: `facts`, `conditions`, and the generation they speak of.
    fn status_with(&self, facts: Self::Facts, conditions: Vec<Condition>) -> Self::Status;
    /// Dereference, build, plan, apply and observe.
    fn converge(&self, ctx: &Context) -> impl Future<Output = Result<Outcome<Self::Facts>, Error>> + Send;
    /// The resource is being deleted: remove or release its Swarm objects, or wait.
    fn cleanup(&self, ctx: &Context) -> impl Future<Output = Result<Action, Error>> + Send;
}

/// Runs the controller of `K` until a shutdown signal; besides what `controller` already watches,
/// it wakes on the swarm events that concern a resource.
pub async fn run<K: Reconciled>(controller: Controller<K>, ctx: Arc<Context>, concurrency: u16) {
    let swarm_changes = triggers(
        &ctx.events,
        controller.store(),
        ctx.queues.of::<K>(),
        |event, obj: &K| matches!(event, SwarmEvent::Changed { kind, name, .. } if obj.concerns(kind, name)),
    );
    drive(
        controller.reconcile_on(swarm_changes),
        reconcile::<K>,
        ctx,
        concurrency,
    )
    .await;
}

pub async fn reconcile<K: Reconciled>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let swarm_object = obj.swarm_name();
    observed(&ctx, obj.as_ref(), &swarm_object, finalized(obj.clone(), &ctx)).await
}

async fn finalized<K: Reconciled>(obj: Arc<K>, ctx: &Context) -> Result<Action, Error> {
    // A copy older than this process's last status write is read again (a swarm event can wake
    // the object before the watch shows that write).
    let Some(obj) = ctx.current(obj).await? else {
        return Ok(Action::await_change());
    };
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let action = finalizer(&api, FINALIZER, obj.clone(), |event| async {
        match event {
            Finalizer::Apply(obj) => apply(obj.as_ref(), ctx, &api).await,
            Finalizer::Cleanup(obj) if released(obj.as_ref()) => {
                // The user let go: its swarm is gone for good, or its objects are to stay.
                warn!(object = %ObjectRef::from_obj(obj.as_ref()), "released without touching the swarm");
                let note = format!(
                    "Released: {RELEASE_ANNOTATION} is set, so its Swarm objects were left as they are"
                );
                ctx.publish(obj.as_ref(), EventType::Normal, "Released", "Delete", note)
                    .await;
                Ok(Action::await_change())
            }
            Finalizer::Cleanup(obj) => {
                // Its objects are on the swarm it recorded: never clean up elsewhere and let go.
                reached_swarm(obj.as_ref(), ctx).await?;
                obj.cleanup(ctx).await
            }
        }
    })
    .await;
    let action = match action {
        Ok(action) => action,
        // Gone while this pass worked: a pass on an older copy of it, whose cleanup was already
        // done and whose finalizer already removed. Nothing is left to do.
        Err(e) if gone(&e) => Action::await_change(),
        Err(e) => {
            return Err(Error::Finalizer {
                object: resource_name(obj.as_ref()),
                source: Box::new(e),
            });
        }
    };
    ctx.succeeded(&ObjectRef::from_obj(obj.as_ref()));
    Ok(action)
}

/// Whether the finalizer could not be added or removed because the object no longer exists.
fn gone(error: &kube::runtime::finalizer::Error<Error>) -> bool {
    use kube::runtime::finalizer::Error as F;
    matches!(
        error,
        F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s)) if s.code == 404
    )
}

/// Set to "true" on a resource being deleted, it lets the deletion finish without touching the
/// swarm: for a resource whose cluster is gone for good, which would otherwise wait forever.
pub const RELEASE_ANNOTATION: &str = "swarmoperator.io/release";

fn released<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(RELEASE_ANNOTATION))
        .is_some_and(|v| v == "true")
}

async fn apply<K: Reconciled>(obj: &K, ctx: &Context, api: &Api<K>) -> Result<Action, Error> {
    // The swarm the pass works on, once it is known to be the resource's.
    let mut reached = None;
    let outcome = match not_permitted(obj, ctx).await? {
        Some(message) => Ok(Outcome {
            summary: Summary::Stalled {
                reason: REASON_NOT_PERMITTED,
                message,
            },
            facts: obj.facts_before(),
            requeue: ctx.settings.resync_interval,
        }),
        None => match reached_swarm(obj, ctx).await {
            Ok(swarm) => {
                reached = swarm;
                obj.converge(ctx).await
            }
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(outcome) => {
            announce_stalled(obj, ctx, &outcome.summary).await;
            write_status(obj, ctx, api, outcome.facts, &outcome.summary, reached.as_deref()).await?;
            Ok(crate::queue::requeue(outcome.requeue))
        }
        Err(err) => {
            // Say it where the user looks, then let the error policy back off (or, for a refused
            // spec, wait for a change).
            let summary = conditions::failure_summary(&err);
            let told =
                err.waits_for_change() && already_told(obj.conditions(), obj.meta().generation, &summary);
            if let Err(e) =
                write_status(obj, ctx, api, obj.facts_before(), &summary, reached.as_deref()).await
            {
                warn!(error = %cause_chain(&e), "could not record the failure in status");
            }
            if !told {
                ctx.publish(
                    obj,
                    EventType::Warning,
                    summary.reason(),
                    "Reconcile",
                    cause_chain(&err),
                )
                .await;
            }
            Err(err)
        }
    }
}

/// The ID of the swarm the resource's cluster reaches now, when it is the swarm the resource's
/// objects are on (its status says which, once written). A cluster that comes to reach another
/// swarm — its SwarmCluster deleted or selected away, so that `default` means the --docker-host
/// engine, or its endpoints pointed at another swarm — leaves the resource ClusterUnavailable and
/// its finalizer in place: nothing is created on, or cleaned up from, a swarm it is not on.
async fn reached_swarm<K: Reconciled>(obj: &K, ctx: &Context) -> Result<Option<String>, Error> {
    let cluster = obj.cluster_name();
    let connection = ctx.clusters.connection(cluster).await?;
    // Picking a working manager learns its swarm's ID.
    connection.engine().await?;
    let reached = connection.swarm_id();
    let recorded = obj.status().and_then(PassStatus::swarm);
    match moved(recorded, reached.as_deref()) {
        None => Ok(reached),
        Some(message) => Err(crate::connections::Unavailable {
            cluster: cluster.to_string(),
            message,
        }
        .into()),
    }
}

/// Why the swarm `reached` is not the swarm `recorded` the objects are on, if it is not.
fn moved(recorded: Option<&str>, reached: Option<&str>) -> Option<String> {
    match (recorded, reached) {
        (Some(on), Some(now)) if on != now => Some(format!(
            "it now reaches swarm {now}, and this resource's objects are on swarm {on}: they are not moved \
             (make the cluster reach swarm {on} again, or delete the resource with {RELEASE_ANNOTATION}=true to let them go)"
        )),
        _ => None,
    }
}

/// Why the resource's namespace may not use its cluster, when the SwarmCluster's
/// namespaceSelector leaves it out. Read on every pass, so labelling a namespace takes effect at
/// the next pass of its resources.
async fn not_permitted<K: Reconciled>(obj: &K, ctx: &Context) -> Result<Option<String>, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    namespace_refused(&ctx.clusters, &ctx.client, &namespace, obj.cluster_name()).await
}

/// Why `namespace` may not use cluster `cluster`, when its SwarmCluster's namespaceSelector
/// leaves it out (for the passes, and for whatever else reaches a swarm for a namespace).
pub async fn namespace_refused(
    clusters: &crate::connections::Clusters,
    client: &kube::Client,
    namespace: &str,
    cluster: &str,
) -> Result<Option<String>, Error> {
    use kube::core::{Selector, SelectorExt};
    let Some(selector) = clusters.namespace_selector(cluster) else {
        return Ok(None);
    };
    let labels = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
        .map_err(|source| Error::Kube {
            operation: "get Namespace",
            object: namespace.to_string(),
            source,
        })?
        .and_then(|ns| ns.metadata.labels)
        .unwrap_or_default();
    // A selector that does not parse admits no one.
    let admitted = Selector::try_from(selector).is_ok_and(|s| s.matches(&labels));
    Ok((!admitted).then(|| {
        format!(
            "namespace {namespace} may not use SwarmCluster {cluster}: its spec.namespaceSelector leaves this namespace out"
        )
    }))
}

/// Writes the status for `facts` and `summary`, unless the API server holds it already;
/// `reached` is the swarm the pass worked on, if it got that far.
pub async fn write_status<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    facts: K::Facts,
    summary: &Summary,
    reached: Option<&str>,
) -> Result<(), Error> {
    let conditions = conditions::conditions(obj.conditions(), obj.meta().generation, summary);
    let mut status = obj.status_with(facts, conditions);
    let recorded = obj.status().and_then(PassStatus::swarm);
    status.set_swarm(swarm_to_record(recorded, reached, summary));
    apply_status(ctx, api, obj, obj.status(), &status).await
}

/// The swarm the status records: the one it recorded, else the one the pass worked on unless
/// it stalled before writing anything.
fn swarm_to_record(recorded: Option<&str>, reached: Option<&str>, summary: &Summary) -> Option<String> {
    match (recorded, summary) {
        (Some(on), _) => Some(on.to_string()),
        (None, Summary::Stalled { .. }) => None,
        (None, _) => reached.map(str::to_string),
    }
}

/// A Warning event when a resource enters a Stalled state (or changes its reason), not on every
/// pass that finds it still stalled.
async fn announce_stalled<K: Reconciled>(obj: &K, ctx: &Context, summary: &Summary) {
    let Summary::Stalled { reason, message } = summary else {
        return;
    };
    if !entering_stall(obj.conditions(), reason) {
        return;
    }
    warn!(object = %ObjectRef::from_obj(obj), reason, message = %message, "stalled");
    ctx.publish(obj, EventType::Warning, reason, "Reconcile", message.clone())
        .await;
}

/// Whether the `previous` conditions already say `summary` of this generation: a refused spec met
/// again (a resync woke it) is not announced twice.
fn already_told(previous: &[Condition], generation: Option<i64>, summary: &Summary) -> bool {
    previous.iter().any(|c| {
        c.type_ == STALLED
            && c.status == TRUE
            && c.reason == summary.reason()
            && c.message == summary.message()
            && c.observed_generation == generation
    })
}

/// Whether stalling with `reason` is news against the `previous` conditions.
pub(crate) fn entering_stall(previous: &[Condition], reason: &str) -> bool {
    let before = previous.iter().find(|c| c.type_ == STALLED);
    before.is_none_or(|c| c.status != TRUE || c.reason != reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stalled(status: &str, reason: &str) -> Vec<Condition> {
        vec![conditions::condition(&[], Some(1), STALLED, status, reason, "m")]
    }

    #[test]
    fn a_finalizer_write_on_an_object_already_gone_is_the_end_not_an_error() {
        use kube::runtime::finalizer::Error as F;
        let status = |code: u16| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("swarmservices \"web\" not found", "NotFound").with_code(code),
            ))
        };
        assert!(gone(&F::<Error>::RemoveFinalizer(status(404))));
        assert!(gone(&F::<Error>::AddFinalizer(status(404))));
        assert!(!gone(&F::<Error>::RemoveFinalizer(status(409))));
        assert!(!gone(&F::<Error>::RemoveFinalizer(status(500))));
        assert!(!gone(&F::<Error>::CleanupFailed(Error::Waiting {
            object: "web".into(),
            message: "not found".into(),
        })));
    }

    #[test]
    fn objects_stay_on_the_swarm_they_are_on() {
        assert_eq!(moved(None, Some("b")), None, "not yet written anywhere");
        assert_eq!(moved(Some("a"), Some("a")), None);
        assert_eq!(moved(Some("a"), None), None, "nothing known of the swarm reached");
        let moved = moved(Some("a"), Some("b")).unwrap();
        assert!(
            moved.contains("swarm b") && moved.contains("on swarm a"),
            "{moved}"
        );
    }

    #[test]
    fn the_swarm_is_recorded_once_the_pass_worked_on_it() {
        let ready = Summary::Reconciling {
            reason: "Progressing",
            message: "m".into(),
        };
        let stalled = Summary::Stalled {
            reason: "InvalidSpec",
            message: "m".into(),
        };
        assert_eq!(swarm_to_record(None, Some("a"), &ready).as_deref(), Some("a"));
        assert_eq!(
            swarm_to_record(Some("a"), Some("b"), &ready).as_deref(),
            Some("a"),
            "kept"
        );
        assert_eq!(swarm_to_record(Some("a"), None, &stalled).as_deref(), Some("a"));
        assert_eq!(
            swarm_to_record(None, Some("a"), &stalled),
            None,
            "refused before writing"
        );
        assert_eq!(swarm_to_record(None, None, &ready), None);
    }

    #[test]
    fn a_refusal_is_told_once_per_generation() {
        let refused = Summary::Stalled {
            reason: "InvalidSpec",
            message: "m".into(),
        };
        assert!(!already_told(&[], Some(1), &refused));
        assert!(already_told(&stalled("True", "InvalidSpec"), Some(1), &refused));
        assert!(
            !already_told(&stalled("True", "InvalidSpec"), Some(2), &refused),
            "a new generation"
        );
        let other = Summary::Stalled {
            reason: "InvalidSpec",
            message: "another".into(),
        };
        assert!(!already_told(&stalled("True", "InvalidSpec"), Some(1), &other));
    }

    #[test]
    fn a_stall_is_announced_once_per_reason() {
        assert!(entering_stall(&[], "TasksFailing"), "first pass");
        assert!(entering_stall(&stalled("False", "Running"), "TasksFailing"));
        assert!(
            !entering_stall(&stalled("True", "TasksFailing"), "TasksFailing"),
            "still stalled"
        );
        assert!(
            entering_stall(&stalled("True", "TasksFailing"), "RolledBack"),
            "another reason is news"
        );
    }
}
