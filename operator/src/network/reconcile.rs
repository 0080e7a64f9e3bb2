//! Reconcile of one SwarmNetwork: create the Swarm network once, report its ID and users; on
//! deletion wait until no service uses it, then remove it.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    runtime::{
        controller::{Action, Config as ControllerConfig},
        events::EventType,
        finalizer::{Event as Finalizer, finalizer},
        reflector::ObjectRef,
    },
};
use swarm_operator_crds::{
    SwarmNetwork, SwarmNetworkStatus,
    conditions::{REASON_DELETING, REASON_NAME_CONFLICT, REASON_RUNNING},
    service::DeletionPolicy,
};
use tracing::{debug, info};

use crate::{
    conditions::{self, Summary},
    context::{Context, FINALIZER, error_policy, scoped_api},
    error::{Error, cause_chain},
    labels::{Ownership, ownership},
    status::apply_status,
};

pub async fn run(ctx: Arc<Context>, namespace: Option<&str>, concurrency: u16) {
    let api = scoped_api::<SwarmNetwork>(ctx.client.clone(), namespace);
    let controller = crate::context::user_changes_controller(api);
    let swarm_changes = crate::cluster::triggers(
        &ctx.events,
        controller.store(),
        |event, net: &SwarmNetwork| matches!(event, crate::cluster::SwarmEvent::Changed { kind, name, .. } if kind == "network" && *name == net.network_name()),
    );
    controller
        .reconcile_on(swarm_changes)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            crate::queue::not_found::<SwarmNetwork, _, _>(&result);
            if let Err(e) = result {
                debug!(error = %cause_chain(&e), "network reconcile failed");
            }
        })
        .await;
}

async fn reconcile(net: Arc<SwarmNetwork>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = net.network_name();
    crate::context::observed(net.as_ref(), &name, reconcile_pass(net.clone(), ctx)).await
}

