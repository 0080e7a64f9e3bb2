//! Pure translation of a SwarmService into the Engine API's ServiceSpec. Values the CRD schema
//! cannot fully check (durations, quantities) fail here with the field named.

use std::collections::HashMap;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, HealthConfig, Limit, Mount as EngineMount, MountTmpfsOptions,
    MountType as EngineMountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
    NetworkAttachmentConfig, ResourceObject, ResourcesUlimits, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecModeReplicatedJob, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecDnsConfig,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets, TaskSpecLogDriver,
    TaskSpecPlacement, TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use swarm_operator_crds::service::{
    DataReference, Duration, EndpointMode, FailureAction, Mount, MountType, PortConfig, PortProtocol,
    PublishMode, Quantity, RestartCondition, ServiceMode, SwarmService, SwarmServiceSpec, UpdateConfig,
    UpdateOrder,
};

use crate::labels::{GENERATION, owner_labels};

/// A field whose value cannot be turned into the Engine's form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {message}")]
pub struct InvalidField {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str) -> impl FnOnce(String) -> InvalidField + '_ {
    move |message| InvalidField {
        field: field.to_string(),
        message,
    }
}

fn nanos(field: &str, d: &Option<Duration>) -> Result<Option<i64>, InvalidField> {
    d.as_ref()
        .map(Duration::nanos)
        .transpose()
        .map_err(invalid(field))
}

fn nano_cpus(field: &str, q: &Option<Quantity>) -> Result<Option<i64>, InvalidField> {
    q.as_ref()
        .map(Quantity::nano_cpus)
        .transpose()
        .map_err(invalid(field))
}

fn bytes(field: &str, q: &Option<Quantity>) -> Result<Option<i64>, InvalidField> {
    q.as_ref()
        .map(Quantity::bytes)
        .transpose()
        .map_err(invalid(field))
}

fn some_vec<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn some_map<'a, M>(m: &'a M) -> Option<HashMap<String, String>>
where
    &'a M: IntoIterator<Item = (&'a String, &'a String)>,
{
    let map: HashMap<String, String> = m.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    (!map.is_empty()).then_some(map)
}

/// What the spec refers to by name, resolved to the Engine's IDs before building.
#[derive(Default, Clone, Debug)]
pub struct Resolved {
    /// Network name -> network ID. The Engine reports attachments by ID, so the desired spec says
    /// the ID too, or every comparison would find a difference.
    pub networks: HashMap<String, String>,
    /// SwarmSecret / SwarmConfig name -> (Swarm ID, Swarm name) of its current version.
    pub secrets: HashMap<String, (String, String)>,
    pub configs: HashMap<String, (String, String)>,
    /// The Secrets and ConfigMaps the environment reads from.
    pub env: super::env::Sources,
}

/// The ServiceSpec the Swarm should hold for `svc`, owner labels included.
pub fn service_spec(svc: &SwarmService, resolved: &Resolved) -> Result<ServiceSpec, InvalidField> {
    let spec = &svc.spec;
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.extend(owner_labels(svc));
    if let Some(generation) = svc.metadata.generation {
        labels.insert(GENERATION.to_string(), generation.to_string());
    }
    Ok(ServiceSpec {
        name: Some(svc.service_name()),
        labels: Some(labels),
        task_template: Some(task_spec(spec, resolved)?),
        mode: Some(mode(spec)),
        update_config: spec.update_config.as_deref().map(update_config).transpose()?,
        rollback_config: spec.rollback_config.as_deref().map(rollback_config).transpose()?,
        endpoint_spec: Some(EndpointSpec {
            mode: spec.endpoint_mode.map(|m| match m {
                EndpointMode::VIP => EndpointSpecModeEnum::VIP,
                EndpointMode::DNSRR => EndpointSpecModeEnum::DNSRR,
            }),
            ports: (!spec.ports.is_empty()).then(|| spec.ports.iter().map(port).collect()),
        }),
        ..Default::default()
    })
}

