//! Reconcile of one SwarmService: find the Swarm service by name, create or update it when it
//! differs, assess its tasks, write status only when it changed. Deletion goes through a finalizer.

use std::{sync::Arc, time::Duration};

use bollard::models::{Service, ServiceUpdateStatusStateEnum, Task};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
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
    OnCluster, SwarmConfig, SwarmNetwork, SwarmSecret, SwarmService, SwarmServiceStatus, VersionedStatus,
    conditions::{
        REASON_NAME_CONFLICT, REASON_PROGRESSING, REASON_ROLLED_BACK, REASON_RUNNING, REASON_TASKS_FAILING,
        REASON_UPDATE_PAUSED, REASON_WAITING_FOR_DEPENDENCY,
    },
    service::{DeletionPolicy, EndpointStatus, TaskStatus, UpdateStatus},
};
use tracing::{debug, info, warn};

use super::{build, diff, registry_auth, report, tasks};
use crate::cluster::SwarmEvent;
use crate::{
    conditions::{self, Summary},
    context::{Context, FINALIZER, error_policy, scoped_api},
    error::{Error, cause_chain},
    labels::{OWNER_NAME, OWNER_NAMESPACE, OWNER_UID, Ownership, ownership},
    swarm::Engine,
};

/// Runs the SwarmService controller until a shutdown signal, over one namespace or all.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>, concurrency: u16) {
    let api = scoped_api::<SwarmService>(ctx.client.clone(), namespace);
    let networks = scoped_api::<SwarmNetwork>(ctx.client.clone(), namespace);
    let controller = crate::context::user_changes_controller(api);
    let services = controller.store();
    // Services in `ns` for which `refers` holds: woken when the object they refer to changes.
    let users = move |ns: Option<String>, refers: &dyn Fn(&SwarmService) -> bool| {
        crate::queue::asked(
            services
                .state()
                .into_iter()
                .filter(|svc| svc.namespace() == ns && refers(svc))
                .map(|svc| ObjectRef::from_obj(svc.as_ref())),
        )
    };
    let (by_secret, by_config) = (users.clone(), users.clone());
    let swarm_changes = crate::cluster::triggers(
        &ctx.events,
        controller.store(),
        |event, svc: &SwarmService| matches!(event, SwarmEvent::Changed { kind, name, .. } if kind == "service" && *name == svc.service_name()),
    );
    let secrets_api = scoped_api::<SwarmSecret>(ctx.client.clone(), namespace);
    let configs_api = scoped_api::<SwarmConfig>(ctx.client.clone(), namespace);
    let controller = controller
        .watches(secrets_api, watcher::Config::default(), move |o: SwarmSecret| {
            let name = o.name_any();
            by_secret(o.namespace(), &|svc| {
                svc.spec.secrets.iter().any(|r| r.name == name)
            })
        })
        .watches(configs_api, watcher::Config::default(), move |o: SwarmConfig| {
            let name = o.name_any();
            by_config(o.namespace(), &|svc| {
                svc.spec.configs.iter().any(|r| r.name == name)
            })
        });
    // A SwarmNetwork that appears or becomes Ready wakes the services that wait for it, at once.
    controller
        .watches(networks, watcher::Config::default(), move |net: SwarmNetwork| {
            let name = net.name_any();
            users(net.namespace(), &|svc| {
                svc.spec
                    .networks
                    .iter()
                    .any(|n| n.external != Some(true) && n.name == name)
            })
        })
        .reconcile_on(swarm_changes)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            crate::queue::not_found::<SwarmService, _, _>(&result);
            match result {
                Ok((obj, action)) => debug!(object = %obj, ?action, "reconciled"),
                Err(e) => debug!(error = %cause_chain(&e), "reconcile failed"),
            }
        })
        .await;
}

pub async fn reconcile(svc: Arc<SwarmService>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = svc.service_name();
    crate::context::observed(svc.as_ref(), &name, reconcile_pass(svc.clone(), ctx)).await
}

