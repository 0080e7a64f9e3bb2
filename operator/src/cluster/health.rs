//! What the node list says of a swarm's health, as `docker node ls` shows it and in plain words:
//! managers reachable, the leader, and whether quorum is at risk. Pure, so every case is a test.

use bollard::models::{Node, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState, Reachability};
use swarm_operator_crds::cluster::{
    NodeStatus, REASON_BARE_MAJORITY, REASON_EVEN_MANAGER_COUNT, REASON_NO_MANAGERS, REASON_QUORUM_HEALTHY,
    REASON_QUORUM_LOST, REASON_SINGLE_MANAGER,
};

/// The managers' side of the swarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quorum {
    pub reachable: i32,
    pub total: i32,
    pub leader: Option<String>,
    /// Hostnames of the managers that do not answer.
    pub unreachable: Vec<String>,
}

/// The QuorumAtRisk condition: status, reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Risk {
    pub at_risk: bool,
    pub reason: &'static str,
    pub message: String,
}

/// `docker node ls`, sorted by hostname.
pub fn node_statuses(nodes: &[Node]) -> Vec<NodeStatus> {
    let mut out: Vec<NodeStatus> = nodes.iter().map(node_status).collect();
    out.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.node_id.cmp(&b.node_id)));
    out
}

fn node_status(node: &Node) -> NodeStatus {
    let spec = node.spec.clone().unwrap_or_default();
    let description = node.description.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    let manager_status = node.manager_status.as_ref().map(|m| {
        if m.leader == Some(true) {
            "Leader".to_string()
        } else {
            match m.reachability {
                Some(Reachability::REACHABLE) => "Reachable",
                Some(Reachability::UNREACHABLE) => "Unreachable",
                _ => "Unknown",
            }
            .to_string()
        }
    });
    NodeStatus {
        hostname: description.hostname.unwrap_or_default(),
        node_id: node.id.clone().unwrap_or_default(),
        role: match spec.role {
            Some(NodeSpecRoleEnum::MANAGER) => "manager",
            _ => "worker",
        }
        .into(),
        availability: match spec.availability {
            Some(NodeSpecAvailabilityEnum::PAUSE) => "pause",
            Some(NodeSpecAvailabilityEnum::DRAIN) => "drain",
            _ => "active",
        }
        .into(),
        state: match status.state {
            Some(NodeState::READY) => "ready",
            Some(NodeState::DOWN) => "down",
            Some(NodeState::DISCONNECTED) => "disconnected",
            _ => "unknown",
        }
        .into(),
        manager_status,
        address: status.addr.filter(|a| !a.is_empty()),
        engine_version: description.engine.and_then(|e| e.engine_version),
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
    }
}

/// Counts the managers from the node list: a manager is reachable when its Raft member answers.
pub fn quorum(nodes: &[NodeStatus]) -> Quorum {
    let managers: Vec<&NodeStatus> = nodes.iter().filter(|n| n.manager_status.is_some()).collect();
    let unreachable: Vec<String> = managers
        .iter()
        .filter(|n| !matches!(n.manager_status.as_deref(), Some("Leader" | "Reachable")))
        .map(|n| n.hostname.clone())
        .collect();
    Quorum {
        reachable: (managers.len() - unreachable.len()) as i32,
        total: managers.len() as i32,
        leader: managers
            .iter()
            .find(|n| n.manager_status.as_deref() == Some("Leader"))
            .map(|n| n.hostname.clone()),
        unreachable,
    }
}