fn mode(spec: &SwarmServiceSpec) -> ServiceSpecMode {
    match spec.mode.unwrap_or_default() {
        ServiceMode::Replicated => ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(spec.replicas.unwrap_or(1))),
            }),
            ..Default::default()
        },
        ServiceMode::Global => ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        },
        ServiceMode::ReplicatedJob => ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: Some(spec.max_concurrent.unwrap_or(1)),
                total_completions: Some(spec.total_completions.or(spec.max_concurrent).unwrap_or(1)),
            }),
            ..Default::default()
        },
        ServiceMode::GlobalJob => ServiceSpecMode {
            global_job: Some(HashMap::new()),
            ..Default::default()
        },
    }
}

fn task_spec(spec: &SwarmServiceSpec, resolved: &Resolved) -> Result<TaskSpec, InvalidField> {
    let networks = spec
        .networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let target = resolved
                .networks
                .get(&n.name)
                .cloned()
                .ok_or_else(|| InvalidField {
                    field: format!("networks[{i}].name"),
                    message: format!("network {} is not resolved", n.name),
                })?;
            Ok(NetworkAttachmentConfig {
                target: Some(target),
                aliases: some_vec(&n.aliases),
                driver_opts: some_map(&n.driver_options),
            })
        })
        .collect::<Result<Vec<_>, InvalidField>>()?;
    let resources = spec
        .resources
        .as_ref()
        .map(|r| -> Result<_, InvalidField> {
            Ok(TaskSpecResources {
                limits: r
                    .limits
                    .as_ref()
                    .map(|l| -> Result<_, InvalidField> {
                        Ok(Limit {
                            nano_cpus: nano_cpus("resources.limits.cpu", &l.cpu)?,
                            memory_bytes: bytes("resources.limits.memory", &l.memory)?,
                            pids: l.pids,
                        })
                    })
                    .transpose()?,
                reservations: r
                    .reservations
                    .as_ref()
                    .map(|l| -> Result<_, InvalidField> {
                        Ok(ResourceObject {
                            nano_cpus: nano_cpus("resources.reservations.cpu", &l.cpu)?,
                            memory_bytes: bytes("resources.reservations.memory", &l.memory)?,
                            ..Default::default()
                        })
                    })
                    .transpose()?,
                ..Default::default()
            })
        })
        .transpose()?;
    let restart_policy = spec
        .restart_policy
        .as_ref()
        .map(|r| -> Result<_, InvalidField> {
            Ok(TaskSpecRestartPolicy {
                condition: r.condition.map(|c| match c {
                    RestartCondition::None => TaskSpecRestartPolicyConditionEnum::NONE,
                    RestartCondition::OnFailure => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
                    RestartCondition::Any => TaskSpecRestartPolicyConditionEnum::ANY,
                }),
                delay: nanos("restartPolicy.delay", &r.delay)?,
                max_attempts: r.max_attempts,
                window: nanos("restartPolicy.window", &r.window)?,
            })
        })
        .transpose()?;
    let placement = spec.placement.as_ref().map(|p| TaskSpecPlacement {
        constraints: some_vec(&p.constraints),
        preferences: (!p.preferences.is_empty()).then(|| {
            p.preferences
                .iter()
                .map(|pref| TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread {
                        spread_descriptor: Some(pref.spread.clone()),
                    }),
                })
                .collect()
        }),
        max_replicas: p.max_replicas_per_node,
        ..Default::default()
    });
    Ok(TaskSpec {
        container_spec: Some(container_spec(spec, resolved)?),
        resources,
        restart_policy,
        placement,
        networks: some_vec(&networks),
        log_driver: spec.log_driver.as_ref().map(|l| TaskSpecLogDriver {
            name: Some(l.name.clone()),
            options: some_map(&l.options),
        }),
        ..Default::default()
    })
}

