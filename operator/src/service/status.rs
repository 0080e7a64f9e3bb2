//! What a SwarmService's status says, decided from what the swarm showed: the summary for the
//! conditions (and when to look again), and the facts `docker service inspect` and `ps` give.

use std::time::Duration;

use bollard::models::{Service, Task};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use swarm_operator_crds::{
    SwarmService, SwarmServiceStatus,
    conditions::{
        COMPLETE, FAILED, FALSE, READY, REASON_COMPLETED, REASON_JOB_FAILED, REASON_MANUAL_ROLLBACK,
        REASON_NAME_CONFLICT, REASON_NO_ELIGIBLE_NODE, REASON_NOT_PERMITTED, REASON_PROGRESSING,
        REASON_ROLLED_BACK, REASON_RUNNING, REASON_TASKS_FAILING, REASON_UPDATE_PAUSED, STALLED, TRUE,
    },
    service::{EndpointStatus, JobProgress, Rollback, TaskStatus, UpdateStatus},
};

use super::{diff, report, tasks};
use crate::{conditions::Summary, context::Settings, labels::Ownership, swarm::NodeFacts};

/// What the status reports of the Swarm service besides the conditions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub service_id: Option<String>,
    /// (running, desired)
    pub replicas: Option<(i32, i32)>,
    pub update_status: Option<UpdateStatus>,
    pub tasks: Vec<TaskStatus>,
    pub endpoint: Option<EndpointStatus>,
    pub job: Option<JobProgress>,
    /// The generation whose spec the operator last wrote to the swarm.
    pub written_generation: Option<i64>,
    /// The Secret version whose pull credentials the manager last got.
    pub pull_credentials_from: Option<String>,
    /// The versions of the Secrets and ConfigMaps the environment was read from at the last write.
    pub env_sources: Vec<String>,
    /// The rollback Swarm is in or completed, and who asked for it.
    pub rollback: Option<Rollback>,
}

impl Facts {
    /// The facts the status of `svc` holds now.
    pub fn before(svc: &SwarmService) -> Self {
        let previous = svc.status.clone().unwrap_or_default();
        Facts {
            service_id: previous.service_id,
            replicas: previous.replicas.zip(previous.desired_replicas),
            update_status: previous.update_status,
            tasks: previous.tasks,
            endpoint: previous.endpoint,
            job: previous.job,
            written_generation: previous.written_generation,
            pull_credentials_from: previous.pull_credentials_from,
            env_sources: previous.env_sources,
            rollback: previous.rollback,
        }
    }

    /// What `docker service inspect` and `ps` show of `service`; `before`: the rollback status
    /// recorded, which tells who asked for a rollback Swarm no longer says.
    pub fn seen(
        service: &Service,
        tasks: &[Task],
        nodes: &[NodeFacts],
        assessment: &tasks::Assessment,
        before: Option<&Rollback>,
    ) -> Self {
        let hostnames = nodes.iter().map(|n| (n.id.clone(), n.hostname.clone())).collect();
        Facts {
            service_id: service.id.clone(),
            replicas: Some((assessment.running, assessment.desired)),
            update_status: report::update_status(service),
            tasks: report::task_statuses(tasks, &hostnames),
            endpoint: report::endpoint_status(service),
            job: assessment.job.clone(),
            written_generation: None,
            pull_credentials_from: None,
            env_sources: Vec::new(),
            rollback: report::rollback(service, before),
        }
    }
}

/// The status for `facts` and the kstatus `conditions`; a job also gets Complete and Failed, as a
/// Kubernetes Job has, read off the summary the conditions carry.
pub fn status(svc: &SwarmService, facts: Facts, mut conditions: Vec<Condition>) -> SwarmServiceStatus {
    if facts.job.is_some() {
        let holds = |type_: &str, reason: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == type_ && c.status == TRUE && c.reason == reason)
                .map(|c| c.message.clone())
        };
        let previous = svc
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let generation = svc.metadata.generation;
        let complete = holds(READY, REASON_COMPLETED);
        let failed = holds(STALLED, REASON_JOB_FAILED);
        for (type_, reason, message) in [
            (COMPLETE, REASON_COMPLETED, complete),
            (FAILED, REASON_JOB_FAILED, failed),
        ] {
            let (status, text) = match &message {
                Some(m) => (TRUE, m.as_str()),
                None => (FALSE, ""),
            };
            conditions.push(crate::conditions::condition(
                previous, generation, type_, status, reason, text,
            ));
        }
    }
    SwarmServiceStatus {
        observed_generation: svc.metadata.generation,
        conditions,
        // Set by the pass (see pass::write_status).
        swarm: None,
        service_name: Some(svc.service_name()),
        service_id: facts.service_id,
        replicas: facts.replicas.map(|r| r.0),
        desired_replicas: facts.replicas.map(|r| r.1),
        update_status: facts.update_status,
        tasks: facts.tasks,
        endpoint: facts.endpoint,
        job: facts.job,
        written_generation: facts.written_generation,
        pull_credentials_from: facts.pull_credentials_from,
        env_sources: facts.env_sources,
        rollback: facts.rollback,
    }
}