/// Raft needs a majority of managers; the swarm is at risk when losing one more manager would
/// leave less than that.
pub fn risk(q: &Quorum) -> Risk {
    let majority = q.total / 2 + 1;
    let missing = if q.unreachable.is_empty() {
        String::new()
    } else {
        format!(" (unreachable: {})", q.unreachable.join(", "))
    };
    let (at_risk, reason, message) = if q.total == 0 {
        (
            true,
            REASON_NO_MANAGERS,
            "the node list shows no manager".to_string(),
        )
    } else if q.reachable < majority {
        (
            true,
            REASON_QUORUM_LOST,
            format!(
                "only {} of {} managers are reachable{missing}: the swarm has lost quorum and accepts no changes until {majority} are back",
                q.reachable, q.total
            ),
        )
    } else if q.total == 1 {
        (
            true,
            REASON_SINGLE_MANAGER,
            "the swarm has a single manager: losing it stops every change to the swarm; run 3 or 5 managers for fault tolerance".to_string(),
        )
    } else if q.reachable == majority {
        (
            true,
            REASON_BARE_MAJORITY,
            format!(
                "{} of {} managers are reachable{missing}, a bare majority: losing one more manager stops every change to the swarm",
                q.reachable, q.total
            ),
        )
    } else if q.total % 2 == 0 {
        (
            true,
            REASON_EVEN_MANAGER_COUNT,
            format!(
                "{} managers tolerate the loss of {} manager(s), no more than {} would: run an odd number of managers",
                q.total,
                (q.total - 1) / 2,
                q.total - 1
            ),
        )
    } else {
        (
            false,
            REASON_QUORUM_HEALTHY,
            format!(
                "{} of {} managers are reachable{missing}; the swarm tolerates the loss of {} more",
                q.reachable,
                q.total,
                q.reachable - majority
            ),
        )
    };
    Risk {
        at_risk,
        reason,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managers(statuses: &[&str]) -> Quorum {
        let nodes: Vec<NodeStatus> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| NodeStatus {
                hostname: format!("m{i}"),
                manager_status: Some(s.to_string()),
                ..Default::default()
            })
            .collect();
        quorum(&nodes)
    }

    #[test]
    fn three_healthy_managers_are_not_at_risk() {
        let q = managers(&["Leader", "Reachable", "Reachable"]);
        assert_eq!((q.reachable, q.total, q.leader.as_deref()), (3, 3, Some("m0")));
        let r = risk(&q);
        assert!(!r.at_risk);
        assert!(
            r.message.contains("tolerates the loss of 1 more"),
            "{}",
            r.message
        );
    }

    #[test]
    fn losing_one_of_three_leaves_a_bare_majority() {
        let r = risk(&managers(&["Leader", "Reachable", "Unreachable"]));
        assert!(r.at_risk);
        assert_eq!(r.reason, REASON_BARE_MAJORITY);
        assert!(r.message.contains("unreachable: m2"), "{}", r.message);
    }

    #[test]
    fn four_managers_are_at_risk_even_when_all_answer() {
        let r = risk(&managers(&["Leader", "Reachable", "Reachable", "Reachable"]));
        assert_eq!((r.at_risk, r.reason), (true, REASON_EVEN_MANAGER_COUNT));
        // One lost from four leaves three of four: a bare majority, as from three.
        let r = risk(&managers(&["Leader", "Reachable", "Reachable", "Unreachable"]));
        assert_eq!((r.at_risk, r.reason), (true, REASON_BARE_MAJORITY));
    }

    #[test]
    fn five_managers_losing_one_still_tolerate_one_more() {
        let r = risk(&managers(&[
            "Leader",
            "Reachable",
            "Reachable",
            "Reachable",
            "Unreachable",
        ]));
        assert!(!r.at_risk, "{}", r.message);
        let r = risk(&managers(&[
            "Leader",
            "Reachable",
            "Reachable",
            "Unreachable",
            "Unreachable",
        ]));
        assert_eq!(r.reason, REASON_BARE_MAJORITY);
    }

    #[test]
    fn a_minority_has_lost_quorum_and_a_single_manager_has_no_margin() {
        assert_eq!(
            risk(&managers(&["Reachable", "Unreachable", "Unreachable"])).reason,
            REASON_QUORUM_LOST
        );
        assert_eq!(risk(&managers(&["Leader"])).reason, REASON_SINGLE_MANAGER);
    }

    #[test]
    fn node_list_reads_like_docker_node_ls() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "ID": "abc", "Spec": {"Role": "manager", "Availability": "drain", "Labels": {"zone": "a"}},
            "Description": {"Hostname": "m1", "Engine": {"EngineVersion": "20.10.24"}},
            "Status": {"State": "down", "Addr": "198.18.0.11"},
            "ManagerStatus": {"Leader": false, "Reachability": "unreachable", "Addr": "198.18.0.11:2377"}
        }))
        .unwrap();
        let worker: Node = serde_json::from_value(serde_json::json!({
            "ID": "def", "Spec": {"Role": "worker", "Availability": "active"},
            "Description": {"Hostname": "a-worker"}, "Status": {"State": "ready"}
        }))
        .unwrap();
        let listed = node_statuses(&[node, worker]);
        assert_eq!(listed[0].hostname, "a-worker");
        assert_eq!(listed[0].manager_status, None);
        let m1 = &listed[1];
        assert_eq!(
            (m1.role.as_str(), m1.availability.as_str(), m1.state.as_str()),
            ("manager", "drain", "down")
        );
        assert_eq!(m1.manager_status.as_deref(), Some("Unreachable"));
        assert_eq!(m1.engine_version.as_deref(), Some("20.10.24"));
        assert_eq!(m1.labels.get("zone").map(String::as_str), Some("a"));
    }
}
