//! The stack file's services, networks, secrets and configs as the kinds that exist, by docker/cli's
//! `cli/compose/convert` rules: names `<stack>_<name>` unless `name:` says otherwise, the
//! `com.docker.stack.namespace` label everywhere and `com.docker.stack.image` on services, a
//! `<stack>_default` overlay for services without networks, the service's name as an alias on
//! each network, `external` never created, environment, ports, secrets and networks sorted.
//! Pure: the controller and `swarm-operator convert` both call it.

use std::collections::{BTreeMap, BTreeSet};

use swarm_operator_crds::{
    ClusterRef,
    common::{Duration, Quantity},
    data::{KeyRef, SwarmConfigSpec, SwarmSecretSpec},
    network::{Ipam, IpamConfig, SwarmNetworkSpec},
    service::{
        DataReference, DnsConfig, EndpointMode, EnvVar, FailureAction, Healthcheck, HostEntry, LogDriver,
        Mount, MountType, NetworkAttachment, Placement, PlacementPreference, PortConfig, PortProtocol,
        PublishMode, ResourceLimits, ResourceReservations, Resources, RestartCondition, RestartPolicy,
        ServiceMode, SwarmServiceSpec, TmpfsOptions, Ulimit, UpdateConfig, UpdateOrder, VolumeOptions,
    },
    stack::DataSource,
};

use super::{
    compose::{self, ComposeFile, FileObject, Service},
    units,
};

/// Label docker/cli puts on every object of a stack; `docker stack ls` counts services by it.
pub const LABEL_NAMESPACE: &str = "com.docker.stack.namespace";
/// Label docker/cli puts on a stack's services: the image as the file names it.
pub const LABEL_IMAGE: &str = "com.docker.stack.image";

/// One object of the stack: its name in the file, its resource name, its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Child<S> {
    pub name: String,
    pub resource: String,
    pub spec: S,
}

/// What a stack file compiles into.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compiled {
    pub services: Vec<Child<SwarmServiceSpec>>,
    pub networks: Vec<Child<SwarmNetworkSpec>>,
    pub secrets: Vec<Child<SwarmSecretSpec>>,
    pub configs: Vec<Child<SwarmConfigSpec>>,
}

/// A value the file gives that cannot be converted, with where.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Invalid {
    pub path: String,
    pub message: String,
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// Everything the conversion needs besides the file.
pub struct Scope<'a> {
    /// The stack's name in the swarm.
    pub stack: &'a str,
    pub cluster_ref: Option<&'a ClusterRef>,
    /// For `environment` entries without a value, as the CLI takes them from its environment.
    pub variables: &'a BTreeMap<String, String>,
    pub sources: &'a BTreeMap<String, DataSource>,
}

impl Scope<'_> {
    /// `<stack>_<name>`, docker/cli's `Namespace.Scope`.
    fn scoped(&self, name: &str) -> String {
        format!("{}_{name}", self.stack)
    }
    fn stack_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut out = labels.clone();
        out.insert(LABEL_NAMESPACE.into(), self.stack.into());
        out
    }
}

