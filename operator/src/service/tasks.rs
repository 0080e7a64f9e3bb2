//! Pure assessment of a service's tasks, as `docker service ps` shows them: how many run the current
//! spec against how many the mode asks for (replicas; one per eligible node for Global; completions
//! for jobs), and whether the swarm is still converging, keeps failing, or a job finished.

use bollard::models::{Service, ServiceUpdateStatusStateEnum, Task, TaskState};
use k8s_openapi::jiff::Timestamp;
use swarm_operator_crds::service::JobProgress;

use super::{diff::task_is_current, placement};
use crate::swarm::NodeFacts;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// Tasks of the current spec in state running.
    pub running: i32,
    /// Tasks the mode asks to run (for a job: completions).
    pub desired: i32,
    pub health: Health,
    /// A job's progress; None for services.
    pub job: Option<JobProgress>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// running == desired (more than none unless none were asked for), all on the current spec,
    /// no update under way.
    Converged,
    /// Tasks are starting, or an update is rolling; the message says what the Engine says.
    Progressing(String),
    /// A Global service or job has no node to run on; a node that joins or changes may fix it.
    NoEligibleNode(String),
    /// Tasks of the current spec failed since the spec last changed and not all are running.
    Failing(String),
    /// Swarm paused the update or rollback (failureAction Pause); only a new spec resumes it.
    Paused(String),
    /// A job completed as many times as asked.
    Complete(String),
    /// A job's tasks failed and none runs or waits to any more.
    JobFailed(String),
}

