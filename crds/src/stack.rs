//! `SwarmStack`: a stack file as `docker stack deploy -c docker-stack.yml <name>` takes it. The
//! operator compiles it into SwarmServices, SwarmNetworks, SwarmSecrets and SwarmConfigs that the
//! stack owns, and reports the whole app here: one line per service, Ready when all are.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    common::{ClusterRef, cluster_ref_immutable, on_cluster},
    data::KeyRef,
};

/// Desired state of a stack.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "swarmoperator.io",
    version = "v1alpha1",
    kind = "SwarmStack",
    namespaced,
    status = "SwarmStackStatus",
    shortname = "swstack",
    category = "swarm",
    doc = "A Docker stack file deployed to a swarm, as `docker stack deploy` would, managed as one unit",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Stack", type_ = "string", json_path = ".status.stackName"),
    printcolumn(name = "Services", type_ = "integer", json_path = ".status.serviceCount"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.readyServices"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("has(self.spec.stackName) || self.metadata.name.matches('^[a-zA-Z0-9][a-zA-Z0-9_.-]*$') && size(self.metadata.name) <= 40")
        .message("metadata.name is the stack's name in the swarm when spec.stackName is not set: at most 40 characters, letters, digits, '_', '.' and '-'"),
    validation = Rule::new("size(self.metadata.name) <= 63")
        .message("metadata.name: at most 63 characters, as it labels every child (swarmoperator.io/stack)")
)]
#[x_kube(
    validation = Rule::new(
        "has(self.stackName) == has(oldSelf.stackName) && (!has(self.stackName) || self.stackName == oldSelf.stackName)"
    ).message("spec.stackName is immutable: every Swarm object of the stack is named after it").field_path(".stackName"),
    validation = cluster_ref_immutable(),
)]
#[serde(rename_all = "camelCase")]
pub struct SwarmStackSpec {
    /// The SwarmCluster this lives on; the one named `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,
    /// The stack's name in the swarm (`docker stack deploy ... <name>`): services are named
    /// `<stackName>_<service>`. Defaults to metadata.name; cannot be changed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"))]
    pub stack_name: Option<String>,
    /// The stack file's text, as `docker stack deploy -c` reads it (compose file format 3.x or
    /// the compose specification).
    #[schemars(length(min = 1, max = 524288))]
    pub compose: String,
    /// Variables for `${NAME}`, `${NAME:-default}` and the like in the file, over those of
    /// valuesFrom.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// ConfigMaps in this namespace whose keys are variables too; a later one wins over an
    /// earlier one, and spec.variables over all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub values_from: Vec<ValuesSource>,
    /// Where the file's file-based secrets and configs (`file: ./x`) come from in the cluster, by
    /// their name in the file. An `x-kubernetes` key on the secret or config says the same in the
    /// file itself; this wins over it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, DataSource>,
    /// Remove the services (and networks, secrets, configs) no longer in the file. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// Leave the stack's resources as they are: nothing is created, changed or pruned until false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// A ConfigMap whose keys are variables of the file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValuesSource {
    pub config_map_ref: NameRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct NameRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A Kubernetes Secret or ConfigMap key holding a file-based secret's or config's content.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secret) != has(self.configMap)").message("spec.sources: give each exactly one of secret and configMap"))]
pub struct DataSource {
    /// A key of a Kubernetes Secret (for secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<KeyRef>,
    /// A key of a ConfigMap (for configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<KeyRef>,
}

/// Observed state, kstatus-compatible.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmStackStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (every service Ready), Reconciling and Stalled (InvalidSpec: the file; RolledBack:
    /// Swarm rolled services back, named in the message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The stack's name in the swarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_name: Option<String>,
    /// Services in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_count: Option<i32>,
    /// Ready services out of all, e.g. `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_services: Option<String>,
    /// One line per service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<StackServiceStatus>,
    /// Keys of the file that `docker stack deploy` ignores too (build, container_name, ...), as
    /// the CLI warns of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// Variables the file uses that have no value (they read as empty strings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset_variables: Vec<String>,
}

/// One service of the stack, as its SwarmService reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackServiceStatus {
    /// The service's name in the file.
    pub name: String,
    /// Its Swarm service, `<stack>_<name>`.
    pub service_name: String,
    /// Tasks asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<i32>,
    /// Tasks running the current spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<i32>,
    pub ready: bool,
    /// The Ready condition's reason (Running, Progressing, RolledBack, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the service says when it is not Ready: its last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl SwarmStack {
    /// The stack's name in the swarm: spec.stackName, else metadata.name.
    pub fn stack_name(&self) -> String {
        self.spec
            .stack_name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}

on_cluster!(SwarmStack);