/// The Kubernetes name of an object whose Swarm name is `swarm_name`: lowercase, with `_` and
/// `.` as `-` (a Swarm name may have them, a resource name may not).
pub fn resource_name(swarm_name: &str) -> String {
    swarm_name
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Compiles `file`, its services read one by one from `services` (in the file's order, by name):
/// each is converted as it comes and dropped, so a file's services are never all held in their
/// typed form (about 2.5 KB each, 2.5 MB at the peak of a stack of 1000 before).
pub fn compile(
    scope: &Scope,
    file: &ComposeFile,
    services: impl IntoIterator<Item = Result<(String, Service), Invalid>>,
) -> Result<Compiled, Invalid> {
    let services = services.into_iter();
    let mut used_networks = BTreeSet::new();
    let mut out = Compiled::default();
    out.services.reserve_exact(services.size_hint().0);
    for read in services {
        let (name, service) = read?;
        let spec = service_spec(scope, file, &name, &service, &mut used_networks)?;
        out.services.push(Child {
            resource: resource_name(&scope.scoped(&name)),
            name,
            spec,
        });
    }
    for name in used_networks {
        let config = file.networks.get(&name).cloned().unwrap_or_default();
        if config.external.external {
            continue;
        }
        let swarm_name = config.name.clone().unwrap_or_else(|| scope.scoped(&name));
        out.networks.push(Child {
            name: name.clone(),
            resource: resource_name(&swarm_name),
            spec: SwarmNetworkSpec {
                cluster_ref: scope.cluster_ref.cloned(),
                network_name: Some(swarm_name),
                driver: Some(config.driver.clone().unwrap_or_else(|| "overlay".into())),
                attachable: config.attachable.then_some(true),
                internal: config.internal.then_some(true),
                ipam: config.ipam.as_ref().map(|i| Ipam {
                    driver: i.driver.clone(),
                    config: i
                        .config
                        .iter()
                        .map(|p| IpamConfig {
                            subnet: p.subnet.clone(),
                            ..Default::default()
                        })
                        .collect(),
                }),
                driver_options: (!config.driver_opts.is_empty()).then(|| config.driver_opts.clone()),
                labels: Some(scope.stack_labels(&config.labels)),
                ..Default::default()
            },
        });
    }
    for (name, object) in &file.secrets {
        if object.external.external {
            continue;
        }
        let key = source_of(
            scope,
            "secrets",
            name,
            object,
            |s| s.secret.clone(),
            |k| k.secret.clone(),
        )?;
        out.secrets.push(Child {
            name: name.clone(),
            resource: data_resource(scope, name, object),
            spec: SwarmSecretSpec {
                cluster_ref: scope.cluster_ref.cloned(),
                secret_ref: key,
                labels: scope.stack_labels(&object.labels),
                deletion_policy: None,
            },
        });
    }
    for (name, object) in &file.configs {
        if object.external.external {
            continue;
        }
        let key = source_of(
            scope,
            "configs",
            name,
            object,
            |s| s.config_map.clone(),
            |k| k.config_map.clone(),
        )?;
        out.configs.push(Child {
            name: name.clone(),
            resource: data_resource(scope, name, object),
            spec: SwarmConfigSpec {
                cluster_ref: scope.cluster_ref.cloned(),
                config_map_ref: Some(key),
                data: None,
                labels: scope.stack_labels(&object.labels),
                deletion_policy: None,
            },
        });
    }
    unique_resources(&out)?;
    Ok(out)
}

/// Two objects of one kind whose names differ only by `_`, `.` or case would be one resource.
fn unique_resources(out: &Compiled) -> Result<(), Invalid> {
    fn check<S>(section: &str, children: &[Child<S>]) -> Result<(), Invalid> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for c in children {
            if let Some(other) = seen.insert(&c.resource, &c.name) {
                return Err(invalid(
                    format!("{section}.{}", c.name),
                    format!(
                        "its resource name {} is the same as that of {other}: rename one",
                        c.resource
                    ),
                ));
            }
        }
        Ok(())
    }
    check("services", &out.services)?;
    check("networks", &out.networks)?;
    check("secrets", &out.secrets)?;
    check("configs", &out.configs)
}

/// The resource of a secret or config: named after `name:` when given, else `<stack>_<key>`.
fn data_resource(scope: &Scope, key: &str, object: &FileObject) -> String {
    resource_name(&object.name.clone().unwrap_or_else(|| scope.scoped(key)))
}

/// Where a secret's (config's) content is in the cluster: spec.sources, else `x-kubernetes`.
fn source_of(
    scope: &Scope,
    section: &str,
    name: &str,
    object: &FileObject,
    from_sources: impl Fn(&DataSource) -> Option<KeyRef>,
    from_file: impl Fn(&compose::KubernetesSource) -> Option<String>,
) -> Result<KeyRef, Invalid> {
    let what = if section == "secrets" {
        "Secret"
    } else {
        "ConfigMap"
    };
    let field = if section == "secrets" {
        "secret"
    } else {
        "configMap"
    };
    if let Some(source) = scope.sources.get(name) {
        return from_sources(source).ok_or_else(|| {
            invalid(
                format!("spec.sources.{name}"),
                format!("{name} is one of the file's {section}: give it a {field}"),
            )
        });
    }
    if let Some(k) = &object.kubernetes {
        return from_file(k)
            .map(|n| KeyRef {
                name: n,
                key: k.key.clone(),
            })
            .ok_or_else(|| {
                invalid(
                    format!("{section}.{name}.x-kubernetes"),
                    format!("name the Kubernetes {what} with {field}: <name>"),
                )
            });
    }
    let file = object.file.as_deref().unwrap_or("");
    Err(invalid(
        format!("{section}.{name}"),
        format!(
            "file {file:?} cannot be read in a cluster: name the Kubernetes {what} and key that hold it, in spec.sources.{name}.{field} or with `x-kubernetes: {{{field}: <name>, key: <key>}}` on it"
        ),
    ))
}

fn service_spec(
    scope: &Scope,
    file: &ComposeFile,
    name: &str,
    s: &Service,
    used_networks: &mut BTreeSet<String>,
) -> Result<SwarmServiceSpec, Invalid> {
    let at = |key: &str| format!("services.{name}.{key}");
    let image = s.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| {
        invalid(
            at("image"),
            "an image is required: docker stack deploy does not build",
        )
    })?;
    let mut labels = scope.stack_labels(&s.deploy.labels);
    labels.insert(LABEL_IMAGE.into(), image.clone());
    let (mode, replicas, max_concurrent, total_completions) = mode(&at("deploy.mode"), s)?;
    let (capability_add, capability_drop) = capabilities(&s.cap_add, &s.cap_drop);
    Ok(SwarmServiceSpec {
        cluster_ref: scope.cluster_ref.cloned(),
        service_name: Some(scope.scoped(name)),
        image,
        command: s.entrypoint.clone(),
        args: s.command.clone(),
        env: s
            .environment
            .iter()
            .map(|(k, v)| EnvVar {
                value_from: None,
                name: k.clone(),
                value: v.clone().or_else(|| scope.variables.get(k).cloned()),
            })
            .collect(),
        labels: labels.into(),
        replicas,
        mode,
        max_concurrent,
        total_completions,
        healthcheck: s
            .healthcheck
            .as_ref()
            .map(|h| healthcheck(&at("healthcheck"), h))
            .transpose()?
            .map(Box::new),
        update_config: s
            .deploy
            .update_config
            .as_ref()
            .map(|u| update_config(&at("deploy.update_config"), u, false))
            .transpose()?
            .map(Box::new),
        rollback_config: s
            .deploy
            .rollback_config
            .as_ref()
            .map(|u| update_config(&at("deploy.rollback_config"), u, true))
            .transpose()?
            .map(Box::new),
        restart_policy: restart_policy(&at("deploy.restart_policy"), s)?.map(Box::new),
        resources: resources(&at("deploy.resources"), &s.deploy.resources)?.map(Box::new),
        placement: placement(&s.deploy.placement).map(Box::new),
        mounts: s
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| mount(scope, file, &format!("{}[{i}]", at("volumes")), v))
            .collect::<Result<_, _>>()?,
        endpoint_mode: match s
            .deploy
            .endpoint_mode
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") => None,
            Some("vip") => Some(EndpointMode::VIP),
            Some("dnsrr") => Some(EndpointMode::DNSRR),
            Some(other) => {
                return Err(invalid(
                    at("deploy.endpoint_mode"),
                    format!("{other:?} is not vip or dnsrr"),
                ));
            }
        },
        hostname: s.hostname.clone(),
        user: s.user.clone(),
        working_dir: s.working_dir.clone(),
        stop_signal: s.stop_signal.clone(),
        stop_grace_period: s
            .stop_grace_period
            .as_deref()
            .map(|d| duration(&at("stop_grace_period"), d))
            .transpose()?,
        init: s.init,
        read_only: s.read_only,
        tty: s.tty,
        capability_add,
        capability_drop,
        sysctls: s.sysctls.clone(),
        ulimits: s
            .ulimits
            .iter()
            .map(|(n, u)| Ulimit {
                name: n.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        dns: dns(&at("dns"), s)?.map(Box::new),
        hosts: s
            .extra_hosts
            .iter()
            .map(|(host, ip)| HostEntry {
                ip: ip.clone(),
                hostnames: vec![host.clone()],
            })
            .collect(),
        container_labels: scope.stack_labels(&s.labels).into(),
        log_driver: match &s.logging {
            None => None,
            Some(l) => Some(Box::new(LogDriver {
                name: l.driver.clone().ok_or_else(|| {
                    invalid(
                        at("logging.driver"),
                        "a logging driver is required with logging options",
                    )
                })?,
                options: l.options.clone(),
            })),
        },
        networks: networks(scope, file, name, s, used_networks)?,
        secrets: data_refs(scope, &at("secrets"), &s.secrets, &file.secrets, "secret")?,
        configs: data_refs(scope, &at("configs"), &s.configs, &file.configs, "config")?,
        ports: ports(&at("ports"), &s.ports)?,
        ..Default::default()
    })
}

