//! Deleting a SwarmSecret or SwarmConfig: every version goes once no service uses it; while
//! services some resource manages do, the finalizer stays and the resource says which. A version
//! only unmanaged services use (a SwarmService deleted with `deletionPolicy: Orphan`, one made by
//! hand) would wait for ever, and with it the namespace: it is left in the swarm, released (no
//! owner labels), and a Warning event names it.

use kube::{
    ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use swarm_operator_crds::{DeletionPolicy, conditions::REASON_DELETING};

use super::DataResource;
use crate::{
    context::{Context, resource_name},
    error::Error,
};

pub async fn cleanup<K: DataResource>(obj: &K, ctx: &Context) -> Result<Action, Error> {
    if obj.deletion_policy() == DeletionPolicy::Orphan {
        return Ok(Action::await_change());
    }
    let engine = ctx.engine_for(obj).await?;
    let mut in_use = Vec::new();
    for (id, name) in engine.owned_data(K::KIND, &obj.uid().unwrap_or_default()).await? {
        let users = engine.services_using_data(K::KIND, &id, true).await?;
        if users.is_empty() {
            engine.remove_data(K::KIND, &id, &name).await?;
        } else if engine.managed_services_using_data(K::KIND, &id).await?.is_empty() {
            engine.release_data(K::KIND, &id).await?;
            let note = format!(
                "Left {name} in the swarm without owner labels: services no resource manages use it ({})",
                users.join(", ")
            );
            ctx.publish(obj, EventType::Warning, "Released", "Delete", note)
                .await;
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
        object: resource_name(obj),
        message,
    })
}
