//! How Swarm schedules, updates, restarts and limits a service's tasks.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Duration, Quantity, cpu_bounds, whole_bytes, zero_or_at_least_1ms};

/// Scheduling mode (`docker service create --mode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceMode {
    /// `replicas` tasks spread over the nodes.
    #[default]
    Replicated,
    /// One task on every node that satisfies the placement constraints.
    Global,
    /// Runs `totalCompletions` tasks to completion, `maxConcurrent` at a time.
    ReplicatedJob,
    /// Runs one task to completion on every node.
    GlobalJob,
}

/// Container healthcheck, overriding the image's HEALTHCHECK.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Healthcheck {
    /// `["CMD", "wget", "-qO-", "localhost:4567"]`, `["CMD-SHELL", "curl -f localhost"]`, or `["NONE"]`
    /// to disable the image's check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) == 0 || self[0] in ['NONE', 'CMD', 'CMD-SHELL']")
        .message("spec.healthcheck.test must start with NONE, CMD or CMD-SHELL"))]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = zero_or_at_least_1ms("spec.healthcheck.interval"))]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = zero_or_at_least_1ms("spec.healthcheck.timeout"))]
    pub timeout: Option<Duration>,
    /// Consecutive failures before the task is unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub retries: Option<i64>,
    /// Grace period after start during which failures do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = zero_or_at_least_1ms("spec.healthcheck.startPeriod"))]
    pub start_period: Option<Duration>,
}

/// Rolling update (or rollback) behaviour, as `docker service update --update-*`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConfig {
    /// Tasks updated at once; 0 updates all at once. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub parallelism: Option<i64>,
    /// Wait between batches. Default 0s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// StopFirst (default) stops the old task before starting the new; StartFirst overlaps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<UpdateOrder>,
    /// What to do when an updated task fails: Pause (default), Continue or Rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,
    /// How long each updated task is watched for failure. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Duration>,
    /// Fraction of tasks that may fail during the update, 0 to 1. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_failure_ratio: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum UpdateOrder {
    StopFirst,
    StartFirst,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FailureAction {
    Pause,
    Continue,
    Rollback,
}

/// When Swarm restarts a task (`--restart-*`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartPolicy {
    /// None, OnFailure or Any (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<RestartCondition>,
    /// Wait between restarts. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// Restarts before giving up; 0 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_attempts: Option<i64>,
    /// Window in which restarts are counted against maxAttempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestartCondition {
    None,
    OnFailure,
    Any,
}

/// CPU, memory and process limits and reservations (`--limit-*`, `--reserve-*`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.limits) || !has(self.reservations) || !has(self.limits.memory) || !has(self.reservations.memory) || !isQuantity(string(self.reservations.memory)) || !isQuantity(string(self.limits.memory)) || quantity(string(self.reservations.memory)).compareTo(quantity(string(self.limits.memory))) <= 0")
        .message("spec.resources.reservations.memory cannot exceed spec.resources.limits.memory"),
    validation = Rule::new("!has(self.limits) || !has(self.reservations) || !has(self.limits.cpu) || !has(self.reservations.cpu) || !isQuantity(string(self.reservations.cpu)) || !isQuantity(string(self.limits.cpu)) || quantity(string(self.reservations.cpu)).compareTo(quantity(string(self.limits.cpu))) <= 0")
        .message("spec.resources.reservations.cpu cannot exceed spec.resources.limits.cpu"),
)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceReservations>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLimits {
    /// CPUs as a Kubernetes quantity: `500m`, `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = cpu_bounds("spec.resources.limits.cpu"))]
    pub cpu: Option<Quantity>,
    /// Memory as a Kubernetes quantity: `200Mi`, `1Gi`. At least 4Mi, as the Engine requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = whole_bytes("spec.resources.limits.memory"),
        validation = Rule::new("!isQuantity(string(self)) || quantity(string(self)).compareTo(quantity('4Mi')) >= 0")
            .message("spec.resources.limits.memory must be at least 4Mi: the Engine refuses less")
    )]
    pub memory: Option<Quantity>,
    /// Maximum processes in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub pids: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReservations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = cpu_bounds("spec.resources.reservations.cpu"))]
    pub cpu: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = whole_bytes("spec.resources.reservations.memory"))]
    pub memory: Option<Quantity>,
}

/// Where tasks may run (`--constraint`, `--placement-pref`, `--replicas-max-per-node`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// E.g. `node.role == manager`, `node.labels.zone != east`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 256)))]
    #[x_kube(validation = Rule::new(CONSTRAINT)
        .message("spec.placement.constraints: each must be `key == value` or `key != value` with key node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>, e.g. node.role == manager"))]
    pub constraints: Vec<String>,
    /// Spread tasks over the values of node labels, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    /// At most this many tasks of the service on one node; 0 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_replicas_per_node: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementPreference {
    /// A node label to spread over, e.g. `node.labels.zone`.
    pub spread: String,
}

/// Swarm's constraint syntax: one known key, `==` or `!=`, a value.
const CONSTRAINT: &str = r"self.all(c, c.matches(r'^\s*(node\.(id|hostname|role|platform\.os|platform\.arch)|(node|engine)\.labels\.[^=!\s]+)\s*(==|!=)\s*[^=!\s][^=!]*$'))";

/// Logging driver of the tasks' containers (`--log-driver`, `--log-opt`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogDriver {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}
