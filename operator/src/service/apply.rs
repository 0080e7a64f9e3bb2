//! One SwarmService pass against the swarm: dereference, build, plan, then carry the plan out
//! (Engine writes and the events that say them) and observe the tasks for status.

use bollard::auth::DockerCredentials;
use bollard::models::{Service, ServiceSpec};
use kube::runtime::events::EventType;
use swarm_operator_crds::{
    OnCluster, SwarmService,
    conditions::{REASON_SOURCE_MISSING, REASON_WAITING_FOR_DEPENDENCY},
};
use tracing::{debug, info, warn};

use super::{
    build,
    dereference::{self, Dependencies},
    history,
    plan::{self, Cause, Change, Claim, Plan},
    status::{self, Facts},
    tasks,
};
use crate::{
    conditions::Summary,
    context::{Context, resource_name},
    error::Error,
    pass::Outcome,
    swarm::{self, Engine},
};

pub async fn converge(svc: &SwarmService, ctx: &Context) -> Result<Outcome<Facts>, Error> {
    // A resource no pass has reported on yet is new: its service is created without a read first
    // (which would list the cluster's services again and again while a deploy makes thousands),
    // and read only when the Engine refuses the create: the name taken (a lost create, or
    // another's service), or a published port taken, which is what a second create of the same
    // service hears when a pass runs on a cached copy from before the first one's status.
    let new = svc
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or_default()
        == 0;
    // Boxed: the pass's future is large, and two of them inline would not fit a worker's stack.
    match Box::pin(converge_reading(svc, ctx, !new)).await {
        Err(e) if new && read_after(&e) => {
            debug!(service = %svc.service_name(), error = %e, "the create was refused: reading what is there");
            Box::pin(converge_reading(svc, ctx, true)).await
        }
        other => other,
    }
}

/// Pure: whether a pass that wrote without reading first reads and plans again after `error`:
/// any refusal by the Engine (the service may exist after all). Not when the Engine cannot be
/// reached, which a read would only hear again.
fn read_after(error: &Error) -> bool {
    matches!(error, Error::Engine(e) if e.answered())
}

/// One pass; `read`: whether the Swarm service is looked up first, or taken not to exist.
async fn converge_reading(svc: &SwarmService, ctx: &Context, read: bool) -> Result<Outcome<Facts>, Error> {
    let engine = ctx.engine_for(svc).await?;
    let (resolved, credentials) = match dereference::dependencies(svc, ctx, &engine).await? {
        Dependencies::Found {
            resolved,
            credentials,
        } => (resolved, credentials.map(|c| *c)),
        Dependencies::Missing(missing) => return Ok(waiting_for(svc, ctx, &missing)),
        Dependencies::SourceMissing(missing) => return Ok(source_missing(svc, ctx, &missing)),
    };
    let env_sources = resolved.env.versions();
    let desired = build::service_spec(svc, &resolved).map_err(|e| Error::InvalidSpec {
        object: resource_name(svc),
        message: e.to_string(),
    })?;
    let name = svc.service_name();
    let existing = if read {
        engine.find_service(&name).await?
    } else {
        None
    };
    // The generation the Swarm service carries: what was written, whatever a stale cached status
    // says (a pass right after the one that wrote may still see the status from before it).
    let on_swarm = existing
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(super::diff::written_generation);
    let source = credentials.as_ref().map(|c| c.source.clone());
    let credentials = credentials.map(|c| c.credentials);
    let adoption_allowed = ctx.clusters.adoption_allowed(svc.cluster_name());
    let plan = plan::plan(
        svc,
        &desired,
        existing.as_ref(),
        source.as_deref(),
        &env_sources,
        adoption_allowed,
    );
    debug!(service = %name, ?plan, "planned");
    // Which Swarm service, whether Swarm rolled this generation back, whether it was written now.
    // What a create writes, kept to report on without reading it back (see `observe`).
    let created = matches!(plan, Plan::Create).then(|| desired.clone());
    let (id, held, wrote) = match plan {
        Plan::Create => (
            {
                history::record(svc, &ctx.client).await?;
                create(svc, ctx, &engine, desired, credentials).await?
            },
            false,
            true,
        ),
        Plan::Conflict(owner) => {
            return Ok(Outcome {
                summary: status::name_conflict(&name, &owner),
                facts: Facts::default(),
                requeue: ctx.settings.resync_interval,
            });
        }
        Plan::AdoptionNotAllowed => {
            return Ok(Outcome {
                summary: status::adoption_not_allowed(&name, svc.cluster_name()),
                facts: Facts::default(),
                requeue: ctx.settings.resync_interval,
            });
        }
        Plan::Converge { claim, change } => {
            // A plan converges only on a service it was given.
            let existing = existing.unwrap_or_default();
            let id = existing.id.clone().unwrap_or_default();
            announce_claim(svc, ctx, &claim, &id).await;
            let held = change == Change::HoldRolledBack;
            let wrote = matches!(change, Change::Update { .. });
            if let Change::Update { fields, cause } = change {
                // The generations the user wrote are the history; drift, rotations and
                // credentials rewrite the same generation.
                if matches!(cause, Cause::NewGeneration | Cause::SameSpec) {
                    history::record(svc, &ctx.client).await?;
                }
                let version = existing.version.as_ref().and_then(|v| v.index).unwrap_or(0);
                engine.update_service(&id, version, desired, credentials).await?;
                announce_update(svc, ctx, &fields, &cause).await;
            }
            (id, held, wrote)
        }
    };
    let mut outcome = observe(svc, ctx, &engine, &id, held, created.as_ref()).await?;
    let before = Facts::before(svc);
    // Every write carries the spec of this generation and the credentials in use.
    (
        outcome.facts.written_generation,
        outcome.facts.pull_credentials_from,
        outcome.facts.env_sources,
    ) = if wrote {
        (
            svc.metadata.generation,
            source.or(before.pull_credentials_from),
            env_sources,
        )
    } else {
        (
            // Never backwards: after Swarm rolls a generation back, its label is the older one.
            before.written_generation.max(on_swarm),
            before.pull_credentials_from,
            before.env_sources,
        )
    };
    Ok(outcome)
}