fn container_spec(
    spec: &SwarmServiceSpec,
    resolved: &Resolved,
) -> Result<TaskSpecContainerSpec, InvalidField> {
    let env =
        super::env::assemble(&spec.env, &spec.env_from, &resolved.env).map_err(|problem| match problem {
            super::env::Problem::Invalid { field, message } => InvalidField { field, message },
            // Dereferencing stops at what is missing; a build that meets it anyway says so.
            super::env::Problem::Missing(missing) => InvalidField {
                field: "env".into(),
                message: format!("missing {}", missing.join(", ")),
            },
        })?;
    let health_check = spec
        .healthcheck
        .as_ref()
        .map(|h| -> Result<_, InvalidField> {
            Ok(HealthConfig {
                test: some_vec(&h.test),
                interval: nanos("healthcheck.interval", &h.interval)?,
                timeout: nanos("healthcheck.timeout", &h.timeout)?,
                retries: h.retries,
                start_period: nanos("healthcheck.startPeriod", &h.start_period)?,
                ..Default::default()
            })
        })
        .transpose()?;
    let mounts = spec
        .mounts
        .iter()
        .enumerate()
        .map(|(i, m)| mount(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let file = |r: &DataReference| TaskSpecContainerSpecFile {
        name: Some(r.target.clone().unwrap_or_else(|| r.name.clone())),
        uid: Some(r.uid.clone().unwrap_or_else(|| "0".into())),
        gid: Some(r.gid.clone().unwrap_or_else(|| "0".into())),
        mode: Some(r.mode.unwrap_or(0o444) as u32),
    };
    let unresolved = |field: &str, i: usize, name: &str| InvalidField {
        field: format!("{field}[{i}].name"),
        message: format!("{name} is not resolved"),
    };
    let secrets = spec
        .secrets
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (id, swarm_name) = resolved
                .secrets
                .get(&r.name)
                .ok_or_else(|| unresolved("secrets", i, &r.name))?;
            Ok(TaskSpecContainerSpecSecrets {
                file: Some(file(r)),
                secret_id: Some(id.clone()),
                secret_name: Some(swarm_name.clone()),
            })
        })
        .collect::<Result<Vec<_>, InvalidField>>()?;
    let configs = spec
        .configs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (id, swarm_name) = resolved
                .configs
                .get(&r.name)
                .ok_or_else(|| unresolved("configs", i, &r.name))?;
            let f = file(r);
            Ok(TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 {
                    name: f.name,
                    uid: f.uid,
                    gid: f.gid,
                    mode: f.mode,
                }),
                config_id: Some(id.clone()),
                config_name: Some(swarm_name.clone()),
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, InvalidField>>()?;
    Ok(TaskSpecContainerSpec {
        image: Some(spec.image.clone()),
        labels: some_map(&spec.container_labels),
        command: spec.command.clone(),
        args: spec.args.clone(),
        hostname: spec.hostname.clone(),
        env: some_vec(&env),
        dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        groups: some_vec(&spec.groups),
        tty: spec.tty.then_some(true),
        read_only: spec.read_only.then_some(true),
        mounts: some_vec(&mounts),
        secrets: some_vec(&secrets),
        configs: some_vec(&configs),
        stop_signal: spec.stop_signal.clone(),
        stop_grace_period: nanos("stopGracePeriod", &spec.stop_grace_period)?,
        health_check,
        hosts: (!spec.hosts.is_empty()).then(|| {
            spec.hosts
                .iter()
                .map(|h| format!("{} {}", h.ip, h.hostnames.join(" ")))
                .collect()
        }),
        dns_config: spec.dns.as_ref().map(|d| TaskSpecContainerSpecDnsConfig {
            nameservers: some_vec(&d.nameservers),
            search: some_vec(&d.search),
            options: some_vec(&d.options),
        }),
        init: spec.init,
        sysctls: some_map(&spec.sysctls),
        capability_add: some_vec(&spec.capability_add),
        capability_drop: some_vec(&spec.capability_drop),
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect()
        }),
        ..Default::default()
    })
}