/// The summary of what the tasks show, and when to look again.
pub fn summary(assessment: &tasks::Assessment, settings: &Settings) -> (Summary, Duration) {
    match &assessment.health {
        tasks::Health::Converged => (
            Summary::Ready {
                reason: REASON_RUNNING,
                message: format!("{}/{} tasks running", assessment.running, assessment.desired),
            },
            settings.resync_interval,
        ),
        tasks::Health::Progressing(message) => (
            Summary::Reconciling {
                reason: REASON_PROGRESSING,
                message: message.clone(),
            },
            settings.progress_interval,
        ),
        tasks::Health::Paused(message) => (
            Summary::Stalled {
                reason: REASON_UPDATE_PAUSED,
                message: message.clone(),
            },
            settings.resync_interval,
        ),
        tasks::Health::NoEligibleNode(message) => (
            Summary::Reconciling {
                reason: REASON_NO_ELIGIBLE_NODE,
                message: message.clone(),
            },
            settings.progress_interval * 5,
        ),
        tasks::Health::Complete(message) => (
            Summary::Ready {
                reason: REASON_COMPLETED,
                message: message.clone(),
            },
            settings.resync_interval,
        ),
        tasks::Health::JobFailed(message) => (
            Summary::Stalled {
                reason: REASON_JOB_FAILED,
                message: message.clone(),
            },
            settings.resync_interval,
        ),
        tasks::Health::Failing(message) => (
            Summary::Stalled {
                reason: REASON_TASKS_FAILING,
                message: message.clone(),
            },
            settings.progress_interval * 5,
        ),
    }
}

/// The current generation was rolled back, by Swarm (what failed) or by hand on the swarm; the
/// previous spec runs either way, and the generation is held until the spec changes.
pub fn rolled_back(
    svc: &SwarmService,
    service: &Service,
    tasks: &[Task],
    rollback: Option<&Rollback>,
) -> Summary {
    let generation = svc.metadata.generation.unwrap_or_default();
    if rollback.is_some_and(|r| r.manual) {
        return Summary::Stalled {
            reason: REASON_MANUAL_ROLLBACK,
            message: format!(
                "generation {generation} was rolled back by hand on the swarm (docker service update --rollback): \
                 the previous spec runs, and swarm-operator leaves it so until the spec changes. To keep the \
                 rollback, put the previous spec back in the resource (under GitOps, revert the commit)"
            ),
        };
    }
    let template = service
        .spec
        .as_ref()
        .and_then(|s| s.task_template.clone())
        .unwrap_or_default();
    let current = |t: &Task| {
        t.spec
            .as_ref()
            .is_some_and(|s| diff::task_is_current(s, &template))
    };
    let failures = report::failures_outside(current, tasks, 3);
    let swarm_says = service
        .update_status
        .as_ref()
        .and_then(|u| u.message.clone())
        .unwrap_or_default();
    let mut message = format!("Swarm rolled back generation {generation} ({swarm_says})");
    if !failures.is_empty() {
        message.push_str(&format!("; failing tasks: {}", failures.join("; ")));
    }
    message.push_str(". The previous spec keeps running; change the spec to try again");
    Summary::Stalled {
        reason: REASON_ROLLED_BACK,
        message,
    }
}

/// The resource asks to adopt Swarm service `name`, and its cluster's policy does not allow it.
pub fn adoption_not_allowed(name: &str, cluster: &str) -> Summary {
    Summary::Stalled {
        reason: REASON_NOT_PERMITTED,
        message: format!(
            "a Swarm service named {name} exists and swarm-operator did not make it; cluster {cluster} does not allow \
             taking it over (an admin sets spec.allowAdoption on the SwarmCluster, or --allow-adoption for the \
             operator's own engine). It is left untouched"
        ),
    }
}

/// The Swarm service `name` belongs to `owner`, not to this resource.
pub fn name_conflict(name: &str, owner: &Ownership) -> Summary {
    Summary::Stalled {
        reason: REASON_NAME_CONFLICT,
        message: format!(
            "a Swarm service named {name} already exists and belongs to {}; it is left untouched. \
             Remove it or set spec.serviceName to another name",
            owner.holder("SwarmService")
        ),
    }
}
