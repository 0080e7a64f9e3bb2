//! `SwarmCluster`: how to reach one swarm's managers, and what `docker node ls` / `docker info` show
//! of it. Cluster-scoped: namespaced resources name one with `spec.clusterRef`, and without it use
//! the cluster named `default` (or, when there is none, the engine given by the operator's flags).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ClusterRef, Duration, OnCluster};

/// Condition type: only a bare majority of managers is reachable, or their number is even, so the
/// loss of one more manager stops every change to the swarm.
pub const QUORUM_AT_RISK: &str = "QuorumAtRisk";

/// QuorumAtRisk reasons.
pub const REASON_QUORUM_HEALTHY: &str = "QuorumHealthy";
/// Only a bare majority of managers is reachable: one more loss stops all changes.
pub const REASON_BARE_MAJORITY: &str = "BareMajority";
/// Fewer than a majority of managers is reachable: the swarm accepts no changes.
pub const REASON_QUORUM_LOST: &str = "QuorumLost";
pub const REASON_SINGLE_MANAGER: &str = "SingleManager";
/// An even number of managers tolerates no more losses than one fewer would.
pub const REASON_EVEN_MANAGER_COUNT: &str = "EvenManagerCount";
pub const REASON_NO_MANAGERS: &str = "NoManagers";

/// How to reach a swarm's managers.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "swarmoperator.io",
    version = "v1alpha1",
    kind = "SwarmCluster",
    status = "SwarmClusterStatus",
    shortname = "swcluster",
    category = "swarm",
    doc = "A Docker Swarm cluster: its managers' endpoints and their health",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.activeEndpoint"),
    printcolumn(name = "Managers", type_ = "integer", json_path = ".status.managersTotal"),
    printcolumn(
        name = "Reachable",
        type_ = "integer",
        json_path = ".status.managersReachable"
    ),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "QuorumAtRisk",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"QuorumAtRisk\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("!self.endpoints.exists(e, e.startsWith('tcp://')) || has(self.tls) || (has(self.insecure) && self.insecure)")
    .message("spec.tls: tcp:// endpoints need tls, as secrets and registry credentials travel over them; set insecure: true to allow plain HTTP on a trusted network")
    .field_path(".tls"))]
#[serde(rename_all = "camelCase")]
pub struct SwarmClusterSpec {
    /// Manager endpoints in order of preference: `unix:///var/run/docker.sock`,
    /// `tcp://manager-1:2376`. The operator uses the first that answers as a manager of a swarm with
    /// quorum, and moves to the next when it stops doing so.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 256)))]
    #[x_kube(validation = Rule::new("self.all(e, e.matches('^(unix:///.+|tcp://[^/]+:[0-9]+/?)$'))")
        .message("spec.endpoints: each must be unix:///path or tcp://host:port"))]
    pub endpoints: Vec<String>,

    /// Mutual TLS for the `tcp://` endpoints: a Secret holding `ca.pem`, `cert.pem` and `key.pem`
    /// (what `docker --tlsverify` reads from ~/.docker). Required for `tcp://` endpoints unless
    /// `insecure` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SecretRef>,

    /// Allow `tcp://` endpoints without TLS (plain HTTP). Secret values and registry credentials
    /// then cross the network in the clear: only for a swarm on a trusted network or a test bed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,

    /// Whether resources on this cluster may take over existing Swarm services they did not
    /// create (annotation `swarmoperator.io/adopt: "true"`). Off by default: without it, any
    /// namespace could take over, and later delete, a service an admin made by hand.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_adoption: bool,

    /// Which namespaces' resources may use this cluster, by their labels; every namespace when
    /// unset. A resource of another namespace is `Stalled/NotPermitted` and touches nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,

    /// How often to refresh the status and re-check the managers besides node events; 30s by
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.resyncInterval must be at least 1s"))]
    pub resync_interval: Option<Duration>,

    /// Keep the swarm's join tokens in a Secret, for node provisioning to read from Kubernetes
    /// instead of from a manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_tokens: Option<JoinTokens>,
}

/// Where the join tokens go, and when to rotate them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokens {
    /// The Secret the operator writes (and owns, by label): keys `worker` and `manager` (the
    /// tokens) and `managers` (the managers' addresses to join, `host:port`, comma-separated), as
    /// `docker swarm join --token <worker> <one of managers>` takes them.
    pub secret_ref: SecretRef,
    /// Any new value rotates both tokens once, as `docker swarm join-token --rotate` does (nodes
    /// already joined stay); e.g. the date of the rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub rotate: Option<String>,
}

/// A Secret in a given namespace (SwarmCluster is cluster-scoped).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretRef {
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What the operator last saw of the swarm.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The endpoint the operator talks to now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "swarmID")]
    pub swarm_id: Option<String>,
    /// Managers whose Raft member answers (`docker node ls`: MANAGER STATUS not Unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managers_reachable: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managers_total: Option<i32>,
    /// Hostname of the Raft leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Every node, as `docker node ls` lists them, sorted by hostname.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
    /// The `spec.joinTokens.rotate` value last carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_tokens_rotated: Option<String>,
}

/// One node of the swarm.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub hostname: String,
    #[serde(rename = "nodeID")]
    pub node_id: String,
    /// manager or worker.
    pub role: String,
    /// active, pause or drain.
    pub availability: String,
    /// ready, down, unknown or disconnected.
    pub state: String,
    /// Leader, Reachable or Unreachable for managers; absent for workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<String>,
    /// Address the node's engine reports (its swarm data-path address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// Node labels (`docker node update --label-add`), used by placement constraints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A SwarmCluster is on itself: its events are its nodes'.
impl OnCluster for SwarmCluster {
    fn cluster_ref(&self) -> Option<&ClusterRef> {
        None
    }
    fn cluster_name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}
