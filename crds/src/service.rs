//! `SwarmService`: one Swarm service, as `docker service create` would make it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
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
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new(
    "has(self.serviceName) == has(oldSelf.serviceName) && (!has(self.serviceName) || self.serviceName == oldSelf.serviceName)"
).message("spec.serviceName is immutable: a Swarm service cannot be renamed").field_path(".serviceName"))]
#[serde(rename_all = "camelCase")]
pub struct SwarmServiceSpec {
    /// Name of the Swarm service. Defaults to metadata.name; cannot be changed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")
    )]
    pub service_name: Option<String>,

    /// Image to run, e.g. `traefik/whoami:v1.10` or `registry.example:5000/app@sha256:...`.
    #[schemars(length(min = 1))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.image must not be empty"))]
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

    /// Labels on the Swarm service. Keys under `swarmoperator.io/` are the operator's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('swarmoperator.io/'))")
        .message("spec.labels: keys under swarmoperator.io/ are reserved for the operator"))]
    pub labels: BTreeMap<String, String>,

    /// Number of tasks (`docker service scale`). Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,

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

/// One environment variable of the service's containers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    #[schemars(length(min = 1), regex(pattern = r"^[^=]+$"))]
    pub name: String,
    /// Value; empty when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

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

/// Observed state, kstatus-compatible.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmServiceStatus {
    /// The generation the conditions speak of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Name of the Swarm service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// ID of the Swarm service.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "serviceID")]
    pub service_id: Option<String>,
    /// Tasks running the current spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Tasks the service asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
}

impl SwarmService {
    /// The Swarm service name: spec.serviceName, else metadata.name.
    pub fn service_name(&self) -> String {
        self.spec
            .service_name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}