fn mount(index: usize, m: &Mount) -> Result<EngineMount, InvalidField> {
    let tmpfs_options = m
        .tmpfs_options
        .as_ref()
        .map(|t| -> Result<_, InvalidField> {
            Ok(MountTmpfsOptions {
                size_bytes: bytes(&format!("mounts[{index}].tmpfsOptions.size"), &t.size)?,
                mode: t.mode,
                ..Default::default()
            })
        })
        .transpose()?;
    Ok(EngineMount {
        target: Some(m.target.clone()),
        source: m.source.clone(),
        typ: Some(match m.type_ {
            MountType::Bind => EngineMountType::BIND,
            MountType::Volume => EngineMountType::VOLUME,
            MountType::Tmpfs => EngineMountType::TMPFS,
        }),
        read_only: m.read_only.then_some(true),
        volume_options: m.volume_options.as_ref().map(|v| MountVolumeOptions {
            no_copy: v.no_copy.then_some(true),
            labels: some_map(&v.labels),
            driver_config: (v.driver.is_some() || !v.options.is_empty()).then(|| {
                MountVolumeOptionsDriverConfig {
                    name: v.driver.clone(),
                    options: some_map(&v.options),
                }
            }),
            ..Default::default()
        }),
        tmpfs_options,
        ..Default::default()
    })
}

/// `docker service create` fills the fields a user leaves out; so do we, so that a partial
/// updateConfig means the same here as there (parallelism 0 would mean "all at once" to the Engine).
struct UpdateDefaults {
    parallelism: i64,
    delay: i64,
    monitor: i64,
    max_failure_ratio: f64,
}

fn update_defaults(field: &str, u: &UpdateConfig) -> Result<UpdateDefaults, InvalidField> {
    Ok(UpdateDefaults {
        parallelism: u.parallelism.unwrap_or(1),
        delay: nanos(&format!("{field}.delay"), &u.delay)?.unwrap_or(0),
        monitor: nanos(&format!("{field}.monitor"), &u.monitor)?.unwrap_or(5_000_000_000),
        max_failure_ratio: u.max_failure_ratio.unwrap_or(0.0),
    })
}

fn update_config(u: &UpdateConfig) -> Result<ServiceSpecUpdateConfig, InvalidField> {
    let d = update_defaults("updateConfig", u)?;
    Ok(ServiceSpecUpdateConfig {
        parallelism: Some(d.parallelism),
        delay: Some(d.delay),
        failure_action: Some(match u.failure_action.unwrap_or(FailureAction::Pause) {
            FailureAction::Pause => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
            FailureAction::Continue => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
            FailureAction::Rollback => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
        }),
        monitor: Some(d.monitor),
        max_failure_ratio: Some(d.max_failure_ratio),
        order: Some(match u.order.unwrap_or(UpdateOrder::StopFirst) {
            UpdateOrder::StopFirst => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
            UpdateOrder::StartFirst => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
        }),
    })
}

fn rollback_config(u: &UpdateConfig) -> Result<ServiceSpecRollbackConfig, InvalidField> {
    let d = update_defaults("rollbackConfig", u)?;
    Ok(ServiceSpecRollbackConfig {
        parallelism: Some(d.parallelism),
        delay: Some(d.delay),
        failure_action: Some(match u.failure_action.unwrap_or(FailureAction::Pause) {
            FailureAction::Continue => ServiceSpecRollbackConfigFailureActionEnum::CONTINUE,
            // Rollback inside rollbackConfig is rejected by the CRD; Pause is the safe reading.
            FailureAction::Pause | FailureAction::Rollback => {
                ServiceSpecRollbackConfigFailureActionEnum::PAUSE
            }
        }),
        monitor: Some(d.monitor),
        max_failure_ratio: Some(d.max_failure_ratio),
        order: Some(match u.order.unwrap_or(UpdateOrder::StopFirst) {
            UpdateOrder::StopFirst => ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
            UpdateOrder::StartFirst => ServiceSpecRollbackConfigOrderEnum::START_FIRST,
        }),
    })
}

fn port(p: &PortConfig) -> EndpointPortConfig {
    EndpointPortConfig {
        protocol: Some(match p.protocol {
            PortProtocol::TCP => EndpointPortConfigProtocolEnum::TCP,
            PortProtocol::UDP => EndpointPortConfigProtocolEnum::UDP,
            PortProtocol::SCTP => EndpointPortConfigProtocolEnum::SCTP,
        }),
        target_port: Some(i64::from(p.target)),
        published_port: p.published.map(i64::from),
        publish_mode: Some(match p.mode {
            PublishMode::Ingress => EndpointPortConfigPublishModeEnum::INGRESS,
            PublishMode::Host => EndpointPortConfigPublishModeEnum::HOST,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