type Mode = (Option<ServiceMode>, Option<i32>, Option<i64>, Option<i64>);

/// docker/cli's `convertDeployMode`: a job's replicas are both its concurrency and completions.
fn mode(path: &str, s: &Service) -> Result<Mode, Invalid> {
    let replicas = s
        .deploy
        .replicas
        .map(|r| i32::try_from(r).ok().filter(|r| *r <= 1000))
        .map(|r| r.ok_or_else(|| invalid(path.replace("mode", "replicas"), "at most 1000")))
        .transpose()?;
    let global_refused = || {
        invalid(
            path,
            "replicas can only be used with replicated or replicated-job mode",
        )
    };
    Ok(match s.deploy.mode.as_deref().unwrap_or("") {
        "" | "replicated" => (None, replicas, None, None),
        "global" if replicas.is_some() => return Err(global_refused()),
        "global" => (Some(ServiceMode::Global), None, None, None),
        "global-job" if replicas.is_some() => return Err(global_refused()),
        "global-job" => (Some(ServiceMode::GlobalJob), None, None, None),
        "replicated-job" => {
            let r = replicas.map(i64::from);
            (Some(ServiceMode::ReplicatedJob), None, r, r)
        }
        other => return Err(invalid(path, format!("unknown mode: {other}"))),
    })
}