/// How long a pass that created a service waits for the swarm's allocator to write it (its
/// virtual IPs, published ports) before it reports without them and lets that write wake another
/// pass: on this machine the allocator's write came within 30 ms for half of a stack of 200, and
/// within 170 ms for 90%. One pass and one status write instead of two.
const ALLOCATION_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// What the tasks show, after the plan was carried out. `held`: Swarm rolled this generation back.
/// A service `created` this pass (with that spec) has no task to show yet, and its tasks are not
/// read (the progress check that follows reads them); nor is the service itself unless the Engine
/// gives it what the status reports (published ports, virtual IPs on networks). A deploy of many
/// services costs the Engine its writes and the shared listings, not two reads per service.
async fn observe(
    svc: &SwarmService,
    ctx: &Context,
    engine: &Engine,
    id: &str,
    held: bool,
    created: Option<&ServiceSpec>,
) -> Result<Outcome<Facts>, Error> {
    let mut service: Service = match created {
        Some(spec) if !swarm::allocated(spec) => Service {
            id: Some(id.to_string()),
            spec: Some(spec.clone()),
            ..Default::default()
        },
        Some(_) => engine.inspect_service_directly(id).await?,
        None => engine.inspect_service(id).await?,
    };
    if let Some(spec) = created
        && !swarm::allocation_shown(spec, &service)
    {
        let name = spec.name.as_deref().unwrap_or_default();
        // Written within the wait, or just before the wait's end took its echo for news.
        if engine.allocation_written(name, ALLOCATION_WAIT).await || !engine.allocation_pending(name) {
            debug!("the allocator wrote the new service since its inspection: reading it again");
            service = engine.inspect_service_directly(id).await?;
        } else {
            debug!("the allocator has not written the new service yet: its write will wake a pass");
        }
    }
    let tasks = if created.is_some() {
        Vec::new()
    } else {
        engine.service_tasks(id).await?
    };
    let nodes = engine.node_facts().await?;
    let assessment = tasks::assess(&service, &tasks, &nodes);
    debug!(tasks = tasks.len(), ?assessment, "assessed tasks");
    let before = svc.status.as_ref().and_then(|s| s.rollback.as_ref());
    let mut facts = Facts::seen(&service, &tasks, &nodes, &assessment, before);
    let (summary, requeue) = if held {
        (
            status::rolled_back(svc, &service, &tasks, facts.rollback.as_ref()),
            ctx.settings.resync_interval,
        )
    } else {
        status::summary(&assessment, &ctx.settings)
    };
    facts.service_id = Some(id.to_string());
    Ok(Outcome {
        summary,
        facts,
        requeue,
    })
}

/// What the environment reads is missing: the service stays as it is until the user creates it
/// (the Secret and ConfigMap watches wake it then).
fn source_missing(svc: &SwarmService, ctx: &Context, missing: &[String]) -> Outcome<Facts> {
    Outcome {
        summary: Summary::Stalled {
            reason: REASON_SOURCE_MISSING,
            message: format!(
                "the environment reads what does not exist: {}",
                missing.join(", ")
            ),
        },
        facts: Facts::before(svc),
        requeue: ctx.settings.resync_interval,
    }
}

