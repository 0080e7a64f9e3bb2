//! `SwarmService`: one Swarm service, as `docker service create` would make it.

pub mod container;
pub mod env;
pub mod history;
pub mod status;
pub mod workload;

use std::collections::BTreeMap;

use crate::labels::Labels;

pub use crate::common::{DeletionPolicy, Duration, Quantity};
pub use container::{
    DnsConfig, HostEntry, LocalObjectReference, Mount, MountType, TmpfsOptions, Ulimit, VolumeOptions,
};
pub use env::{EnvFromSource, EnvVar, EnvVarSource, KeySelector, SourceRef};
pub use status::{
    EndpointStatus, JobProgress, PublishedPort, Rollback, SwarmServiceStatus, TaskStatus, UpdateStatus,
    VirtualIp,
};
pub use workload::{
    FailureAction, Healthcheck, LogDriver, Placement, PlacementPreference, ResourceLimits,
    ResourceReservations, Resources, RestartCondition, RestartPolicy, ServiceMode, UpdateConfig, UpdateOrder,
};

use crate::common::{ClusterRef, cluster_ref_immutable, on_cluster, reserved_labels};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Swarm service.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "swarmoperator.io",
    version = "v1alpha1",
    kind = "SwarmService",
    namespaced,
    status = "SwarmServiceStatus",
    shortname = "swsvc",
    category = "swarm",
    doc = "A Docker Swarm service managed through the Kubernetes API",
    derive = "PartialEq",
    derive = "Default",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(name = "Service", type_ = "string", json_path = ".status.serviceName"),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".status.desiredReplicas"),
    printcolumn(name = "Running", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(
        "has(self.spec.serviceName) || (size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$'))"
    ).message("metadata.name is the Swarm service name when spec.serviceName is not set, so it must be a DNS label: letters, digits and '-', at most 63 (set spec.serviceName otherwise)")
)]
#[x_kube(
    validation = Rule::new(
        "has(self.serviceName) == has(oldSelf.serviceName) && (!has(self.serviceName) || self.serviceName == oldSelf.serviceName)"
    ).message("spec.serviceName is immutable: a Swarm service cannot be renamed").field_path(".serviceName"),
    validation = Rule::new("!has(self.replicas) || !has(self.mode) || self.mode == 'Replicated'")
        .message("spec.replicas applies only to mode Replicated (Global runs one task per node; jobs use totalCompletions)")
        .field_path(".replicas"),
    validation = Rule::new("!(has(self.maxConcurrent) || has(self.totalCompletions)) || (has(self.mode) && self.mode == 'ReplicatedJob')")
        .message("spec.maxConcurrent and spec.totalCompletions apply only to mode ReplicatedJob")
        .field_path(".mode"),
    validation = Rule::new("!has(self.rollbackConfig) || !has(self.rollbackConfig.failureAction) || self.rollbackConfig.failureAction != 'Rollback'")
        .message("spec.rollbackConfig.failureAction cannot be Rollback: a failed rollback cannot roll back")
        .field_path(".rollbackConfig.failureAction"),
    validation = Rule::new("!has(self.updateConfig) || !(has(self.mode) && (self.mode == 'ReplicatedJob' || self.mode == 'GlobalJob'))")
        .message("spec.updateConfig does not apply to jobs")
        .field_path(".updateConfig"),
    validation = Rule::new("(has(self.mode) ? self.mode : 'Replicated') == (has(oldSelf.mode) ? oldSelf.mode : 'Replicated')")
        .message("spec.mode is immutable: Swarm cannot change a service's mode; delete the resource and create it again")
        .field_path(".mode"),
    validation = Rule::new("!has(self.endpointMode) || self.endpointMode != 'DNSRR' || !has(self.ports) || self.ports.all(p, has(p.mode) && p.mode == 'Host')")
        .message("spec.endpointMode DNSRR cannot publish through the routing mesh: give every port mode: Host, or use VIP")
        .field_path(".endpointMode"),
    validation = cluster_ref_immutable(),
)]
#[serde(rename_all = "camelCase")]
pub struct SwarmServiceSpec {
    /// The SwarmCluster this lives on; the one named `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,
    /// Name of the Swarm service. Defaults to metadata.name; cannot be changed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")
    )]
    pub service_name: Option<String>,

    /// Image to run, e.g. `traefik/whoami:v1.10` or `registry.example:5000/app@sha256:...`.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(
        validation = Rule::new("self.trim() != ''").message("spec.image must not be empty"),
        validation = Rule::new(IMAGE_REFERENCE).message("spec.image must be an image reference such as nginx:1.27, registry.example:5000/team/app:2 or app@sha256:<64 hex>: a lowercase repository, no spaces")
    )]
    pub image: String,

    /// Replaces the image's ENTRYPOINT (`docker service create --entrypoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Arguments to the entrypoint (the words after the image in `docker service create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// Environment variables, merged by name under server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,

    /// Every key of these Secrets and ConfigMaps as a variable, as a Pod's envFrom.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub env_from: Vec<EnvFromSource>,

    /// Labels on the Swarm service. Keys under `swarmoperator.io/` are the operator's own.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    #[x_kube(validation = reserved_labels())]
    pub labels: Labels,

    /// Number of tasks (`docker service scale`), mode Replicated only. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,

    /// Replicated (default), Global, ReplicatedJob or GlobalJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServiceMode>,

    /// ReplicatedJob: tasks running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent: Option<i64>,

    /// ReplicatedJob: tasks that must complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub total_completions: Option<i64>,

    /// Container healthcheck, overriding the image's HEALTHCHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Box<Healthcheck>>,

    /// Rolling update behaviour (`--update-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<Box<UpdateConfig>>,

    /// Rollback behaviour (`--rollback-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<Box<UpdateConfig>>,

    /// When tasks are restarted (`--restart-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<Box<RestartPolicy>>,

    /// CPU, memory and pids limits and reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Box<Resources>>,

    /// Placement constraints and preferences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Box<Placement>>,

    /// Mounts, merged by target under server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["target".into()]))]
    pub mounts: Vec<Mount>,

    /// VIP (default): one virtual IP balanced over the tasks; DNSRR: the service name resolves to the
    /// tasks' addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<EndpointMode>,

    /// Container hostname (`--hostname`, Go templates such as `{{.Task.Name}}` allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,

    /// User (and group) the process runs as: `nobody`, `1000:1000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,

    /// Supplementary groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,

    /// Working directory in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,

    /// Signal that stops the container, e.g. SIGINT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new(STOP_SIGNAL).message("spec.stopSignal must be a signal such as SIGTERM, SIGINT, SIGQUIT or a number from 1 to 64"))]
    pub stop_signal: Option<String>,

    /// Time to wait after the stop signal before killing. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,

    /// Run an init process (tini) as PID 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,

    /// Mount the container's root filesystem read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,

    /// Allocate a pseudo-TTY.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,

    /// Kernel capabilities to add, e.g. CAP_NET_ADMIN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 32)))]
    #[x_kube(validation = Rule::new(CAPABILITIES).message("spec.capabilityAdd: each must be a Linux capability such as CAP_NET_ADMIN (or ALL)"))]
    pub capability_add: Vec<String>,

    /// Kernel capabilities to drop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 32)))]
    #[x_kube(validation = Rule::new(CAPABILITIES).message("spec.capabilityDrop: each must be a Linux capability such as CAP_NET_RAW (or ALL)"))]
    pub capability_drop: Vec<String>,

    /// Namespaced kernel parameters, e.g. net.core.somaxconn.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,

    /// Ulimits, merged by name under server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub ulimits: Vec<Ulimit>,

    /// DNS servers, search domains and options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Box<DnsConfig>>,

    /// Extra /etc/hosts entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub hosts: Vec<HostEntry>,

    /// Labels on the containers (not on the service).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub container_labels: Labels,

    /// Logging driver and its options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Box<LogDriver>>,

    /// Secrets of type kubernetes.io/dockerconfigjson in this namespace whose credentials are sent to
    /// the manager to pull the image. Never stored anywhere else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Delete (default) removes the Swarm service with the resource; Orphan leaves it running and
    /// removes the owner labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Networks the tasks join, merged by name under server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()])
    )]
    pub networks: Vec<NetworkAttachment>,

    /// SwarmSecrets (same namespace) mounted in the containers, merged by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new(UNIQUE_TARGETS).message("spec.secrets: two secrets would be mounted at the same target (the target defaults to the name)")
    )]
    pub secrets: Vec<DataReference>,

    /// SwarmConfigs (same namespace) mounted in the containers, merged by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new(UNIQUE_TARGETS).message("spec.configs: two configs would be mounted at the same target (the target defaults to the name)")
    )]
    pub configs: Vec<DataReference>,

    /// Published ports, merged by target port and protocol under server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["target".into(), "protocol".into()]),
        validation = Rule::new(
            "self.all(p, !has(p.published) || self.exists_one(q, has(q.published) && q.published == p.published && q.protocol == p.protocol))"
        ).message("spec.ports: a published port may be used only once per protocol")
    )]
    pub ports: Vec<PortConfig>,
}