/// docker/cli's `EffectiveCapAddCapDrop`: upper case with `CAP_`, ALL alone, a capability both
/// added and dropped is added; sorted.
fn capabilities(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let normal = |c: &String| {
        let c = c.trim().to_ascii_uppercase();
        if c == "ALL" || c == "RESET" || c.starts_with("CAP_") {
            c
        } else {
            format!("CAP_{c}")
        }
    };
    let mut add: BTreeSet<String> = add.iter().map(normal).collect();
    let mut drop: BTreeSet<String> = drop.iter().map(normal).collect();
    if add.contains("ALL") {
        add = BTreeSet::from(["ALL".to_string()]);
    }
    if drop.contains("ALL") {
        drop = BTreeSet::from(["ALL".to_string()]);
    }
    let dropped = drop
        .iter()
        .filter(|c| !add.contains(*c) && *c != "RESET")
        .cloned()
        .collect();
    let added = add.into_iter().filter(|c| c != "RESET").collect();
    (added, dropped)
}

/// A Go duration as the CRD writes them: `0` is `0s`; signs are refused.
fn duration(path: &str, text: &str) -> Result<Duration, Invalid> {
    let text = if text == "0" { "0s" } else { text };
    let d = Duration(text.to_string());
    d.nanos()
        .map_err(|e| invalid(path, format!("{e} (a Go duration such as 10s, 1m30s or 500ms)")))?;
    Ok(d)
}

fn healthcheck(path: &str, h: &compose::Healthcheck) -> Result<Healthcheck, Invalid> {
    if h.disable {
        if !h.test.is_empty() {
            return Err(invalid(path, "test and disable can't be set at the same time"));
        }
        return Ok(Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        });
    }
    let d = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| duration(&format!("{path}.{key}"), t))
            .transpose()
    };
    Ok(Healthcheck {
        test: h.test.clone(),
        interval: d("interval", &h.interval)?,
        timeout: d("timeout", &h.timeout)?,
        retries: h.retries.map(|r| r as i64),
        start_period: d("start_period", &h.start_period)?,
    })
}

fn update_config(path: &str, u: &compose::UpdateConfig, rollback: bool) -> Result<UpdateConfig, Invalid> {
    let d = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| duration(&format!("{path}.{key}"), t))
            .transpose()
    };
    Ok(UpdateConfig {
        parallelism: u.parallelism.map(|p| p as i64),
        delay: d("delay", &u.delay)?,
        order: match u.order.as_deref() {
            None | Some("") => None,
            Some("stop-first") => Some(UpdateOrder::StopFirst),
            Some("start-first") => Some(UpdateOrder::StartFirst),
            Some(o) => {
                return Err(invalid(
                    format!("{path}.order"),
                    format!("{o:?} is not stop-first or start-first"),
                ));
            }
        },
        failure_action: match u.failure_action.as_deref() {
            None | Some("") => None,
            Some("pause") => Some(FailureAction::Pause),
            Some("continue") => Some(FailureAction::Continue),
            Some("rollback") if rollback => {
                return Err(invalid(
                    format!("{path}.failure_action"),
                    "a failed rollback cannot roll back: pause or continue",
                ));
            }
            Some("rollback") => Some(FailureAction::Rollback),
            Some(a) => {
                return Err(invalid(
                    format!("{path}.failure_action"),
                    format!("{a:?} is not pause, continue or rollback"),
                ));
            }
        },
        monitor: d("monitor", &u.monitor)?,
        max_failure_ratio: u.max_failure_ratio,
    })
}

