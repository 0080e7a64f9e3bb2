//! What a SwarmService's status says, decided from what the swarm showed: the summary for the
//! conditions (and when to look again), and the facts `docker service inspect` and `ps` give.

use std::time::Duration;

use bollard::models::{Service, Task};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use swarm_operator_crds::{
    SwarmService, SwarmServiceStatus,
    conditions::{
        REASON_NAME_CONFLICT, REASON_PROGRESSING, REASON_ROLLED_BACK, REASON_RUNNING, REASON_TASKS_FAILING,
        REASON_UPDATE_PAUSED,
    },
    service::{EndpointStatus, TaskStatus, UpdateStatus},
};

use super::{diff, report, tasks};
use crate::{conditions::Summary, context::Settings, labels::Ownership};

/// What the status reports of the Swarm service besides the conditions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub service_id: Option<String>,
    /// (running, desired)
    pub replicas: Option<(i32, i32)>,
    pub update_status: Option<UpdateStatus>,
    pub tasks: Vec<TaskStatus>,
    pub endpoint: Option<EndpointStatus>,
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
        }
    }

    /// What `docker service inspect` and `ps` show of `service`.
    pub fn seen(
        service: &Service,
        tasks: &[Task],
        nodes: &std::collections::HashMap<String, String>,
        assessment: &tasks::Assessment,
    ) -> Self {
        Facts {
            service_id: service.id.clone(),
            replicas: Some((assessment.running, assessment.desired)),
            update_status: report::update_status(service),
            tasks: report::task_statuses(tasks, nodes),
            endpoint: report::endpoint_status(service),
        }
    }
}

pub fn status(svc: &SwarmService, facts: Facts, conditions: Vec<Condition>) -> SwarmServiceStatus {
    SwarmServiceStatus {
        observed_generation: svc.metadata.generation,
        conditions,
        service_name: Some(svc.service_name()),
        service_id: facts.service_id,
        replicas: facts.replicas.map(|r| r.0),
        desired_replicas: facts.replicas.map(|r| r.1),
        update_status: facts.update_status,
        tasks: facts.tasks,
        endpoint: facts.endpoint,
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
        tasks::Health::Failing(message) => (
            Summary::Stalled {
                reason: REASON_TASKS_FAILING,
                message: message.clone(),
            },
            settings.progress_interval * 5,
        ),
    }
}

/// Swarm rolled the current generation back: what failed, and that the previous spec runs.
pub fn rolled_back(svc: &SwarmService, service: &Service, tasks: &[Task]) -> Summary {
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
    let generation = svc.metadata.generation.unwrap_or_default();
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