/// Docker's image reference grammar (distribution/reference): an optional registry (a host with a
/// dot or a port, or localhost), lowercase path components, an optional tag and an optional digest.
const IMAGE_REFERENCE: &str = r"self.matches(r'^(?:(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+|\[[0-9a-fA-F:]+\])(?::[0-9]+)?/|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?:[0-9]+/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,})?$')";

/// The signals Linux knows, by name (with or without SIG) or number.
const STOP_SIGNAL: &str = r"self.matches(r'^(SIG)?(ABRT|ALRM|BUS|CHLD|CLD|CONT|FPE|HUP|ILL|INT|IO|IOT|KILL|PIPE|POLL|PROF|PWR|QUIT|SEGV|STKFLT|STOP|SYS|TERM|TRAP|TSTP|TTIN|TTOU|URG|USR1|USR2|VTALRM|WINCH|XCPU|XFSZ|RTMIN(\+([1-9]|1[0-5]))?|RTMAX(-([1-9]|1[0-5]))?)$|^([1-9]|[1-5][0-9]|6[0-4])$')";

/// The capabilities Linux knows, with or without CAP_, or ALL.
const CAPABILITIES: &str = r"self.all(c, c.matches(r'^(?i)(CAP_)?(AUDIT_CONTROL|AUDIT_READ|AUDIT_WRITE|BLOCK_SUSPEND|BPF|CHECKPOINT_RESTORE|CHOWN|DAC_OVERRIDE|DAC_READ_SEARCH|FOWNER|FSETID|IPC_LOCK|IPC_OWNER|KILL|LEASE|LINUX_IMMUTABLE|MAC_ADMIN|MAC_OVERRIDE|MKNOD|NET_ADMIN|NET_BIND_SERVICE|NET_BROADCAST|NET_RAW|PERFMON|SETFCAP|SETGID|SETPCAP|SETUID|SYS_ADMIN|SYS_BOOT|SYS_CHROOT|SYS_MODULE|SYS_NICE|SYS_PACCT|SYS_PTRACE|SYS_RAWIO|SYS_RESOURCE|SYS_TIME|SYS_TTY_CONFIG|SYSLOG|WAKE_ALARM)$|^ALL$'))";

