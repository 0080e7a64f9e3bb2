//! Condition types and reasons shared by every kind, kstatus-compatible: `Ready` is the summary,
//! `Reconciling` says work is under way, `Stalled` says progress needs the user's attention.
//! Reasons are part of the API: users and tools match on them.

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// Condition types of a job (ReplicatedJob, GlobalJob), as on a Kubernetes Job.
pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";

/// The Swarm object runs the current generation as asked.
pub const REASON_RUNNING: &str = "Running";
/// Tasks are starting or a rolling update is under way.
pub const REASON_PROGRESSING: &str = "Progressing";
/// A Swarm object of the same name exists and is not owned by this resource.
pub const REASON_NAME_CONFLICT: &str = "NameConflict";
/// The cluster's policy does not allow what the resource asks (adoption of an unmanaged service).
pub const REASON_NOT_PERMITTED: &str = "NotPermitted";
/// A job's tasks completed as many times as asked.
pub const REASON_COMPLETED: &str = "Completed";
/// A job's tasks failed and Swarm runs none any more.
pub const REASON_JOB_FAILED: &str = "JobFailed";
/// No node can take the service's tasks (constraints, platforms, drained or down nodes).
pub const REASON_NO_ELIGIBLE_NODE: &str = "NoEligibleNode";
/// Tasks keep failing (image missing, command exits, healthcheck fails).
pub const REASON_TASKS_FAILING: &str = "TasksFailing";
/// Swarm rolled the current generation back (updateConfig.failureAction Rollback); waits for a
/// new generation.
pub const REASON_ROLLED_BACK: &str = "RolledBack";
/// Someone rolled the service back by hand on the swarm (`docker service update --rollback`); the
/// previous spec runs and the current generation is held until the spec changes.
pub const REASON_MANUAL_ROLLBACK: &str = "ManualRollback";
/// Swarm paused the rolling update (updateConfig.failureAction Pause); waits for a new generation.
pub const REASON_UPDATE_PAUSED: &str = "UpdatePaused";
/// A network, secret or config the spec refers to does not exist (yet); proceeds by itself.
pub const REASON_WAITING_FOR_DEPENDENCY: &str = "WaitingForDependency";
/// The spec cannot be turned into a Swarm object; waits for a change.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// The Engine API refused or failed a call; retried with backoff.
pub const REASON_ENGINE_ERROR: &str = "EngineError";
/// The resource is being deleted and its Swarm object removed.
pub const REASON_DELETING: &str = "Deleting";
/// The resource's SwarmCluster has no manager that answers (or does not exist); proceeds by
/// itself when it is back.
pub const REASON_CLUSTER_UNAVAILABLE: &str = "ClusterUnavailable";
/// A SwarmCluster talks to a manager of its swarm.
pub const REASON_CONNECTED: &str = "Connected";
/// A SwarmCluster's TLS Secret is missing or lacks ca.pem, cert.pem or key.pem.
pub const REASON_INVALID_TLS_SECRET: &str = "InvalidTLSSecret";
/// The Kubernetes Secret, ConfigMap or key a resource reads is missing; proceeds by itself when it
/// appears.
pub const REASON_SOURCE_MISSING: &str = "SourceMissing";

/// A condition's status values.
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// Whether `conditions` hold `type_` with status True.
pub fn is_true(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == TRUE)
}