async fn reconcile_pass(net: Arc<SwarmNetwork>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = net.namespace().unwrap_or_default();
    let api: Api<SwarmNetwork> = Api::namespaced(ctx.client.clone(), &ns);
    let object = format!("SwarmNetwork {ns}/{}", net.name_any());
    let action = finalizer(&api, FINALIZER, net.clone(), |event| async {
        match event {
            Finalizer::Apply(net) => apply(&net, &ctx, &api).await,
            Finalizer::Cleanup(net) => cleanup(&net, &ctx, &api).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer {
        object,
        source: Box::new(e),
    })?;
    ctx.succeeded(&ObjectRef::from_obj(net.as_ref()));
    Ok(action)
}

struct Observed {
    summary: Summary,
    network_id: Option<String>,
    driver: Option<String>,
    scope: Option<String>,
    services: Vec<String>,
}

async fn apply(net: &SwarmNetwork, ctx: &Context, api: &Api<SwarmNetwork>) -> Result<Action, Error> {
    let observed = match converge(net, ctx).await {
        Ok(observed) => observed,
        Err(err) => {
            let summary = conditions::failure_summary(&err);
            let previous = net.status.clone().unwrap_or_default();
            let observed = Observed {
                summary,
                network_id: previous.network_id,
                driver: previous.driver,
                scope: previous.scope,
                services: previous.services,
            };
            write_status(net, api, &observed).await.ok();
            ctx.publish(
                net,
                EventType::Warning,
                observed.summary.reason(),
                "Reconcile",
                cause_chain(&err),
            )
            .await;
            return Err(err);
        }
    };
    if let Summary::Stalled { reason, message } = &observed.summary {
        let before = net
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Stalled"));
        if before.is_none_or(|c| c.status != "True" || c.reason != *reason) {
            ctx.publish(net, EventType::Warning, reason, "Reconcile", message.clone())
                .await;
        }
    }
    write_status(net, api, &observed).await?;
    Ok(crate::queue::requeue(ctx.settings.resync_interval))
}

async fn converge(net: &SwarmNetwork, ctx: &Context) -> Result<Observed, Error> {
    let name = net.network_name();
    let engine = ctx.engine_for(net).await?;
    let existing = engine.find_network(&name).await?;
    let network = match existing {
        Some(found) => {
            match ownership(net, found.labels.as_ref()) {
                Ownership::Ours => {}
                other => {
                    let holder = match other {
                        Ownership::Other { namespace, name } => format!("SwarmNetwork {namespace}/{name}"),
                        _ => "something other than swarm-operator".into(),
                    };
                    let message = format!(
                        "a Swarm network named {name} already exists and belongs to {holder}; it is left untouched. \
                         Use it from a SwarmService with external: true, or set spec.networkName to another name"
                    );
                    return Ok(Observed {
                        summary: Summary::Stalled {
                            reason: REASON_NAME_CONFLICT,
                            message,
                        },
                        network_id: None,
                        driver: None,
                        scope: None,
                        services: Vec::new(),
                    });
                }
            }
            found
        }
        None => {
            let id = engine.create_network(super::create_request(net)).await?;
            info!(network = %name, %id, "created Swarm network");
            let note = format!("Created Swarm network {name} ({id})");
            ctx.publish(net, EventType::Normal, "Created", "Create", note)
                .await;
            engine.find_network(&name).await?.unwrap_or_default()
        }
    };
    let id = network.id.clone().unwrap_or_default();
    let services = engine.services_on_network(&id, false).await?;
    let message = match services.len() {
        0 => format!("network {name} ({id}) exists; no service uses it"),
        n => format!("network {name} ({id}) exists; used by {n} service(s)"),
    };
    Ok(Observed {
        summary: Summary::Ready {
            reason: REASON_RUNNING,
            message,
        },
        network_id: Some(id),
        driver: network.driver,
        scope: network.scope,
        services,
    })
}

async fn write_status(net: &SwarmNetwork, api: &Api<SwarmNetwork>, o: &Observed) -> Result<(), Error> {
    let previous = net
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let status = SwarmNetworkStatus {
        observed_generation: net.metadata.generation,
        conditions: conditions::conditions(previous, net.metadata.generation, &o.summary),
        network_name: Some(net.network_name()),
        network_id: o.network_id.clone(),
        driver: o.driver.clone(),
        scope: o.scope.clone(),
        services: o.services.clone(),
    };
    apply_status(api, net, net.status.as_ref(), &status).await
}

/// Removes the network once no service uses it; until then the resource says which ones it waits
/// for and the finalizer stays. Nothing is force-removed.
async fn cleanup(net: &SwarmNetwork, ctx: &Context, api: &Api<SwarmNetwork>) -> Result<Action, Error> {
    let name = net.network_name();
    let engine = ctx.engine_for(net).await?;
    let Some(found) = engine.find_network(&name).await? else {
        return Ok(Action::await_change());
    };
    if ownership(net, found.labels.as_ref()) != Ownership::Ours
        || net.spec.deletion_policy.unwrap_or_default() == DeletionPolicy::Orphan
    {
        return Ok(Action::await_change());
    }
    let id = found.id.clone().unwrap_or_default();
    let users = engine.services_on_network(&id, true).await?;
    if !users.is_empty() {
        let message = format!(
            "deleting: waiting for services {} to stop using network {name}",
            users.join(", ")
        );
        let observed = Observed {
            summary: Summary::Reconciling {
                reason: REASON_DELETING,
                message: message.clone(),
            },
            network_id: Some(id),
            driver: found.driver,
            scope: found.scope,
            services: users,
        };
        write_status(net, api, &observed).await?;
        return Err(Error::Waiting {
            object: format!("SwarmNetwork {}", net.name_any()),
            message,
        });
    }
    engine.remove_network(&id).await?;
    info!(network = %name, %id, "removed Swarm network");
    ctx.publish(
        net,
        EventType::Normal,
        "Deleted",
        "Delete",
        format!("Removed Swarm network {name} ({id})"),
    )
    .await;
    Ok(crate::queue::requeue(Duration::from_secs(1)))
}
