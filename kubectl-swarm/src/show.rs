//! What the plugin prints, decided from the objects alone: tables as kubectl and the docker CLI
//! lay them out, and which revision a rollback goes to. Pure, unit-tested.

use k8s_openapi::{api::apps::v1::ControllerRevision, jiff::Timestamp};
use swarm_operator_crds::{
    SwarmService,
    service::{
        TaskStatus,
        history::{CHANGE_CAUSE, spec_of},
    },
};

/// Columns padded as kubectl's printer pads them: three spaces between, the last unpadded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(&cell);
            } else {
                out.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n") + "\n"
}

/// How long ago `timestamp` was, as the docker CLI says it ("5 seconds ago").
pub fn ago(timestamp: Option<&str>, now: Timestamp) -> String {
    let Some(then) = timestamp.and_then(|t| t.parse::<Timestamp>().ok()) else {
        return String::new();
    };
    let seconds = (now.as_second() - then.as_second()).max(0);
    let (n, unit) = match seconds {
        0..60 => (seconds, "second"),
        60..3600 => (seconds / 60, "minute"),
        3600..86400 => (seconds / 3600, "hour"),
        _ => (seconds / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `docker service ps`: each task the status reports, the current one of each slot first.
pub fn tasks(svc: &SwarmService, now: Timestamp) -> String {
    let status = svc.status.clone().unwrap_or_default();
    let service = status.service_name.unwrap_or_else(|| svc.service_name());
    let name = |t: &TaskStatus| match (t.slot, &t.node) {
        (Some(slot), _) => format!("{service}.{slot}"),
        (None, Some(node)) => format!("{service}.{node}"),
        (None, None) => service.clone(),
    };
    let rows: Vec<Vec<String>> = status
        .tasks
        .iter()
        .map(|t| {
            vec![
                t.id.chars().take(12).collect(),
                name(t),
                t.node.clone().unwrap_or_default(),
                capitalized(&t.desired_state),
                format!("{} {}", capitalized(&t.state), ago(t.timestamp.as_deref(), now)),
                t.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR"],
        &rows,
    )
}

/// `kubectl rollout history`, with what a Swarm user looks for: each revision's image and
/// replicas; `*` marks the one the swarm was last given.
pub fn history(revisions: &[ControllerRevision], written: Option<i64>) -> String {
    let rows: Vec<Vec<String>> = revisions
        .iter()
        .map(|r| {
            let spec = spec_of(r);
            let replicas = spec.as_ref().and_then(|s| s.replicas).map(|n| n.to_string());
            let cause = r
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CHANGE_CAUSE))
                .cloned()
                .unwrap_or_else(|| "<none>".into());
            let mark = if Some(r.revision) == written { "*" } else { "" };
            vec![
                format!("{}{mark}", r.revision),
                spec.map(|s| s.image).unwrap_or_default(),
                replicas.unwrap_or_else(|| "-".into()),
                cause,
            ]
        })
        .collect();
    table(&["REVISION", "IMAGE", "REPLICAS", "CHANGE-CAUSE"], &rows)
}

/// The revision a rollback writes back: `to`, or else the newest before the current generation.
pub fn rollback_target<'a>(
    svc: &SwarmService,
    revisions: &'a [ControllerRevision],
    to: Option<i64>,
) -> Result<&'a ControllerRevision, String> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let generation = svc.metadata.generation.unwrap_or_default();
    let kept = || match (revisions.first(), revisions.last()) {
        (Some(first), Some(last)) => format!("revisions {} to {} are kept", first.revision, last.revision),
        _ => "no revision is kept yet".into(),
    };
    let found = match to {
        Some(n) => revisions.iter().find(|r| r.revision == n),
        None => revisions.iter().rev().find(|r| r.revision < generation),
    };
    let target = found.ok_or_else(|| match to {
        Some(n) => format!(
            "SwarmService {name} has no revision {n}: {} (kubectl swarm history {name})",
            kept()
        ),
        None => format!(
            "SwarmService {name} has no revision before generation {generation}: {}",
            kept()
        ),
    })?;
    if spec_of(target).as_ref() == Some(&svc.spec) {
        return Err(format!(
            "SwarmService {name} already runs the spec of revision {}: nothing to roll back",
            target.revision
        ));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_operator_crds::service::history::revision;

    fn service(generation: i64, image: &str) -> SwarmService {
        serde_yaml_ng::from_str(&format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\n\
             metadata: {{name: web, namespace: shop, uid: u1, generation: {generation}}}\n\
             spec: {{image: '{image}', replicas: 2}}"
        ))
        .unwrap()
    }

    fn revisions() -> Vec<ControllerRevision> {
        [(1, "whoami:1"), (2, "whoami:2"), (3, "whoami:3")]
            .into_iter()
            .map(|(g, image)| revision(&service(g, image)).unwrap())
            .collect()
    }

    #[test]
    fn tasks_read_as_docker_service_ps() {
        let mut svc = service(1, "whoami:1");
        svc.status = serde_json::from_value(serde_json::json!({
            "serviceName": "web",
            "tasks": [
                {"id": "abcdefghijklmnop", "slot": 1, "node": "vm-1", "desiredState": "running",
                 "state": "running", "timestamp": "2026-01-01T00:00:00Z"},
                {"id": "qrstuvwxyz", "slot": 1, "node": "vm-1", "desiredState": "shutdown",
                 "state": "failed", "error": "task: non-zero exit (1)", "timestamp": "2025-12-31T23:00:00Z"}
            ]
        }))
        .unwrap();
        let now: Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
        assert_eq!(
            tasks(&svc, now),
            "ID             NAME    NODE   DESIRED STATE   CURRENT STATE           ERROR\n\
             abcdefghijkl   web.1   vm-1   Running         Running 5 seconds ago\n\
             qrstuvwxyz     web.1   vm-1   Shutdown        Failed 1 hour ago       task: non-zero exit (1)\n"
        );
    }

    #[test]
    fn history_lists_each_revision_and_marks_the_one_written() {
        assert_eq!(
            history(&revisions(), Some(3)),
            "REVISION   IMAGE      REPLICAS   CHANGE-CAUSE\n\
             1          whoami:1   2          <none>\n\
             2          whoami:2   2          <none>\n\
             3*         whoami:3   2          <none>\n"
        );
    }

    #[test]
    fn a_rollback_goes_to_the_previous_revision_or_the_one_named() {
        let revisions = revisions();
        let current = service(3, "whoami:3");
        assert_eq!(rollback_target(&current, &revisions, None).unwrap().revision, 2);
        assert_eq!(
            rollback_target(&current, &revisions, Some(1)).unwrap().revision,
            1
        );
        assert_eq!(
            rollback_target(&current, &revisions, Some(7)).unwrap_err(),
            "SwarmService web has no revision 7: revisions 1 to 3 are kept (kubectl swarm history web)"
        );
        assert_eq!(
            rollback_target(&current, &revisions, Some(3)).unwrap_err(),
            "SwarmService web already runs the spec of revision 3: nothing to roll back"
        );
        assert_eq!(
            rollback_target(&service(1, "whoami:1"), &revisions[..1], None).unwrap_err(),
            "SwarmService web has no revision before generation 1: revisions 1 to 1 are kept"
        );
    }
}