async fn reconcile_pass(svc: Arc<SwarmService>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = svc.namespace().unwrap_or_default();
    let api: Api<SwarmService> = Api::namespaced(ctx.client.clone(), &ns);
    let object = format!("SwarmService {ns}/{}", svc.name_any());
    let action = finalizer(&api, FINALIZER, svc.clone(), |event| async {
        match event {
            Finalizer::Apply(svc) => apply(&svc, &ctx, &api).await,
            Finalizer::Cleanup(svc) => cleanup(&svc, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer {
        object,
        source: Box::new(e),
    })?;
    ctx.succeeded(&ObjectRef::from_obj(svc.as_ref()));
    Ok(action)
}

/// One pass's outcome: what status says and when to look again.
struct Pass {
    summary: Summary,
    service_id: Option<String>,
    replicas: Option<(i32, i32)>,
    report: Report,
    requeue: Duration,
}

/// What the swarm shows of the service beyond counts: `docker service inspect` and `ps`.
#[derive(Default)]
struct Report {
    update_status: Option<UpdateStatus>,
    tasks: Vec<TaskStatus>,
    endpoint: Option<EndpointStatus>,
}

async fn apply(svc: &SwarmService, ctx: &Context, api: &Api<SwarmService>) -> Result<Action, Error> {
    match converge(svc, ctx).await {
        Ok(pass) => {
            announce_transition(svc, ctx, &pass.summary).await;
            write_status(svc, api, status_for(svc, &pass)).await?;
            Ok(crate::queue::requeue(pass.requeue))
        }
        Err(err) => {
            // Say it where the user looks, then let the error policy back off.
            let summary = conditions::failure_summary(&err);
            let previous = svc.status.clone().unwrap_or_default();
            let pass = Pass {
                summary,
                service_id: previous.service_id.clone(),
                replicas: previous.replicas.zip(previous.desired_replicas),
                report: Report {
                    update_status: previous.update_status,
                    tasks: previous.tasks,
                    endpoint: previous.endpoint,
                },
                requeue: Duration::ZERO,
            };
            if let Err(e) = write_status(svc, api, status_for(svc, &pass)).await {
                warn!(error = %cause_chain(&e), "could not record the failure in status");
            }
            let reason = pass.summary.reason();
            ctx.publish(svc, EventType::Warning, reason, "Reconcile", cause_chain(&err))
                .await;
            Err(err)
        }
    }
}

async fn converge(svc: &SwarmService, ctx: &Context) -> Result<Pass, Error> {
    let name = svc.service_name();
    let engine = ctx.engine_for(svc).await?;
    let resolved = match dereference(svc, ctx, &engine).await? {
        Ok(resolved) => resolved,
        Err(waiting) => return Ok(waiting),
    };
    let desired = build::service_spec(svc, &resolved).map_err(|e| Error::InvalidSpec {
        object: format!(
            "SwarmService {}/{}",
            svc.namespace().unwrap_or_default(),
            svc.name_any()
        ),
        message: e.to_string(),
    })?;
    let mut rolled_back = false;
    let id = match engine.find_service(&name).await? {
        None => {
            let id = engine
                .create_service(desired, resolved.credentials.clone())
                .await?;
            info!(service = %name, id = %id, "created Swarm service");
            ctx.first_sight(&id);
            let note = format!("Created Swarm service {name} ({id})");
            ctx.publish(svc, EventType::Normal, "Created", "Create", note)
                .await;
            id
        }
        Some(existing) => {
            let labels = existing.spec.as_ref().and_then(|s| s.labels.as_ref());
            let id = existing.id.clone().unwrap_or_default();
            match ownership(svc, labels) {
                Ownership::Ours if svc.status.as_ref().and_then(|s| s.service_id.as_ref()).is_none() => {
                    // Ours, yet never reported: a create went through but its answer was lost (a
                    // manager stopped mid-call). Say it was created, once.
                    if ctx.first_sight(&id) {
                        info!(service = %name, %id, "found the Swarm service a lost create made");
                        let note = format!(
                            "Created Swarm service {name} ({id}); the manager's answer was lost, the service found by its owner label"
                        );
                        ctx.publish(svc, EventType::Normal, "Created", "Create", note)
                            .await;
                    }
                }
                Ownership::Ours => {}
                Ownership::Unmanaged if svc.wants_adoption() => {
                    info!(service = %name, "adopting unmanaged Swarm service");
                    let note = format!("Adopted Swarm service {name}; the spec of this resource now applies");
                    ctx.publish(svc, EventType::Normal, "Adopted", "Adopt", note)
                        .await;
                }
                other => return Ok(name_conflict(ctx, &name, other)),
            }
            let mut changed = diff::spec_differences(&desired, &existing.spec.clone().unwrap_or_default());
            // Registry credentials are no part of the spec Swarm reports: a new generation that
            // carries them (imagePullSecrets changed, say) is pushed once so the manager gets them.
            let new_generation =
                svc.status.as_ref().and_then(|s| s.observed_generation) != svc.metadata.generation;
            if changed.is_empty() && new_generation && resolved.credentials.is_some() {
                changed.push("registry credentials".to_string());
            }
            if !changed.is_empty() && swarm_rolled_back_this_generation(svc, &existing) {
                // Re-pushing the spec Swarm just rolled back would fail the same way, forever.
                rolled_back = true;
            } else if !changed.is_empty() {
                let version = existing.version.as_ref().and_then(|v| v.index).unwrap_or(0);
                engine
                    .update_service(&id, version, desired, resolved.credentials.clone())
                    .await?;
                report_update(svc, ctx, &name, &changed).await;
            }
            id
        }
    };
    let service = engine.inspect_service(&id).await?;
    let tasks = engine.service_tasks(&id).await?;
    let nodes = engine.node_hostnames().await?;
    let assessment = tasks::assess(&service, &tasks);
    debug!(service = %name, tasks = tasks.len(), ?assessment, "assessed tasks");
    let (summary, requeue) = if rolled_back {
        (
            rolled_back_summary(svc, &service, &tasks),
            ctx.settings.resync_interval,
        )
    } else {
        match assessment.health {
            tasks::Health::Converged => (
                Summary::Ready {
                    reason: REASON_RUNNING,
                    message: format!("{}/{} tasks running", assessment.running, assessment.desired),
                },
                ctx.settings.resync_interval,
            ),
            tasks::Health::Progressing(message) => (
                Summary::Reconciling {
                    reason: REASON_PROGRESSING,
                    message,
                },
                ctx.settings.progress_interval,
            ),
            tasks::Health::Paused(message) => (
                Summary::Stalled {
                    reason: REASON_UPDATE_PAUSED,
                    message,
                },
                ctx.settings.resync_interval,
            ),
            tasks::Health::Failing(message) => (
                Summary::Stalled {
                    reason: REASON_TASKS_FAILING,
                    message,
                },
                ctx.settings.progress_interval * 5,
            ),
        }
    };
    let report = Report {
        update_status: report::update_status(&service),
        tasks: report::task_statuses(&tasks, &nodes),
        endpoint: report::endpoint_status(&service),
    };
    Ok(Pass {
        summary,
        service_id: Some(id),
        replicas: Some((assessment.running, assessment.desired)),
        report,
        requeue,
    })
}

/// Resolves what the spec refers to by name. Something missing is not an error: the resource
/// waits (Reconciling/WaitingForDependency) and is looked at again shortly.
async fn dereference(
    svc: &SwarmService,
    ctx: &Context,
    engine: &Engine,
) -> Result<Result<build::Resolved, Pass>, Error> {
    let mut resolved = build::Resolved::default();
    let mut missing = Vec::new();
    let ns = svc.namespace().unwrap_or_default();
    let swarm_networks: Api<SwarmNetwork> = Api::namespaced(ctx.client.clone(), &ns);
    for network in &svc.spec.networks {
        let id = if network.external == Some(true) {
            engine.network_id(&network.name).await?
        } else {
            let found = swarm_networks
                .get_opt(&network.name)
                .await
                .map_err(|source| Error::Kube {
                    operation: "get SwarmNetwork",
                    object: network.name.clone(),
                    source,
                })?;
            same_cluster(svc, "spec.networks", found.as_ref())?;
            // Ready means the Swarm network exists; its ID is in status.
            found
                .filter(is_ready)
                .and_then(|n| n.status.and_then(|s| s.network_id))
        };
        match id {
            Some(id) => {
                resolved.networks.insert(network.name.clone(), id);
            }
            None if network.external == Some(true) => missing.push(format!("network {}", network.name)),
            None => missing.push(format!("SwarmNetwork {}", network.name)),
        }
    }
    // The current version of each SwarmSecret / SwarmConfig: a new one rolls the service over to it.
    let swarm_secrets: Api<SwarmSecret> = Api::namespaced(ctx.client.clone(), &ns);
    for r in &svc.spec.secrets {
        let found = swarm_secrets
            .get_opt(&r.name)
            .await
            .map_err(|source| Error::Kube {
                operation: "get SwarmSecret",
                object: r.name.clone(),
                source,
            })?;
        same_cluster(svc, "spec.secrets", found.as_ref())?;
        match found.as_ref().and_then(|o| current_version(o.status.as_ref())) {
            Some(v) => {
                resolved.secrets.insert(r.name.clone(), v);
            }
            None => missing.push(format!("SwarmSecret {}", r.name)),
        }
    }
    let swarm_configs: Api<SwarmConfig> = Api::namespaced(ctx.client.clone(), &ns);
    for r in &svc.spec.configs {
        let found = swarm_configs
            .get_opt(&r.name)
            .await
            .map_err(|source| Error::Kube {
                operation: "get SwarmConfig",
                object: r.name.clone(),
                source,
            })?;
        same_cluster(svc, "spec.configs", found.as_ref())?;
        match found.as_ref().and_then(|o| current_version(o.status.as_ref())) {
            Some(v) => {
                resolved.configs.insert(r.name.clone(), v);
            }
            None => missing.push(format!("SwarmConfig {}", r.name)),
        }
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
    for reference in &svc.spec.image_pull_secrets {
        let secret = secrets
            .get_opt(&reference.name)
            .await
            .map_err(|source| Error::Kube {
                operation: "get Secret",
                object: reference.name.clone(),
                source,
            })?;
        let Some(secret) = secret else {
            missing.push(format!("Secret {}", reference.name));
            continue;
        };
        let document = secret.data.as_ref().and_then(|d| d.get(".dockerconfigjson"));
        let Some(document) = document else {
            return Err(Error::InvalidSpec {
                object: format!("SwarmService {}", svc.name_any()),
                message: format!(
                    "spec.imagePullSecrets: Secret {} has no .dockerconfigjson (type kubernetes.io/dockerconfigjson expected)",
                    reference.name
                ),
            });
        };
        let found = registry_auth::credentials_for(&document.0, &svc.spec.image).map_err(|why| {
            Error::InvalidSpec {
                object: format!("SwarmService {}", svc.name_any()),
                message: format!("spec.imagePullSecrets: Secret {}: {why}", reference.name),
            }
        })?;
        if resolved.credentials.is_none() {
            resolved.credentials = found;
        }
    }
    if missing.is_empty() {
        return Ok(Ok(resolved));
    }
    let previous = svc.status.clone().unwrap_or_default();
    Ok(Err(Pass {
        summary: Summary::Reconciling {
            reason: REASON_WAITING_FOR_DEPENDENCY,
            message: format!("waiting for {} to exist in the swarm", missing.join(", ")),
        },
        service_id: previous.service_id,
        replicas: previous.replicas.zip(previous.desired_replicas),
        report: Report {
            update_status: previous.update_status,
            tasks: previous.tasks,
            endpoint: previous.endpoint,
        },
        requeue: ctx.settings.progress_interval * 5,
    }))
}

/// A network, secret or config of another swarm cannot be attached: its IDs mean nothing here.
fn same_cluster<K: OnCluster + kube::Resource<DynamicType = ()>>(
    svc: &SwarmService,
    field: &str,
    other: Option<&K>,
) -> Result<(), Error> {
    match other {
        Some(other) if other.cluster_name() != svc.cluster_name() => Err(Error::InvalidSpec {
            object: format!(
                "SwarmService {}/{}",
                svc.namespace().unwrap_or_default(),
                svc.name_any()
            ),
            message: format!(
                "{field}: {} {} lives on SwarmCluster {}, this service on {}",
                K::kind(&()),
                other.name_any(),
                other.cluster_name(),
                svc.cluster_name()
            ),
        }),
        _ => Ok(()),
    }
}

/// (Swarm ID, Swarm name) of the current version of a Ready SwarmSecret or SwarmConfig.
fn current_version(status: Option<&VersionedStatus>) -> Option<(String, String)> {
    let status = status?;
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == swarm_operator_crds::conditions::READY && c.status == "True");
    ready
        .then(|| status.swarm_id.clone().zip(status.swarm_name.clone()))
        .flatten()
}

fn is_ready(net: &SwarmNetwork) -> bool {
    let conditions = net
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    conditions
        .iter()
        .any(|c| c.type_ == swarm_operator_crds::conditions::READY && c.status == "True")
}

/// Swarm rolled back (failureAction Rollback) a generation this operator had already applied:
/// the spec it holds differs from ours because Swarm put the previous one back.
fn swarm_rolled_back_this_generation(svc: &SwarmService, service: &Service) -> bool {
    let state = service.update_status.as_ref().and_then(|u| u.state);
    let rolling_back = matches!(
        state,
        Some(
            ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
                | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
        )
    );
    rolling_back && svc.status.as_ref().and_then(|s| s.observed_generation) == svc.metadata.generation
}

fn rolled_back_summary(svc: &SwarmService, service: &Service, tasks: &[Task]) -> Summary {
    let template = service
        .spec
        .as_ref()
        .and_then(|s| s.task_template.clone())
        .unwrap_or_default();
    let current = |t: &Task| {
        t.spec
            .as_ref()
            .is_some_and(|s| diff::task_is_current(s, &template))
    };
    let failures = report::failures_outside(current, tasks, 3);
    let swarm_says = service
        .update_status
        .as_ref()
        .and_then(|u| u.message.clone())
        .unwrap_or_default();
    let generation = svc.metadata.generation.unwrap_or_default();
    let mut message = format!("Swarm rolled back generation {generation} ({swarm_says})");
    if !failures.is_empty() {
        message.push_str(&format!("; failing tasks: {}", failures.join("; ")));
    }
    message.push_str(". The previous spec keeps running; change the spec to try again");
    Summary::Stalled {
        reason: REASON_ROLLED_BACK,
        message,
    }
}

fn name_conflict(ctx: &Context, name: &str, owner: Ownership) -> Pass {
    let holder = match owner {
        Ownership::Other { namespace, name } => format!("SwarmService {namespace}/{name}"),
        _ => "something other than swarm-operator".to_string(),
    };
    Pass {
        summary: Summary::Stalled {
            reason: REASON_NAME_CONFLICT,
            message: format!(
                "a Swarm service named {name} already exists and belongs to {holder}; it is left untouched. \
                 Remove it or set spec.serviceName to another name"
            ),
        },
        service_id: None,
        replicas: None,
        report: Report::default(),
        requeue: ctx.settings.resync_interval,
    }
}

/// An update on a generation already applied means someone changed the Swarm service out of band.
async fn report_update(svc: &SwarmService, ctx: &Context, name: &str, changed: &[String]) {
    let fields = changed.join(", ");
    let applied = svc.status.as_ref().and_then(|s| s.observed_generation) == svc.metadata.generation;
    // A SwarmSecret or SwarmConfig got a new version: the service rolls over to it.
    let rotation = changed.iter().all(|f| {
        f.starts_with("TaskTemplate.ContainerSpec.Secrets")
            || f.starts_with("TaskTemplate.ContainerSpec.Configs")
    });
    if applied && rotation {
        info!(service = %name, %fields, "rolling to new secret/config versions");
        let note = format!("Rolling Swarm service {name} to new secret/config versions ({fields})");
        ctx.publish(svc, EventType::Normal, "Rotated", "Update", note)
            .await;
    } else if applied {
        crate::metrics::metrics().drift_corrected("SwarmService");
        warn!(service = %name, %fields, "reverting out-of-band change");
        let note = format!("Swarm service {name} was changed outside swarm-operator; reverted {fields}");
        ctx.publish(svc, EventType::Warning, "DriftReverted", "Update", note)
            .await;
    } else {
        info!(service = %name, %fields, "updated Swarm service");
        ctx.publish(
            svc,
            EventType::Normal,
            "Updated",
            "Update",
            format!("Updated Swarm service {name}: {fields}"),
        )
        .await;
    }
}

/// Warning events for entering a stalled state, once per transition rather than every pass.
async fn announce_transition(svc: &SwarmService, ctx: &Context, summary: &Summary) {
    let Summary::Stalled { reason, message } = summary else {
        return;
    };
    let before = svc.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == swarm_operator_crds::conditions::STALLED)
            .map(|c| (c.status.clone(), c.reason.clone()))
    });
    if before != Some(("True".into(), reason.to_string())) {
        warn!(object = %ObjectRef::from_obj(svc), reason, message = %message, "stalled");
        ctx.publish(svc, EventType::Warning, reason, "Reconcile", message.clone())
            .await;
    }
}

fn status_for(svc: &SwarmService, pass: &Pass) -> SwarmServiceStatus {
    let report = &pass.report;
    let previous = svc
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    SwarmServiceStatus {
        observed_generation: svc.metadata.generation,
        conditions: conditions::conditions(previous, svc.metadata.generation, &pass.summary),
        service_name: Some(svc.service_name()),
        service_id: pass.service_id.clone(),
        replicas: pass.replicas.map(|r| r.0),
        desired_replicas: pass.replicas.map(|r| r.1),
        update_status: report.update_status.clone(),
        tasks: report.tasks.clone(),
        endpoint: report.endpoint.clone(),
    }
}

async fn write_status(
    svc: &SwarmService,
    api: &Api<SwarmService>,
    status: SwarmServiceStatus,
) -> Result<(), Error> {
    crate::status::apply_status(api, svc, svc.status.as_ref(), &status).await
}

async fn cleanup(svc: &SwarmService, ctx: &Context) -> Result<Action, Error> {
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
            engine.remove_service(&id).await?;
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
                for key in [OWNER_UID, OWNER_NAMESPACE, OWNER_NAME] {
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