/// deploy.restart_policy, else the service's `restart:` as docker/cli's `convertRestartPolicy`.
fn restart_policy(path: &str, s: &Service) -> Result<Option<RestartPolicy>, Invalid> {
    if let Some(r) = &s.deploy.restart_policy {
        let d = |key: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| duration(&format!("{path}.{key}"), t))
                .transpose()
        };
        return Ok(Some(RestartPolicy {
            condition: match r.condition.as_deref() {
                None | Some("") => None,
                Some("none") => Some(RestartCondition::None),
                Some("on-failure") => Some(RestartCondition::OnFailure),
                Some("any") => Some(RestartCondition::Any),
                Some(c) => {
                    return Err(invalid(
                        format!("{path}.condition"),
                        format!("{c:?} is not none, on-failure or any"),
                    ));
                }
            },
            delay: d("delay", &r.delay)?,
            max_attempts: r.max_attempts.map(|m| m as i64),
            window: d("window", &r.window)?,
        }));
    }
    let Some(restart) = s.restart.as_deref() else {
        return Ok(None);
    };
    let (policy, count) = match restart.split_once(':') {
        Some((p, n)) => (
            p,
            n.parse::<i64>().map_err(|_| {
                invalid(
                    path.replace("deploy.restart_policy", "restart"),
                    format!("{n:?} is not a number"),
                )
            })?,
        ),
        None => (restart, 0),
    };
    let max_attempts = (count > 0).then_some(count);
    Ok(match policy {
        "" | "no" => None,
        "always" | "unless-stopped" => Some(RestartPolicy {
            condition: Some(RestartCondition::Any),
            max_attempts,
            ..Default::default()
        }),
        "on-failure" => Some(RestartPolicy {
            condition: Some(RestartCondition::OnFailure),
            max_attempts,
            ..Default::default()
        }),
        other => {
            return Err(invalid(
                path.replace("deploy.restart_policy", "restart"),
                format!(
                    "unknown policy '{other}' (must be one of 'no', 'always', 'on-failure', or 'unless-stopped')"
                ),
            ));
        }
    })
}

/// CPUs as a quantity that reads back to the same NanoCPUs: whole CPUs, millis, else nanos.
fn cpu_quantity(nanos: i64) -> Quantity {
    if nanos % 1_000_000_000 == 0 {
        Quantity::Number(nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        Quantity::Text(format!("{}m", nanos / 1_000_000))
    } else {
        Quantity::Text(format!("{nanos}n"))
    }
}

/// Bytes as the largest binary unit that divides them (`200M` in the file is `200Mi`).
fn byte_quantity(bytes: i64) -> Quantity {
    for (unit, size) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes != 0 && bytes % size == 0 {
            return Quantity::Text(format!("{}{unit}", bytes / size));
        }
    }
    Quantity::Number(bytes)
}

fn resources(path: &str, r: &compose::Resources) -> Result<Option<Resources>, Invalid> {
    let cpus = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|c| {
                units::nano_cpus(c)
                    .map(cpu_quantity)
                    .map_err(|e| invalid(format!("{path}.{key}"), e))
            })
            .transpose()
    };
    let memory = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|m| {
                units::ram_in_bytes(m)
                    .map(byte_quantity)
                    .map_err(|e| invalid(format!("{path}.{key}"), e))
            })
            .transpose()
    };
    if r.limits.is_none() && r.reservations.is_none() {
        return Ok(None);
    }
    Ok(Some(Resources {
        limits: r
            .limits
            .as_ref()
            .map(|l| -> Result<_, Invalid> {
                Ok(ResourceLimits {
                    cpu: cpus("limits.cpus", &l.cpus)?,
                    memory: memory("limits.memory", &l.memory)?,
                    pids: l.pids,
                })
            })
            .transpose()?,
        reservations: r
            .reservations
            .as_ref()
            .map(|l| -> Result<_, Invalid> {
                Ok(ResourceReservations {
                    cpu: cpus("reservations.cpus", &l.cpus)?,
                    memory: memory("reservations.memory", &l.memory)?,
                })
            })
            .transpose()?,
    }))
}

