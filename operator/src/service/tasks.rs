//! Pure assessment of a service's tasks, as `docker service ps` shows them: how many run the current
//! spec, and whether the swarm is still converging or keeps failing.

use bollard::models::{Service, ServiceUpdateStatusStateEnum, Task, TaskState};
use k8s_openapi::jiff::Timestamp;

use super::diff::task_is_current;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// Tasks of the current spec in state running.
    pub running: i32,
    pub desired: i32,
    pub health: Health,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// running == desired, all on the current spec, no update under way.
    Converged,
    /// Tasks are starting, or an update is rolling; the message says what the Engine says.
    Progressing(String),
    /// Tasks of the current spec failed since the spec last changed and not all are running.
    Failing(String),
    /// Swarm paused the update or rollback (failureAction Pause); only a new spec resumes it.
    Paused(String),
}

pub fn assess(service: &Service, tasks: &[Task]) -> Assessment {
    let spec = service.spec.clone().unwrap_or_default();
    let template = spec.task_template.clone().unwrap_or_default();
    let desired = spec
        .mode
        .and_then(|m| m.replicated)
        .and_then(|r| r.replicas)
        .unwrap_or(0) as i32;
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

    #[test]
    fn converged_when_current_tasks_all_run() {
        let tasks = [
            task("img:2", "running", "running", "2026-01-01T00:00:20Z", None),
            task("img:2", "running", "running", "2026-01-01T00:00:20Z", None),
            task("img:1", "shutdown", "shutdown", "2026-01-01T00:00:20Z", None),
        ];
        let a = assess(&service(2, Some("completed")), &tasks);
        assert_eq!((a.running, a.desired, a.health), (2, 2, Health::Converged));
    }

    #[test]
    fn old_spec_tasks_do_not_count_as_running() {
        let tasks = [task("img:1", "running", "running", "2026-01-01T00:00:20Z", None)];
        let a = assess(&service(1, None), &tasks);
        assert_eq!(a.running, 0);
        assert!(matches!(a.health, Health::Progressing(_)));
    }

    #[test]
    fn rolling_update_is_progressing_with_engine_message() {
        let tasks = [task("img:2", "running", "running", "2026-01-01T00:00:20Z", None)];
        let a = assess(&service(1, Some("updating")), &tasks);
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
        let a = assess(&service(1, None), &tasks);
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
        let a = assess(&service(1, None), &tasks);
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
        let a = assess(&service(1, None), &tasks);
        assert!(matches!(a.health, Health::Progressing(_)));
    }
}
