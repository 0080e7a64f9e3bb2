//! Deleting a SwarmNetwork: remove the network once no service uses it; until then the resource
//! says which services it waits for and keeps its finalizer. Nothing is force-removed.

use std::time::Duration;

use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use swarm_operator_crds::{SwarmNetwork, conditions::REASON_DELETING};
use tracing::info;

use super::{
    Facts,
    plan::{Deletion, deletion},
};
use crate::{
    conditions::Summary,
    context::{Context, resource_name},
    error::Error,
    pass::write_status,
};

pub async fn cleanup(net: &SwarmNetwork, ctx: &Context) -> Result<Action, Error> {
    let name = net.network_name();
    let engine = ctx.engine_for(net).await?;
    let existing = engine.find_network(&name).await?;
    if deletion(net, existing.as_ref()) == Deletion::Release {
        return Ok(Action::await_change());
    }
    let found = existing.unwrap_or_default();
    let id = found.id.clone().unwrap_or_default();
    let users = engine.services_on_network(&id, true).await?;
    if !users.is_empty() {
        let message = format!(
            "deleting: waiting for services {} to stop using network {name}",
            users.join(", ")
        );
        let facts = Facts {
            network_id: Some(id),
            driver: found.driver,
            scope: found.scope,
            services: users,
        };
        let summary = Summary::Reconciling {
            reason: REASON_DELETING,
            message: message.clone(),
        };
        let api: Api<SwarmNetwork> =
            Api::namespaced(ctx.client.clone(), &net.namespace().unwrap_or_default());
        write_status(net, ctx, &api, facts, &summary, None).await?;
        return Err(Error::Waiting {
            object: resource_name(net),
            message,
        });
    }
    engine.remove_network(&id, &name).await?;
    info!(network = %name, %id, "removed Swarm network");
    let note = format!("Removed Swarm network {name} ({id})");
    ctx.publish(net, EventType::Normal, "Deleted", "Delete", note)
        .await;
    Ok(crate::queue::requeue(Duration::from_secs(1)))
}
