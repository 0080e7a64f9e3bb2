//! Pure translation of what the Engine reports (update status, tasks, endpoint) into the status
//! fields users read, as `docker service inspect` and `docker service ps` show them.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    Service, ServiceSpecUpdateConfigFailureActionEnum, ServiceUpdateStatusStateEnum, Task, TaskState,
};
use swarm_operator_crds::service::{
    EndpointStatus, PublishedPort, Rollback, TaskStatus, UpdateStatus, VirtualIp,
};

/// At most this many failed tasks besides the current one of each slot.
const RECENT_FAILURES: usize = 5;
/// At most this many tasks in status, whatever the service's size.
const MAX_TASKS: usize = 50;

pub fn update_status(service: &Service) -> Option<UpdateStatus> {
    let u = service.update_status.as_ref()?;
    let state = u.state.map(|s| s.to_string()).filter(|s| !s.is_empty())?;
    Some(UpdateStatus {
        state,
        message: u.message.clone().filter(|m| !m.is_empty()),
        started_at: u.started_at.clone(),
        completed_at: u.completed_at.clone(),
    })
}

/// Swarm's words when someone asks for a rollback (`docker service update --rollback`).
const MANUAL_ROLLBACK: &str = "manually requested rollback";
/// The start of Swarm's words when it rolls a failed update back by itself.
const AUTOMATIC_ROLLBACK: &str = "update rolled back due to";

/// The rollback the service is in or completed, and who asked for it. Swarm says who only while
/// the rollback runs: once complete, every rollback reads "rollback completed". So what was seen
/// of the same rollback (`before`, the same startedAt) is kept. A rollback never seen running (the
/// operator was down throughout) is taken for Swarm's own only with failureAction Rollback on the
/// spec (the Engine's models here do not carry the undone PreviousSpec).
pub fn rollback(service: &Service, before: Option<&Rollback>) -> Option<Rollback> {
    let update = service.update_status.as_ref()?;
    let rolling_back = matches!(
        update.state,
        Some(
            ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
                | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
        )
    );
    if !rolling_back {
        return None;
    }
    let started_at = update.started_at.clone();
    if let Some(seen) = before.filter(|b| b.started_at == started_at) {
        return Some(seen.clone());
    }
    let manual = match update.message.as_deref() {
        Some(MANUAL_ROLLBACK) => true,
        Some(m) if m.starts_with(AUTOMATIC_ROLLBACK) => false,
        _ => {
            let spec = service.spec.as_ref().and_then(|s| s.update_config.as_ref());
            spec.and_then(|u| u.failure_action) != Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK)
        }
    };
    Some(Rollback { started_at, manual })
}

pub fn endpoint_status(service: &Service) -> Option<EndpointStatus> {
    let endpoint = service.endpoint.as_ref()?;
    let virtual_ips: Vec<VirtualIp> = endpoint
        .virtual_ips
        .iter()
        .flatten()
        .map(|v| VirtualIp {
            network_id: v.network_id.clone().unwrap_or_default(),
            address: v.addr.clone().unwrap_or_default(),
        })
        .collect();
    let ports: Vec<PublishedPort> = endpoint
        .ports
        .iter()
        .flatten()
        .map(|p| PublishedPort {
            target: p.target_port.unwrap_or_default(),
            published: p.published_port.filter(|p| *p != 0),
            protocol: p.protocol.map(|x| x.to_string()).unwrap_or_default(),
            mode: p.publish_mode.map(|x| x.to_string()).unwrap_or_default(),
        })
        .collect();
    (!virtual_ips.is_empty() || !ports.is_empty()).then_some(EndpointStatus { virtual_ips, ports })
}

/// The newest task of each slot (or node, for global services), then the most recent failures.
pub fn task_statuses(tasks: &[Task], node_names: &HashMap<String, String>) -> Vec<TaskStatus> {
    let mut by_slot: BTreeMap<String, Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        let key = match t.slot {
            Some(slot) if slot > 0 => format!("slot/{slot:09}"),
            _ => format!("node/{}", t.node_id.clone().unwrap_or_default()),
        };
        by_slot.entry(key).or_default().push(t);
    }
    let mut current = Vec::new();
    let mut failed = Vec::new();
    for (_, mut slot_tasks) in by_slot {
        slot_tasks.sort_by_key(|t| std::cmp::Reverse(timestamp(t)));
        let (newest, older) = slot_tasks.split_at(1);
        current.push(newest[0]);
        failed.extend(older.iter().copied().filter(|t| is_failure(t)));
    }
    failed.sort_by_key(|t| std::cmp::Reverse(timestamp(t)));
    current
        .into_iter()
        .chain(failed.into_iter().take(RECENT_FAILURES))
        .take(MAX_TASKS)
        .map(|t| task_status(t, node_names))
        .collect()
}

fn is_failure(t: &Task) -> bool {
    let status = t.status.as_ref();
    matches!(
        status.and_then(|s| s.state),
        Some(TaskState::FAILED | TaskState::REJECTED)
    ) || status
        .and_then(|s| s.err.as_deref())
        .is_some_and(|e| !e.is_empty())
}

fn timestamp(t: &Task) -> String {
    t.status
        .as_ref()
        .and_then(|s| s.timestamp.clone())
        .or_else(|| t.updated_at.clone())
        .unwrap_or_default()
}

fn task_status(t: &Task, node_names: &HashMap<String, String>) -> TaskStatus {
    let status = t.status.clone().unwrap_or_default();
    TaskStatus {
        id: t.id.clone().unwrap_or_default(),
        slot: t.slot.filter(|s| *s > 0),
        node: t
            .node_id
            .as_ref()
            .map(|id| node_names.get(id).cloned().unwrap_or_else(|| id.clone())),
        desired_state: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
        state: status.state.map(|s| s.to_string()).unwrap_or_default(),
        error: status.err.filter(|e| !e.is_empty()),
        timestamp: status.timestamp,
    }
}