fn waiting_for(svc: &SwarmService, ctx: &Context, missing: &[String]) -> Outcome<Facts> {
    Outcome {
        summary: Summary::Reconciling {
            reason: REASON_WAITING_FOR_DEPENDENCY,
            message: format!("waiting for {} to exist in the swarm", missing.join(", ")),
        },
        facts: Facts::before(svc),
        requeue: ctx.settings.progress_interval * 5,
    }
}

async fn create(
    svc: &SwarmService,
    ctx: &Context,
    engine: &Engine,
    desired: ServiceSpec,
    credentials: Option<DockerCredentials>,
) -> Result<String, Error> {
    let name = svc.service_name();
    let id = engine.create_service(desired, credentials).await?;
    info!(service = %name, id = %id, "created Swarm service");
    // No event: the status says it (serviceID, Ready), and an event per object would be one more
    // Kubernetes write for every service a deploy makes. Events say what the status cannot keep:
    // changes to a service that existed, deletions, and every Warning.
    ctx.first_announcement(&id);
    Ok(id)
}

async fn announce_claim(svc: &SwarmService, ctx: &Context, claim: &Claim, id: &str) {
    let name = svc.service_name();
    match claim {
        Claim::Ours => {}
        Claim::LostCreate => {
            if ctx.first_announcement(id) {
                info!(service = %name, %id, "found the Swarm service a lost create made");
                let note = format!(
                    "Created Swarm service {name} ({id}); the manager's answer was lost, the service found by its owner label"
                );
                ctx.publish(svc, EventType::Normal, "Created", "Create", note)
                    .await;
            }
        }
        Claim::Adopt => {
            info!(service = %name, "adopting unmanaged Swarm service");
            let note = format!("Adopted Swarm service {name}; the spec of this resource now applies");
            ctx.publish(svc, EventType::Normal, "Adopted", "Adopt", note)
                .await;
        }
    }
}

async fn announce_update(svc: &SwarmService, ctx: &Context, fields: &[String], cause: &Cause) {
    let name = svc.service_name();
    let fields = fields.join(", ");
    match cause {
        Cause::SourceChanged => {
            info!(service = %name, %fields, "rolling to new values of the environment's sources");
            let note = format!(
                "Rolling Swarm service {name}: a Secret or ConfigMap its environment reads changed ({fields})"
            );
            ctx.publish(svc, EventType::Normal, "SourceChanged", "Update", note)
                .await;
        }
        Cause::Rotation => {
            info!(service = %name, %fields, "rolling to new secret/config versions");
            let note = format!("Rolling Swarm service {name} to new secret/config versions ({fields})");
            ctx.publish(svc, EventType::Normal, "Rotated", "Update", note)
                .await;
        }
        Cause::DriftReverted => {
            ctx.metrics.drift_corrected("SwarmService");
            warn!(service = %name, %fields, "reverting out-of-band change");
            let note = format!("Swarm service {name} was changed outside swarm-operator; reverted {fields}");
            ctx.publish(svc, EventType::Warning, "DriftReverted", "Update", note)
                .await;
        }
        Cause::SameSpec => {
            debug!(service = %name, "recorded a generation that changes nothing the swarm runs")
        }
        Cause::NewGeneration | Cause::Credentials => {
            let what = if *cause == Cause::Credentials {
                "registry credentials".to_string()
            } else {
                fields
            };
            info!(service = %name, fields = %what, "updated Swarm service");
            let note = format!("Updated Swarm service {name}: {what}");
            ctx.publish(svc, EventType::Normal, "Updated", "Update", note)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::EngineError;

    fn refused(status_code: u16, message: &str) -> Error {
        Error::Engine(EngineError::Call {
            operation: "create service",
            object: "web".into(),
            source: bollard::errors::Error::DockerResponseServerError {
                status_code,
                message: message.into(),
            },
        })
    }

    #[test]
    fn a_create_without_a_read_reads_after_any_refusal_of_the_engine() {
        assert!(read_after(&refused(
            409,
            "name conflicts with an existing object"
        )));
        // What a second create of a service with a published port hears.
        assert!(read_after(&refused(
            400,
            "rpc error: code = InvalidArgument desc = port '8000' is already in use by service 'web'"
        )));
        let unsent = Error::Engine(EngineError::NotLeader {
            operation: "create service",
            object: "web".into(),
        });
        assert!(!read_after(&unsent), "a write never sent is not read after");
        let other = Error::Waiting {
            object: "web".into(),
            message: "status changed".into(),
        };
        assert!(!read_after(&other));
    }
}
