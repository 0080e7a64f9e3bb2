//! What a SwarmService's status reports: kstatus conditions and what `docker service inspect` and
//! `docker service ps` show, plus a job's progress.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// ID of the swarm this resource's objects are on (`docker info`'s Swarm.Cluster.ID). A
    /// cluster that comes to reach another swarm (its SwarmCluster deleted, selected away or
    /// pointed elsewhere) leaves the resource ClusterUnavailable instead of moving it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<String>,
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
    /// The Swarm's rolling update or rollback, as `docker service inspect` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatus>,
    /// The current task of each slot (or node) and the most recent failed ones, as
    /// `docker service ps` shows them; capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskStatus>,
    /// Virtual IPs and published ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointStatus>,
    /// The generation whose spec the operator last wrote to the swarm. Apart from
    /// observedGeneration (what the conditions speak of): a generation can be observed long before
    /// it is written, while it waits for a dependency. A generation Swarm rolled back is not
    /// written again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_generation: Option<i64>,
    /// Which imagePullSecret, at which resourceVersion (`name@version`), gave the registry
    /// credentials the manager last got: a Secret fixed in place sends them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_credentials_from: Option<String>,
    /// The Secrets and ConfigMaps the environment was read from when the spec was last written, as
    /// `Secret/<name>@<resourceVersion>`: a change there rolls the service, and is told from a
    /// hand edit on the swarm. Names and versions only, never a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_sources: Vec<String>,
    /// The rollback Swarm is in or completed, and who asked for it: Swarm itself
    /// (updateConfig.failureAction Rollback) or someone by hand (`docker service update --rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// Progress of a ReplicatedJob or GlobalJob, as a Kubernetes Job reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobProgress>,
}

/// How far a job's current run got.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    /// Tasks that completed (exit 0).
    pub succeeded: i32,
    /// Tasks that failed or were rejected.
    pub failed: i32,
    /// Completions asked for: totalCompletions, or for a GlobalJob the eligible nodes.
    pub completions: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStatus {
    /// updating, paused, completed, rollback_started, rollback_paused or rollback_completed.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

/// A rollback of the service, told apart by who asked for it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    /// When Swarm started it (updateStatus.startedAt): which rollback this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// True: someone ran `docker service update --rollback` (or the API's rollback) on the swarm;
    /// false: Swarm rolled back a failed update by itself.
    pub manual: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    pub id: String,
    /// Slot of a replicated service; absent for global ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<i64>,
    /// Hostname of the node the task is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub desired_state: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_ips: Vec<VirtualIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PublishedPort>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIp {
    /// Swarm network ID.
    pub network_id: String,
    /// Address with prefix length, e.g. 10.0.0.5/24.
    pub address: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedPort {
    pub target: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<i64>,
    pub protocol: String,
    pub mode: String,
}
