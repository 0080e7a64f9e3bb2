//! Reconcile of one SwarmSecret or SwarmConfig (see the module doc).

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api, ResourceExt,
    runtime::{
        controller::{Action, Config as ControllerConfig},
        events::EventType,
        finalizer::{Event as Finalizer, finalizer},
        reflector::ObjectRef,
        watcher,
    },
};
use swarm_operator_crds::{
    VersionedStatus,
    conditions::{REASON_DELETING, REASON_RUNNING},
    data::DataVersion,
    service::DeletionPolicy,
};
use tracing::{debug, info};

use super::{DataResource, content_hash};
use crate::{
    conditions::{self, Summary},
    context::{Context, FINALIZER, error_policy, scoped_api},
    error::{Error, cause_chain},
    labels::owner_labels,
    status::apply_status,
    swarm::DataKind,
};

/// The source of a data resource is missing: recovers by itself when it appears.
const REASON_SOURCE_MISSING: &str = "SourceMissing";

/// Runs the controller of `K` until a shutdown signal; it also watches the Secrets or ConfigMaps
/// the resources read, so a change to a source starts a new version at once.
pub async fn run<K: DataResource>(ctx: Arc<Context>, namespace: Option<&str>, concurrency: u16) {
    let controller = crate::context::user_changes_controller(scoped_api::<K>(ctx.client.clone(), namespace));
    let store = controller.store();
    let sources = move |ns: Option<String>, name: String| {
        crate::queue::asked(
            store
                .state()
                .into_iter()
                .filter(|o| o.namespace() == ns && o.source_name() == Some(name.as_str()))
                .map(|o| ObjectRef::from_obj(o.as_ref())),
        )
    };
    let controller = match K::KIND {
        DataKind::Secret => {
            let secrets = scoped_api::<Secret>(ctx.client.clone(), namespace);
            controller.watches(secrets, watcher::Config::default(), move |s: Secret| {
                sources(s.namespace(), s.name_any())
            })
        }
        DataKind::Config => {
            let maps = scoped_api::<ConfigMap>(ctx.client.clone(), namespace);
            controller.watches(maps, watcher::Config::default(), move |m: ConfigMap| {
                sources(m.namespace(), m.name_any())
            })
        }
    };
    // Swarm names of versions are `<name>-<hash>`.
    let kind = kind_word(K::KIND);
    let swarm_changes = crate::cluster::triggers(&ctx.events, controller.store(), move |event, obj: &K| {
        matches!(event, crate::cluster::SwarmEvent::Changed { kind: k, name, .. }
            if k == kind && name.strip_prefix(&obj.name_any()).is_some_and(|rest| rest.starts_with('-')))
    });
    controller
        .reconcile_on(swarm_changes)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|result| async move {
            crate::queue::not_found::<K, _, _>(&result);
            if let Err(e) = result {
                debug!(error = %cause_chain(&e), "reconcile failed");
            }
        })
        .await;
}

async fn reconcile<K: DataResource>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = obj
        .versioned_status()
        .and_then(|s| s.swarm_name.clone())
        .unwrap_or_else(|| obj.name_any());
    crate::context::observed(obj.as_ref(), &name, reconcile_pass(obj.clone(), ctx)).await
}

