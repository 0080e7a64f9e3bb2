//! Deleting a SwarmService: remove its Swarm service, or with `deletionPolicy: Orphan` leave it
//! running without owner labels. A service that is not ours is never touched.

use kube::runtime::{controller::Action, events::EventType};
use swarm_operator_crds::{DeletionPolicy, SwarmService};
use tracing::info;

use crate::{
    context::Context,
    error::Error,
    labels::{OWNER_LABELS, Ownership, ownership},
};

pub async fn cleanup(svc: &SwarmService, ctx: &Context) -> Result<Action, Error> {
    let engine = ctx.engine_for(svc).await?;
    let name = svc.service_name();
    let Some(existing) = engine.find_service(&name).await? else {
        return Ok(Action::await_change());
    };
    let labels = existing.spec.as_ref().and_then(|s| s.labels.as_ref());
    if ownership(svc, labels) != Ownership::Ours {
        return Ok(Action::await_change());
    }
    let id = existing.id.clone().unwrap_or_default();
    match svc.spec.deletion_policy.unwrap_or_default() {
        DeletionPolicy::Delete => {
            engine.remove_service(&id, &name).await?;
            info!(service = %name, %id, "removed Swarm service");
            let note = format!("Removed Swarm service {name} ({id})");
            ctx.publish(svc, EventType::Normal, "Deleted", "Delete", note)
                .await;
        }
        DeletionPolicy::Orphan => {
            // Left running, and no longer ours: without the labels a new resource of the same name
            // needs the adopt annotation to take it over.
            let mut spec = existing.spec.clone().unwrap_or_default();
            if let Some(labels) = spec.labels.as_mut() {
                for key in OWNER_LABELS {
                    labels.remove(key);
                }
            }
            let version = existing.version.as_ref().and_then(|v| v.index).unwrap_or(0);
            engine.update_service(&id, version, spec, None).await?;
            info!(service = %name, %id, "orphaned Swarm service");
            let note = format!(
                "Left Swarm service {name} ({id}) running without owner labels (deletionPolicy Orphan)"
            );
            ctx.publish(svc, EventType::Normal, "Orphaned", "Delete", note)
                .await;
        }
    }
    Ok(Action::await_change())
}
