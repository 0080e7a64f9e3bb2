//! One SwarmNetwork pass against the swarm: find the network by name, plan, create it once, and
//! report its ID and the services that use it.

use bollard::models::Network;
use swarm_operator_crds::{
    SwarmNetwork,
    conditions::{REASON_NAME_CONFLICT, REASON_RUNNING},
};
use tracing::info;

use super::{
    Facts, build,
    plan::{Plan, plan},
};
use crate::{conditions::Summary, context::Context, error::Error, pass::Outcome};

pub async fn converge(net: &SwarmNetwork, ctx: &Context) -> Result<Outcome<Facts>, Error> {
    let name = net.network_name();
    let engine = ctx.engine_for(net).await?;
    let existing = engine.find_network(&name).await?;
    let network: Network = match plan(net, existing.as_ref()) {
        Plan::Conflict(owner) => {
            let message = format!(
                "a Swarm network named {name} already exists and belongs to {}; it is left untouched. \
                 Use it from a SwarmService with external: true, or set spec.networkName to another name",
                owner.holder("SwarmNetwork")
            );
            return Ok(Outcome {
                summary: Summary::Stalled {
                    reason: REASON_NAME_CONFLICT,
                    message,
                },
                facts: Facts::default(),
                requeue: ctx.settings.resync_interval,
            });
        }
        Plan::Report => existing.unwrap_or_default(),
        Plan::Create => {
            let id = engine.create_network(build::create_request(net)).await?;
            // No event, as for services: the status says it.
            info!(network = %name, %id, "created Swarm network");
            engine.find_network(&name).await?.unwrap_or_default()
        }
    };
    let id = network.id.clone().unwrap_or_default();
    let services = engine.services_on_network(&id, false).await?;
    let message = match services.len() {
        0 => format!("network {name} ({id}) exists; no service uses it"),
        n => format!("network {name} ({id}) exists; used by {n} service(s)"),
    };
    Ok(Outcome {
        summary: Summary::Ready {
            reason: REASON_RUNNING,
            message,
        },
        facts: Facts {
            network_id: Some(id),
            driver: network.driver,
            scope: network.scope,
            services,
        },
        requeue: ctx.settings.resync_interval,
    })
}