fn placement(p: &compose::Placement) -> Option<Placement> {
    if p.constraints.is_empty() && p.preferences.is_empty() && p.max_replicas_per_node.is_none() {
        return None;
    }
    Some(Placement {
        constraints: p.constraints.clone(),
        preferences: p
            .preferences
            .iter()
            .map(|x| PlacementPreference {
                spread: x.spread.clone(),
            })
            .collect(),
        max_replicas_per_node: p.max_replicas_per_node.map(|m| m as i64),
    })
}

/// docker/cli's `convertVolumeToMount`: a named volume is `<stack>_<name>` (or its `name:`) with
/// the stack's label and the volume's driver; a bind needs an absolute path, as there is no
/// directory to resolve a relative one against.
fn mount(
    scope: &Scope,
    file: &ComposeFile,
    path: &str,
    v: &compose::ServiceVolume,
) -> Result<Mount, Invalid> {
    if v.target.is_empty() {
        return Err(invalid(path, "a volume needs a target"));
    }
    let type_ = v.type_.as_deref().unwrap_or("volume");
    let mut m = Mount {
        target: v.target.clone(),
        read_only: v.read_only,
        ..Default::default()
    };
    match type_ {
        "volume" => {
            m.type_ = MountType::Volume;
            let Some(source) = v.source.as_deref().filter(|s| !s.is_empty()) else {
                return Ok(m);
            };
            let declared = file
                .volumes
                .get(source)
                .ok_or_else(|| invalid(path, format!("undefined volume {source:?}")))?;
            m.source = Some(declared.name.clone().unwrap_or_else(|| scope.scoped(source)));
            let mut options = VolumeOptions {
                no_copy: v.volume.as_ref().is_some_and(|o| o.nocopy),
                ..Default::default()
            };
            if !declared.external.external {
                options.labels = scope.stack_labels(&declared.labels);
                options.driver = declared.driver.clone();
                options.options = declared.driver_opts.clone();
            }
            m.volume_options = Some(options);
        }
        "bind" => {
            m.type_ = MountType::Bind;
            let source = v.source.clone().unwrap_or_default();
            if !source.starts_with('/') {
                return Err(invalid(
                    path,
                    format!(
                        "bind source {source:?} must be an absolute path on the nodes: a cluster has no directory to resolve it against"
                    ),
                ));
            }
            m.source = Some(source);
        }
        "tmpfs" => {
            m.type_ = MountType::Tmpfs;
            if v.source.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(invalid(path, "a tmpfs takes no source"));
            }
            if let Some(t) = &v.tmpfs {
                m.tmpfs_options = Some(TmpfsOptions {
                    size: t
                        .size
                        .as_deref()
                        .map(|s| {
                            units::ram_in_bytes(s)
                                .map(byte_quantity)
                                .map_err(|e| invalid(format!("{path}.tmpfs.size"), e))
                        })
                        .transpose()?,
                    mode: t.mode.map(i64::from),
                });
            }
        }
        other => {
            return Err(invalid(
                format!("{path}.type"),
                format!("{other:?} is not volume, bind or tmpfs"),
            ));
        }
    }
    Ok(m)
}

fn dns(path: &str, s: &Service) -> Result<Option<DnsConfig>, Invalid> {
    if s.dns.is_empty() && s.dns_search.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = s.dns.iter().find(|ip| ip.parse::<std::net::IpAddr>().is_err()) {
        return Err(invalid(path, format!("{bad:?} is not an IP address")));
    }
    Ok(Some(DnsConfig {
        nameservers: s.dns.clone(),
        search: s.dns_search.clone(),
        options: Vec::new(),
    }))
}