/// No two references mounted at the same file (a target defaults to the name).
const UNIQUE_TARGETS: &str = "self.all(a, self.exists_one(b, (has(b.target) ? b.target : b.name) == (has(a.target) ? a.target : a.name)))";

/// A port the service publishes, as `docker service create --publish`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortConfig {
    /// Port inside the container.
    #[schemars(range(min = 1, max = 65535))]
    pub target: i32,
    /// Port on the nodes (or the routing mesh). Swarm picks one from 30000-32767 when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub published: Option<i32>,
    /// Protocol: TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: PortProtocol,
    /// Ingress (default): published through the routing mesh on every node; Host: only on the node
    /// that runs the task.
    #[serde(default)]
    pub mode: PublishMode,
}

/// A SwarmSecret or SwarmConfig mounted as a file (`--secret source=...,target=...`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataReference {
    /// The SwarmSecret or SwarmConfig in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// File name: under /run/secrets/ for secrets (or an absolute path for configs). Defaults to
    /// `name`, so a secret appears at /run/secrets/<name>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub target: Option<String>,
    /// Owner of the file; "0" when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// File mode as a number, e.g. 292 (0444, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 511))]
    pub mode: Option<i64>,
}

/// A network the service's tasks join (`--network name=...,alias=...,driver-opt=...`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAttachment {
    /// A SwarmNetwork in the same namespace; with external: true, the Swarm name of an existing
    /// network the operator does not manage (one made with `docker network create`, for instance).
    #[schemars(length(min = 1))]
    pub name: String,
    /// The network exists in the swarm already and is not managed by swarm-operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    /// Extra DNS names of the service's tasks on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Driver options of the attachment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_options: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum EndpointMode {
    VIP,
    DNSRR,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PortProtocol {
    #[default]
    TCP,
    UDP,
    SCTP,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PublishMode {
    #[default]
    Ingress,
    Host,
}

/// Annotation that lets a SwarmService take over an existing Swarm service it did not create.
pub const ADOPT_ANNOTATION: &str = "swarmoperator.io/adopt";

impl SwarmService {
    /// Whether the user asked to take over an unmanaged Swarm service of the same name.
    pub fn wants_adoption(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ADOPT_ANNOTATION))
            .map(String::as_str)
            == Some("true")
    }

    /// The Swarm service name: spec.serviceName, else metadata.name.
    pub fn service_name(&self) -> String {
        self.spec
            .service_name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}

on_cluster!(SwarmService);
