//! `SwarmNode`: one node of a swarm, as `docker node ls` lists it and `docker node update` changes
//! it. Cluster-scoped. The operator makes one for each node it finds (named after the hostname,
//! `<cluster>.<hostname>` outside cluster `default`), keeps its status current from node events,
//! and carries out what the spec asks: availability, the labels it names, and the role, never
//! leaving the swarm without quorum or with an even number of managers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ClusterRef, cluster_ref_immutable, on_cluster};

/// On a SwarmNode the operator made for a node it found.
pub const DISCOVERED: &str = "swarmoperator.io/discovered";

/// The node cannot be found in its swarm (by hostname).
pub const REASON_NODE_NOT_FOUND: &str = "NodeNotFound";
/// A role change would leave the swarm without quorum or with an even number of managers.
pub const REASON_QUORUM_PROTECTED: &str = "QuorumProtected";

/// What the operator manages of one node; fields left out are left as they are.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "swarmoperator.io",
    version = "v1alpha1",
    kind = "SwarmNode",
    status = "SwarmNodeStatus",
    shortname = "swnode",
    category = "swarm",
    doc = "A Docker Swarm node: its role, availability and labels",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Hostname", type_ = "string", json_path = ".status.hostname"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Availability", type_ = "string", json_path = ".status.availability"),
    printcolumn(
        name = "Manager Status",
        type_ = "string",
        json_path = ".status.managerStatus"
    ),
    printcolumn(name = "Engine", type_ = "string", json_path = ".status.engineVersion"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = cluster_ref_immutable())]
#[serde(rename_all = "camelCase")]
pub struct SwarmNodeSpec {
    /// The SwarmCluster this node is in; the one named `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,
    /// The node's hostname (`docker node ls`'s HOSTNAME); metadata.name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Option<String>,
    /// Active, Pause (no new tasks: `cordon`) or Drain (tasks move elsewhere); unmanaged when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<NodeAvailability>,
    /// Manager or Worker (`docker node promote|demote`); unmanaged when unset. Refused while the
    /// swarm would be left without quorum or with an even number of managers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<NodeRole>,
    /// Node labels (placement constraints `node.labels.<key>`). Only the keys named here are
    /// managed: labels set by others (`docker node update --label-add`) stay; a key removed from
    /// here is removed from the node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NodeAvailability {
    Active,
    Pause,
    Drain,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NodeRole {
    Manager,
    Worker,
}

/// The node as `docker node ls` and `docker node inspect` show it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmNodeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// ID of the swarm the node is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "nodeID")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// manager or worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// active, pause or drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    /// ready, down, unknown or disconnected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Leader, Reachable or Unreachable for managers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// Every label of the node, whoever set it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The label keys this resource set on the node: one that leaves `spec.labels` is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_labels: Vec<String>,
}

on_cluster!(SwarmNode);

impl SwarmNode {
    /// The hostname of the node this resource is about.
    pub fn hostname(&self) -> String {
        self.spec
            .hostname
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}