/// Errors of tasks that ran a spec other than the service's current one, newest first: after a
/// rollback, these are why the new generation failed.
pub fn failures_outside(
    template_is_current: impl Fn(&Task) -> bool,
    tasks: &[Task],
    limit: usize,
) -> Vec<String> {
    let mut failed: Vec<&Task> = tasks
        .iter()
        .filter(|t| !template_is_current(t) && is_failure(t))
        .collect();
    failed.sort_by_key(|t| std::cmp::Reverse(timestamp(t)));
    failed
        .into_iter()
        .take(limit)
        .map(|t| {
            let s = t.status.clone().unwrap_or_default();
            let id: String = t.id.clone().unwrap_or_default().chars().take(12).collect();
            let what = s.err.filter(|e| !e.is_empty()).or(s.message).unwrap_or_default();
            format!(
                "task {id} {}: {what}",
                s.state.map(|x| x.to_string()).unwrap_or_default()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(id: &str, slot: i64, state: &str, at: &str, err: Option<&str>) -> Task {
        serde_json::from_value(
            json!({"ID": id, "Slot": slot, "NodeID": "n1", "DesiredState": "running",
            "Status": {"State": state, "Timestamp": at, "Err": err}}),
        )
        .unwrap()
    }

    #[test]
    fn newest_task_per_slot_then_recent_failures() {
        let tasks = [
            task("a-old", 1, "failed", "2026-01-01T00:00:01Z", Some("exit 1")),
            task("a-new", 1, "running", "2026-01-01T00:00:05Z", None),
            task("b-new", 2, "running", "2026-01-01T00:00:04Z", None),
            task("b-old", 2, "shutdown", "2026-01-01T00:00:02Z", None),
        ];
        let names = HashMap::from([("n1".to_string(), "manager-1".to_string())]);
        let got: Vec<(String, Option<String>)> = task_statuses(&tasks, &names)
            .into_iter()
            .map(|t| (t.id, t.error))
            .collect();
        assert_eq!(
            got,
            [
                ("a-new".into(), None),
                ("b-new".into(), None),
                ("a-old".into(), Some("exit 1".into()))
            ]
        );
        assert_eq!(
            task_statuses(&tasks, &names)[0].node.as_deref(),
            Some("manager-1")
        );
    }

    #[test]
    fn failures_are_capped() {
        let tasks: Vec<Task> = (0..20)
            .map(|i| {
                task(
                    &format!("t{i}"),
                    1,
                    "failed",
                    &format!("2026-01-01T00:00:{i:02}Z"),
                    Some("boom"),
                )
            })
            .collect();
        assert_eq!(task_statuses(&tasks, &HashMap::new()).len(), 1 + RECENT_FAILURES);
    }

    #[test]
    fn a_rollback_is_told_manual_or_swarms_own_and_remembered_once_complete() {
        let service = |state: &str, message: &str, undone_action: &str| -> Service {
            serde_json::from_value(json!({
                "UpdateStatus": {"State": state, "Message": message, "StartedAt": "t1"},
                "Spec": {"UpdateConfig": {"FailureAction": undone_action}}
            }))
            .unwrap()
        };
        let manual = |m: bool| {
            Some(Rollback {
                started_at: Some("t1".into()),
                manual: m,
            })
        };
        // Seen starting: Swarm's words say who.
        assert_eq!(
            rollback(&service("rollback_started", MANUAL_ROLLBACK, "rollback"), None),
            manual(true)
        );
        let automatic = "update rolled back due to failure or early termination of task x";
        assert_eq!(
            rollback(&service("rollback_started", automatic, "rollback"), None),
            manual(false)
        );
        // Complete: the same rollback keeps what was seen.
        let done = service("rollback_completed", "rollback completed", "rollback");
        assert_eq!(rollback(&done, manual(true).as_ref()), manual(true));
        // Never seen running: Swarm rolls back by itself only with failureAction Rollback.
        assert_eq!(rollback(&done, None), manual(false));
        assert_eq!(
            rollback(
                &service("rollback_completed", "rollback completed", "pause"),
                None
            ),
            manual(true)
        );
        // Another rollback than the one recorded is judged afresh.
        let older = Rollback {
            started_at: Some("t0".into()),
            manual: true,
        };
        assert_eq!(rollback(&done, Some(&older)), manual(false));
        // No rollback, nothing to say.
        assert_eq!(
            rollback(
                &service("completed", "update completed", "rollback"),
                manual(true).as_ref()
            ),
            None
        );
    }

    #[test]
    fn update_and_endpoint_status() {
        let svc: Service = serde_json::from_value(json!({
            "UpdateStatus": {"State": "rollback_completed", "Message": "rollback completed"},
            "Endpoint": {"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 4567, "PublishMode": "ingress"}],
                         "VirtualIPs": [{"NetworkID": "ingress-id", "Addr": "10.0.0.5/24"}]}
        }))
        .unwrap();
        let u = update_status(&svc).unwrap();
        assert_eq!(
            (u.state.as_str(), u.message.as_deref()),
            ("rollback_completed", Some("rollback completed"))
        );
        let e = endpoint_status(&svc).unwrap();
        assert_eq!(e.virtual_ips[0].address, "10.0.0.5/24");
        assert_eq!(
            (e.ports[0].published, e.ports[0].mode.as_str()),
            (Some(4567), "ingress")
        );
    }
}