pub fn assess(service: &Service, tasks: &[Task], nodes: &[NodeFacts]) -> Assessment {
    let spec = service.spec.clone().unwrap_or_default();
    let template = spec.task_template.clone().unwrap_or_default();
    let mode = spec.mode.clone().unwrap_or_default();
    let eligible = || placement::eligible(nodes, template.placement.as_ref()).len() as i32;
    if mode.replicated_job.is_some() || mode.global_job.is_some() {
        let completions = match &mode.replicated_job {
            Some(job) => job.total_completions.or(job.max_concurrent).unwrap_or(1) as i32,
            None => eligible(),
        };
        return assess_job(service, tasks, completions, &template);
    }
    let global = mode.global.is_some();
    let desired = if global {
        eligible()
    } else {
        mode.replicated.and_then(|r| r.replicas).unwrap_or(0) as i32
    };
    let current = |t: &&Task| t.spec.as_ref().is_some_and(|s| task_is_current(s, &template));
    let running = tasks
        .iter()
        .filter(current)
        .filter(|t| t.desired_state == Some(TaskState::RUNNING))
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .count() as i32;

    let updating = service.update_status.as_ref().and_then(|u| {
        matches!(
            u.state,
            Some(ServiceUpdateStatusStateEnum::UPDATING | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
        )
        .then(|| u.message.clone().unwrap_or_else(|| "update in progress".into()))
    });

    let paused = service.update_status.as_ref().and_then(|u| {
        matches!(
            u.state,
            Some(ServiceUpdateStatusStateEnum::PAUSED | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED)
        )
        .then(|| u.message.clone().unwrap_or_else(|| "update paused".into()))
    });
    let health = if let Some(message) = paused {
        Health::Paused(format!(
            "{running}/{desired} tasks running; Swarm paused the update: {message}"
        ))
    } else if global && desired == 0 {
        Health::NoEligibleNode(no_eligible_node())
    } else if running >= desired && updating.is_none() {
        Health::Converged
    } else if let Some(failure) = latest_failure(service, tasks, current) {
        Health::Failing(format!("{running}/{desired} tasks running; {failure}"))
    } else if let Some(message) = updating {
        Health::Progressing(format!("{running}/{desired} tasks running; {message}"))
    } else if let Some(waiting) = waiting_reason(tasks, current) {
        // What only the swarm can judge (no node matches the constraints, a mount source is
        // missing): the Engine's own words.
        Health::Progressing(format!("{running}/{desired} tasks running; {waiting}"))
    } else {
        Health::Progressing(format!("{running}/{desired} tasks running"))
    };
    Assessment {
        running,
        desired,
        health,
        job: None,
    }
}

fn no_eligible_node() -> String {
    "no node can take its tasks: none is Ready and Active and matches the placement constraints and platforms"
        .into()
}

/// A job's run: the tasks of its current iteration (each `docker service update` of a job starts
/// a new one), how many completed or failed, and whether any still runs or waits to.
fn assess_job(
    service: &Service,
    tasks: &[Task],
    completions: i32,
    template: &bollard::models::TaskSpec,
) -> Assessment {
    let iteration = service
        .job_status
        .as_ref()
        .and_then(|j| j.job_iteration.as_ref())
        .and_then(|v| v.index);
    let current = |t: &&Task| match iteration {
        Some(index) => t.job_iteration.as_ref().and_then(|v| v.index) == Some(index),
        None => t.spec.as_ref().is_some_and(|s| task_is_current(s, template)),
    };
    let state = |t: &Task| t.status.as_ref().and_then(|s| s.state);
    let count = |wanted: &[TaskState]| {
        tasks
            .iter()
            .filter(current)
            .filter(|t| state(t).is_some_and(|s| wanted.contains(&s)))
            .count() as i32
    };
    let succeeded = count(&[TaskState::COMPLETE]);
    let failed = count(&[TaskState::FAILED, TaskState::REJECTED]);
    let running = count(&[TaskState::RUNNING]);
    let active = count(&[
        TaskState::NEW,
        TaskState::PENDING,
        TaskState::ALLOCATED,
        TaskState::ASSIGNED,
        TaskState::ACCEPTED,
        TaskState::READY,
        TaskState::PREPARING,
        TaskState::STARTING,
        TaskState::RUNNING,
    ]);
    let progress = format!("{succeeded}/{completions} completed, {running} running, {failed} failed");
    let health = if completions > 0 && succeeded >= completions {
        Health::Complete(format!("{succeeded}/{completions} completed"))
    } else if active == 0 && failed > 0 {
        let why = latest_failure(service, tasks, current).unwrap_or_default();
        Health::JobFailed(format!("{progress}; Swarm runs no more tasks; {why}"))
    } else if completions == 0 {
        Health::NoEligibleNode(no_eligible_node())
    } else if let Some(waiting) = waiting_reason(tasks, current) {
        Health::Progressing(format!("{progress}; {waiting}"))
    } else {
        Health::Progressing(progress)
    };
    Assessment {
        running,
        desired: completions,
        health,
        job: Some(JobProgress {
            succeeded,
            failed,
            completions,
        }),
    }
}

/// The newest failure of a current-spec task since the service spec last changed, described.
fn latest_failure(service: &Service, tasks: &[Task], current: impl Fn(&&Task) -> bool) -> Option<String> {
    let since = service.updated_at.as_deref().and_then(parse_time);
    tasks
        .iter()
        .filter(current)
        .filter_map(|t| {
            let status = t.status.as_ref()?;
            let state = status.state?;
            if !matches!(state, TaskState::FAILED | TaskState::REJECTED) {
                return None;
            }
            let at = status.timestamp.as_deref().and_then(parse_time)?;
            if since.is_some_and(|s| at < s) {
                return None;
            }
            let what = status
                .err
                .clone()
                .or_else(|| status.message.clone())
                .unwrap_or_default();
            let id: String = t.id.clone().unwrap_or_default().chars().take(12).collect();
            let slot = t.slot.map(|s| format!(" (slot {s})")).unwrap_or_default();
            Some((at, format!("task {id}{slot} {state}: {what}")))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, text)| text)
}

/// The Engine's message on the newest current task that should run but does not yet, if any.
fn waiting_reason(tasks: &[Task], current: impl Fn(&&Task) -> bool) -> Option<String> {
    tasks
        .iter()
        .filter(current)
        .filter(|t| t.desired_state == Some(TaskState::RUNNING))
        .filter_map(|t| {
            let status = t.status.as_ref()?;
            let err = status.err.clone().filter(|e| !e.is_empty())?;
            let state = status.state.map(|s| s.to_string()).unwrap_or_default();
            Some((
                status.timestamp.clone().unwrap_or_default(),
                format!("task {state}: {err}"),
            ))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, text)| text)
}

fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(replicas: i64, update_state: Option<&str>) -> Service {
        let mut v = json!({
            "ID": "svc", "UpdatedAt": "2026-01-01T00:00:10Z",
            "Spec": {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "img:2"}, "Runtime": "container"},
                     "Mode": {"Replicated": {"Replicas": replicas}}}
        });
        if let Some(s) = update_state {
            v["UpdateStatus"] = json!({"State": s, "Message": "update in progress"});
        }
        serde_json::from_value(v).unwrap()
    }

    fn task(image: &str, desired: &str, state: &str, at: &str, err: Option<&str>) -> Task {
        serde_json::from_value(json!({
            "ID": "abcdefabcdefabcdef", "Slot": 1, "DesiredState": desired,
            "Spec": {"ContainerSpec": {"Image": image}},
            "Status": {"State": state, "Timestamp": at, "Err": err}
        }))
        .unwrap()
    }

    fn node(hostname: &str, role: &str) -> NodeFacts {
        NodeFacts {
            id: format!("id-{hostname}"),
            hostname: hostname.into(),
            role: role.into(),
            availability: "active".into(),
            state: "ready".into(),
            ..Default::default()
        }
    }

    fn with_mode(mut service: Service, mode: serde_json::Value) -> Service {
        service.spec.as_mut().unwrap().mode = Some(serde_json::from_value(mode).unwrap());
        service
    }

    #[test]
    fn global_wants_one_task_per_eligible_node() {
        let global = with_mode(service(0, None), json!({"Global": {}}));
        let nodes = [node("m1", "manager"), node("w1", "worker")];
        let one = [task("img:2", "running", "running", "2026-01-01T00:00:20Z", None)];
        let a = assess(&global, &one, &nodes);
        assert_eq!((a.running, a.desired), (1, 2));
        assert!(matches!(a.health, Health::Progressing(_)), "{:?}", a.health);
        let both = [one[0].clone(), one[0].clone()];
        assert_eq!(assess(&global, &both, &nodes).health, Health::Converged);
    }

    #[test]
    fn global_with_a_missing_image_is_failing_not_ready_with_nothing_running() {
        let global = with_mode(service(0, None), json!({"Global": {}}));
        let rejected = [task(
            "img:2",
            "shutdown",
            "rejected",
            "2026-01-01T00:00:20Z",
            Some("No such image: img:2"),
        )];
        let a = assess(&global, &rejected, &[node("m1", "manager")]);
        assert_eq!((a.running, a.desired), (0, 1));
        assert!(
            matches!(&a.health, Health::Failing(m) if m.contains("No such image")),
            "{:?}",
            a.health
        );
    }

    #[test]
    fn global_with_no_eligible_node_is_never_ready() {
        let global = with_mode(service(0, None), json!({"Global": {}}));
        assert!(matches!(
            assess(&global, &[], &[]).health,
            Health::NoEligibleNode(_)
        ));
    }

    fn job_task(state: &str, iteration: u64, err: Option<&str>) -> Task {
        let mut t = task("img:2", "complete", state, "2026-01-01T00:00:20Z", err);
        t.job_iteration = Some(bollard::models::ObjectVersion {
            index: Some(iteration),
        });
        t
    }

    fn job(total: i64, iteration: u64) -> Service {
        let mut s = with_mode(
            service(0, None),
            json!({"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": total}}),
        );
        s.job_status = Some(serde_json::from_value(json!({"JobIteration": {"Index": iteration}})).unwrap());
        s
    }

    #[test]
    fn a_job_completes_when_its_current_run_has_every_completion() {
        let tasks = [
            job_task("complete", 7, None),
            job_task("complete", 7, None),
            job_task("complete", 6, None),
        ];
        let a = assess(&job(3, 7), &tasks, &[]);
        assert!(
            matches!(a.health, Health::Progressing(_)),
            "an earlier run does not count: {:?}",
            a.health
        );
        assert_eq!(
            a.job,
            Some(JobProgress {
                succeeded: 2,
                failed: 0,
                completions: 3
            })
        );
        let tasks = [
            job_task("complete", 7, None),
            job_task("complete", 7, None),
            job_task("complete", 7, None),
        ];
        assert_eq!(
            assess(&job(3, 7), &tasks, &[]).health,
            Health::Complete("3/3 completed".into())
        );
    }

    #[test]
    fn a_job_fails_when_tasks_failed_and_none_runs_or_waits() {
        let failed = [job_task("failed", 1, Some("task: non-zero exit (3)"))];
        let a = assess(&job(1, 1), &failed, &[]);
        assert!(
            matches!(&a.health, Health::JobFailed(m) if m.contains("non-zero exit (3)")),
            "{:?}",
            a.health
        );
        assert_eq!(
            a.job,
            Some(JobProgress {
                succeeded: 0,
                failed: 1,
                completions: 1
            })
        );
        let retrying = [failed[0].clone(), job_task("pending", 1, None)];
        assert!(
            matches!(assess(&job(1, 1), &retrying, &[]).health, Health::Progressing(_)),
            "a retry is under way"
        );
    }

    #[test]
    fn converged_when_current_tasks_all_run() {
        let tasks = [
            task("img:2", "running", "running", "2026-01-01T00:00:20Z", None),
            task("img:2", "running", "running", "2026-01-01T00:00:20Z", None),
            task("img:1", "shutdown", "shutdown", "2026-01-01T00:00:20Z", None),
        ];
        let a = assess(&service(2, Some("completed")), &tasks, &[]);
        assert_eq!((a.running, a.desired, a.health), (2, 2, Health::Converged));
    }

    #[test]
    fn old_spec_tasks_do_not_count_as_running() {
        let tasks = [task("img:1", "running", "running", "2026-01-01T00:00:20Z", None)];
        let a = assess(&service(1, None), &tasks, &[]);
        assert_eq!(a.running, 0);
        assert!(matches!(a.health, Health::Progressing(_)));
    }

    #[test]
    fn rolling_update_is_progressing_with_engine_message() {
        let tasks = [task("img:2", "running", "running", "2026-01-01T00:00:20Z", None)];
        let a = assess(&service(1, Some("updating")), &tasks, &[]);
        assert_eq!(
            a.health,
            Health::Progressing("1/1 tasks running; update in progress".into())
        );
    }

    #[test]
    fn rejected_task_after_spec_change_is_failing_with_its_error() {
        let tasks = [
            task(
                "img:2",
                "shutdown",
                "rejected",
                "2026-01-01T00:00:20Z",
                Some("No such image: img:2"),
            ),
            task("img:2", "running", "preparing", "2026-01-01T00:00:25Z", None),
        ];
        let a = assess(&service(1, None), &tasks, &[]);
        assert_eq!(
            a.health,
            Health::Failing(
                "0/1 tasks running; task abcdefabcdef (slot 1) rejected: No such image: img:2".into()
            )
        );
    }

    #[test]
    fn pending_task_shows_the_schedulers_reason() {
        let tasks = [task(
            "img:2",
            "running",
            "pending",
            "2026-01-01T00:00:20Z",
            Some("no suitable node (scheduling constraints not satisfied on 1 node)"),
        )];
        let a = assess(&service(1, None), &tasks, &[]);
        assert_eq!(
            a.health,
            Health::Progressing(
                "0/1 tasks running; task pending: no suitable node (scheduling constraints not satisfied on 1 node)"
                    .into()
            )
        );
    }

    #[test]
    fn failures_before_the_last_spec_change_are_history() {
        let tasks = [task(
            "img:2",
            "shutdown",
            "failed",
            "2026-01-01T00:00:05Z",
            Some("exit 1"),
        )];
        let a = assess(&service(1, None), &tasks, &[]);
        assert!(matches!(a.health, Health::Progressing(_)));
    }
}