async fn reconcile_pass<K: DataResource>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let object = format!("{} {ns}/{}", K::kind(&()), obj.name_any());
    let action = finalizer(&api, FINALIZER, obj.clone(), |event| async {
        match event {
            Finalizer::Apply(obj) => apply::<K>(&obj, &ctx, &api).await,
            Finalizer::Cleanup(obj) => cleanup::<K>(&obj, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer {
        object,
        source: Box::new(e),
    })?;
    ctx.succeeded(&ObjectRef::from_obj(obj.as_ref()));
    Ok(action)
}

async fn apply<K: DataResource>(obj: &K, ctx: &Context, api: &Api<K>) -> Result<Action, Error> {
    let (summary, current, versions, requeue) = match converge(obj, ctx).await {
        Ok(done) => done,
        Err(err) => {
            let previous = obj.versioned_status().cloned().unwrap_or_default();
            let summary = conditions::failure_summary(&err);
            write_status(
                obj,
                api,
                &summary,
                previous.swarm_name.zip(previous.swarm_id),
                previous.versions,
            )
            .await
            .ok();
            ctx.publish(
                obj,
                EventType::Warning,
                summary.reason(),
                "Reconcile",
                cause_chain(&err),
            )
            .await;
            return Err(err);
        }
    };
    if let Summary::Stalled { reason, message } = &summary {
        let before = obj
            .versioned_status()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Stalled"));
        if before.is_none_or(|c| c.status != "True" || c.reason != *reason) {
            ctx.publish(obj, EventType::Warning, reason, "Reconcile", message.clone())
                .await;
        }
    }
    write_status(obj, api, &summary, current, versions).await?;
    Ok(crate::queue::requeue(requeue))
}

type Converged = (Summary, Option<(String, String)>, Vec<DataVersion>, Duration);

async fn converge<K: DataResource>(obj: &K, ctx: &Context) -> Result<Converged, Error> {
    let content = match obj.read(&ctx.client).await? {
        Ok(content) => content,
        Err(missing) => {
            let previous = obj.versioned_status().cloned().unwrap_or_default();
            let summary = Summary::Stalled {
                reason: REASON_SOURCE_MISSING,
                message: missing,
            };
            let current = previous.swarm_name.zip(previous.swarm_id);
            return Ok((summary, current, previous.versions, ctx.settings.resync_interval));
        }
    };
    let name = format!("{}-{}", obj.name_any(), content_hash(&content));
    let engine = ctx.engine_for(obj).await?;
    let owned = engine.owned_data(K::KIND, &obj.uid().unwrap_or_default()).await?;
    let id = match owned.iter().find(|(_, n)| *n == name) {
        Some((id, _)) => id.clone(),
        None => {
            let mut labels: HashMap<String, String> = obj.labels().clone().into_iter().collect();
            labels.extend(owner_labels(obj));
            let id = engine.create_data(K::KIND, &name, &content, labels).await?;
            info!(swarm_object = %name, %id, "created new version");
            let note = format!("Created {} version {name} ({id})", kind_word(K::KIND));
            ctx.publish(obj, EventType::Normal, "VersionCreated", "Create", note)
                .await;
            id
        }
    };
    // Older versions stay while services use them (they roll over at their own pace) and go after.
    let mut versions = Vec::new();
    for (old_id, old_name) in owned.iter().filter(|(i, _)| *i != id) {
        // The shared listing may be a second old: a version is removed only when no service uses
        // it now.
        let mut users = engine.services_using_data(K::KIND, old_id, false).await?;
        if users.is_empty() {
            users = engine.services_using_data(K::KIND, old_id, true).await?;
        }
        if users.is_empty() {
            engine.remove_data(K::KIND, old_id).await?;
            info!(swarm_object = %old_name, "removed unused old version");
            let note = format!(
                "Removed old {} version {old_name}; no service uses it",
                kind_word(K::KIND)
            );
            ctx.publish(obj, EventType::Normal, "VersionRemoved", "Delete", note)
                .await;
        } else {
            versions.push(DataVersion {
                swarm_name: old_name.clone(),
                swarm_id: old_id.clone(),
                services: users,
            });
        }
    }
    let users = engine.services_using_data(K::KIND, &id, false).await?;
    versions.insert(
        0,
        DataVersion {
            swarm_name: name.clone(),
            swarm_id: id.clone(),
            services: users,
        },
    );
    let old = versions.len() - 1;
    let message = if old == 0 {
        format!("current version {name}")
    } else {
        format!("current version {name}; {old} older version(s) still in use")
    };
    // Look again soon while old versions wait for their services to roll over.
    let requeue = if old > 0 {
        ctx.settings.progress_interval * 2
    } else {
        ctx.settings.resync_interval
    };
    Ok((
        Summary::Ready {
            reason: REASON_RUNNING,
            message,
        },
        Some((name, id)),
        versions,
        requeue,
    ))
}

fn kind_word(kind: DataKind) -> &'static str {
    match kind {
        DataKind::Secret => "secret",
        DataKind::Config => "config",
    }
}

async fn write_status<K: DataResource>(
    obj: &K,
    api: &Api<K>,
    summary: &Summary,
    current: Option<(String, String)>,
    versions: Vec<DataVersion>,
) -> Result<(), Error> {
    let generation = obj.meta().generation;
    let previous = obj
        .versioned_status()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let (swarm_name, swarm_id) = current.unzip();
    let status = VersionedStatus {
        observed_generation: generation,
        conditions: conditions::conditions(previous, generation, summary),
        swarm_name,
        swarm_id,
        versions,
    };
    apply_status(api, obj, obj.versioned_status(), &status).await
}

/// Removes every version once no service uses it; waits (finalizer kept) while some do.
async fn cleanup<K: DataResource>(obj: &K, ctx: &Context) -> Result<Action, Error> {
    if obj.deletion_policy() == DeletionPolicy::Orphan {
        return Ok(Action::await_change());
    }
    let engine = ctx.engine_for(obj).await?;
    let mut in_use = Vec::new();
    for (id, name) in engine.owned_data(K::KIND, &obj.uid().unwrap_or_default()).await? {
        let users = engine.services_using_data(K::KIND, &id, true).await?;
        if users.is_empty() {
            engine.remove_data(K::KIND, &id).await?;
        } else {
            in_use.push(format!("{name} (used by {})", users.join(", ")));
        }
    }
    if in_use.is_empty() {
        return Ok(Action::await_change());
    }
    let message = format!(
        "{REASON_DELETING}: waiting for services to stop using {}",
        in_use.join("; ")
    );
    Err(Error::Waiting {
        object: format!("{} {}", K::kind(&()), obj.name_any()),
        message,
    })
}