/// docker/cli's `convertServiceNetworks`: `default` when none; the service's name as an alias on
/// each; sorted by the network's Swarm name.
fn networks(
    scope: &Scope,
    file: &ComposeFile,
    name: &str,
    s: &Service,
    used: &mut BTreeSet<String>,
) -> Result<Vec<NetworkAttachment>, Invalid> {
    let default = BTreeMap::from([("default".to_string(), compose::ServiceNetwork::default())]);
    let wanted = if s.networks.is_empty() {
        &default
    } else {
        &s.networks
    };
    let mut out = Vec::new();
    for (network, attach) in wanted {
        let config = match file.networks.get(network) {
            Some(c) => c.clone(),
            None if network == "default" => Default::default(),
            None => {
                return Err(invalid(
                    format!("services.{name}.networks.{network}"),
                    format!("undefined network {network:?}"),
                ));
            }
        };
        used.insert(network.clone());
        // An external network is named as it is (the CLI's loader names it after its key).
        let swarm_name = config
            .name
            .clone()
            .or_else(|| config.external.name.clone())
            .unwrap_or_else(|| {
                if config.external.external {
                    network.clone()
                } else {
                    scope.scoped(network)
                }
            });
        let mut aliases = Vec::with_capacity(attach.aliases.len() + 1);
        aliases.extend(attach.aliases.iter().cloned());
        aliases.push(name.to_string());
        out.push((
            swarm_name.clone(),
            NetworkAttachment {
                name: if config.external.external {
                    swarm_name
                } else {
                    resource_name(&swarm_name)
                },
                external: config.external.external.then_some(true),
                aliases,
                driver_options: attach.driver_opts.clone(),
            },
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(super::exact(out.into_iter().map(|(_, v)| v)))
}

/// A service's secrets (configs): the file name defaults to the key in the file, owner 0:0,
/// mode 0444; sorted by the object's Swarm name as the CLI sorts them. An external one is the
/// SwarmSecret (SwarmConfig) of that name in the namespace.
fn data_refs(
    scope: &Scope,
    path: &str,
    refs: &[compose::FileRef],
    declared: &BTreeMap<String, FileObject>,
    what: &str,
) -> Result<Vec<DataReference>, Invalid> {
    let mut out = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        if refs[..i].iter().any(|earlier| earlier.source == r.source) {
            return Err(invalid(
                format!("{path}[{i}]"),
                format!(
                    "{what} {:?} is mounted twice: a SwarmService mounts each {what} once (its {what}s are keyed by name)",
                    r.source
                ),
            ));
        }
        let object = declared
            .get(&r.source)
            .ok_or_else(|| invalid(format!("{path}[{i}]"), format!("undefined {what} {:?}", r.source)))?;
        let swarm_name = if object.external.external {
            object
                .name
                .clone()
                .or_else(|| object.external.name.clone())
                .unwrap_or_else(|| r.source.clone())
        } else {
            object.name.clone().unwrap_or_else(|| scope.scoped(&r.source))
        };
        out.push((
            swarm_name.clone(),
            DataReference {
                name: if object.external.external {
                    resource_name(&swarm_name)
                } else {
                    data_resource(scope, &r.source, object)
                },
                target: Some(r.target.clone().unwrap_or_else(|| r.source.clone())),
                uid: r.uid.clone(),
                gid: r.gid.clone(),
                mode: r.mode.map(i64::from),
            },
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(super::exact(out.into_iter().map(|(_, v)| v)))
}

fn ports(path: &str, ports: &[compose::Port]) -> Result<Vec<PortConfig>, Invalid> {
    let mut out = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = format!("{path}[{i}]");
            if p.target == 0 || p.target > 65535 || p.published.is_some_and(|x| x == 0 || x > 65535) {
                return Err(invalid(at, "ports are 1 to 65535"));
            }
            Ok(PortConfig {
                target: p.target as i32,
                published: p.published.map(|x| x as i32),
                protocol: match p.protocol.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("") | Some("tcp") => PortProtocol::TCP,
                    Some("udp") => PortProtocol::UDP,
                    Some("sctp") => PortProtocol::SCTP,
                    Some(other) => {
                        return Err(invalid(
                            format!("{at}.protocol"),
                            format!("{other:?} is not tcp, udp or sctp"),
                        ));
                    }
                },
                mode: match p.mode.as_deref() {
                    None | Some("") | Some("ingress") => PublishMode::Ingress,
                    Some("host") => PublishMode::Host,
                    Some(other) => {
                        return Err(invalid(
                            format!("{at}.mode"),
                            format!("{other:?} is not ingress or host"),
                        ));
                    }
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|p| (p.published.unwrap_or(0), p.target));
    Ok(out)
}
