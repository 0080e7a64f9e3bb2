//! What a SwarmNode's pass does to its node, decided from the spec and what the swarm shows:
//! the node spec to write (availability, the labels it manages, the role) and the role change it
//! refuses. Pure. The role is judged over the whole swarm: every node's role after the changes
//! the SwarmNodes ask, so that promoting two workers together (1 -> 3 managers) goes through where
//! promoting one (1 -> 2) is refused.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{Node, NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, Reachability};
use swarm_operator_crds::node::{NodeAvailability, NodeRole, SwarmNodeSpec};

#[derive(Debug, PartialEq)]
pub struct Plan {
    /// The node spec to write, and what changes in it, in words; None: nothing to write.
    pub write: Option<(NodeSpec, Vec<String>)>,
    /// Why the role asked for is not given (the rest is written all the same).
    pub role_refused: Option<String>,
    /// The label keys the resource manages once written.
    pub managed_labels: Vec<String>,
}

pub fn hostname(node: &Node) -> String {
    node.description
        .as_ref()
        .and_then(|d| d.hostname.clone())
        .unwrap_or_default()
}

fn role_of(node: &Node) -> NodeSpecRoleEnum {
    node.spec
        .as_ref()
        .and_then(|s| s.role)
        .unwrap_or(NodeSpecRoleEnum::WORKER)
}

fn wanted_role(role: NodeRole) -> NodeSpecRoleEnum {
    match role {
        NodeRole::Manager => NodeSpecRoleEnum::MANAGER,
        NodeRole::Worker => NodeSpecRoleEnum::WORKER,
    }
}

/// `spec` for `node`, with `managed_before` the label keys the resource set so far; `nodes` the
/// whole swarm and `roles` the role each SwarmNode of the swarm asks for, by hostname.
pub fn plan(
    spec: &SwarmNodeSpec,
    managed_before: &[String],
    node: &Node,
    nodes: &[Node],
    roles: &HashMap<String, NodeRole>,
) -> Plan {
    let actual = node.spec.clone().unwrap_or_default();
    let mut desired = actual.clone();
    let mut changes = Vec::new();

    let mut labels: BTreeMap<String, String> =
        actual.labels.clone().unwrap_or_default().into_iter().collect();
    for key in managed_before.iter().filter(|k| !spec.labels.contains_key(*k)) {
        if labels.remove(key).is_some() {
            changes.push(format!("label {key} removed"));
        }
    }
    for (key, value) in &spec.labels {
        if labels.get(key) != Some(value) {
            changes.push(format!("label {key}={value}"));
            labels.insert(key.clone(), value.clone());
        }
    }
    desired.labels = Some(labels.into_iter().collect());

    if let Some(availability) = spec.availability {
        let wanted = match availability {
            NodeAvailability::Active => NodeSpecAvailabilityEnum::ACTIVE,
            NodeAvailability::Pause => NodeSpecAvailabilityEnum::PAUSE,
            NodeAvailability::Drain => NodeSpecAvailabilityEnum::DRAIN,
        };
        if actual.availability != Some(wanted) {
            changes.push(format!("availability {wanted}"));
            desired.availability = Some(wanted);
        }
    }

    let mut role_refused = None;
    if let Some(role) = spec.role.map(wanted_role).filter(|r| *r != role_of(node)) {
        match role_change_refused(node, role, nodes, roles) {
            Some(why) => role_refused = Some(why),
            None => {
                changes.push(format!("role {role}"));
                desired.role = Some(role);
            }
        }
    }
    let mut managed_labels: Vec<String> = spec.labels.keys().cloned().collect();
    managed_labels.sort();
    Plan {
        write: (!changes.is_empty()).then_some((desired, changes)),
        role_refused,
        managed_labels,
    }
}

/// Why `node` may not take `role` now: the managers the swarm would have once every SwarmNode's
/// role is given must be odd (an even count tolerates no more lost managers than one fewer), and a
/// demotion must leave a reachable majority of the managers that remain.
fn role_change_refused(
    node: &Node,
    role: NodeSpecRoleEnum,
    nodes: &[Node],
    roles: &HashMap<String, NodeRole>,
) -> Option<String> {
    let name = hostname(node);
    let after = |n: &Node| {
        roles
            .get(&hostname(n))
            .map(|r| wanted_role(*r))
            .unwrap_or_else(|| role_of(n))
    };
    let managers_after = nodes
        .iter()
        .filter(|n| after(n) == NodeSpecRoleEnum::MANAGER)
        .count();
    let verb = if role == NodeSpecRoleEnum::MANAGER {
        "promoting"
    } else {
        "demoting"
    };
    if managers_after == 0 {
        return Some(format!("{verb} {name} would leave the swarm without a manager"));
    }
    if managers_after % 2 == 0 {
        return Some(format!(
            "{verb} {name} would leave {managers_after} managers: an even count tolerates no more lost managers than \
             {} do. Set spec.role on another node's SwarmNode too, to keep the count odd",
            managers_after - 1
        ));
    }
    if role == NodeSpecRoleEnum::WORKER {
        let reachable = |n: &Node| {
            n.manager_status
                .as_ref()
                .is_some_and(|m| m.reachability == Some(Reachability::REACHABLE))
        };
        let managers: Vec<&Node> = nodes
            .iter()
            .filter(|n| role_of(n) == NodeSpecRoleEnum::MANAGER)
            .collect();
        let remaining = managers.len() - 1;
        let reachable_remaining = managers
            .iter()
            .filter(|n| n.id != node.id && reachable(n))
            .count();
        if reachable_remaining < remaining / 2 + 1 {
            return Some(format!(
                "demoting {name} would leave {reachable_remaining} of {remaining} managers reachable, no majority: \
                 the swarm would lose quorum"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, role: &str, reachable: bool, labels: &[(&str, &str)]) -> Node {
        let mut value = serde_json::json!({
            "ID": id,
            "Description": {"Hostname": id},
            "Spec": {"Role": role, "Availability": "active",
                     "Labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()},
        });
        if role == "manager" {
            value["ManagerStatus"] =
                serde_json::json!({"Reachability": if reachable {"reachable"} else {"unreachable"}});
        }
        serde_json::from_value(value).unwrap()
    }

    fn spec(yaml: &str) -> SwarmNodeSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn only_the_labels_named_are_managed_and_a_key_left_out_is_removed() {
        let w = node("w1", "worker", false, &[("hand", "1"), ("old", "x")]);
        let plan = plan(
            &spec("labels: {zone: b}"),
            &["old".into()],
            &w,
            std::slice::from_ref(&w),
            &HashMap::new(),
        );
        let (written, changes) = plan.write.unwrap();
        let labels = written.labels.unwrap();
        assert_eq!(labels.get("zone").map(String::as_str), Some("b"));
        assert_eq!(
            labels.get("hand").map(String::as_str),
            Some("1"),
            "a label set by hand stays"
        );
        assert!(!labels.contains_key("old"));
        assert_eq!(changes, ["label old removed", "label zone=b"]);
        assert_eq!(plan.managed_labels, ["zone"]);
    }

    #[test]
    fn availability_is_written_only_when_it_differs_and_nothing_is_written_at_rest() {
        let w = node("w1", "worker", false, &[("zone", "b")]);
        let drain = plan(
            &spec("availability: Drain"),
            &[],
            &w,
            std::slice::from_ref(&w),
            &HashMap::new(),
        );
        let (written, changes) = drain.write.unwrap();
        assert_eq!(written.availability, Some(NodeSpecAvailabilityEnum::DRAIN));
        assert_eq!(changes, ["availability drain"]);
        let rest = plan(
            &spec("availability: Active\nlabels: {zone: b}"),
            &["zone".into()],
            &w,
            std::slice::from_ref(&w),
            &HashMap::new(),
        );
        assert_eq!(rest.write, None);
    }

    #[test]
    fn promotions_keep_the_manager_count_odd_over_every_swarmnode() {
        let (m1, w1, w2) = (
            node("m1", "manager", true, &[]),
            node("w1", "worker", false, &[]),
            node("w2", "worker", false, &[]),
        );
        let all = [m1.clone(), w1.clone(), w2.clone()];
        let manager = spec("role: Manager");
        // One worker alone: 2 managers, refused.
        let one = HashMap::from([("w1".to_string(), NodeRole::Manager)]);
        let refused = plan(&manager, &[], &w1, &all, &one);
        assert_eq!(refused.write, None);
        assert_eq!(
            refused.role_refused.as_deref(),
            Some(
                "promoting w1 would leave 2 managers: an even count tolerates no more lost managers than 1 do. Set spec.role on another node's SwarmNode too, to keep the count odd"
            )
        );
        // Both: 3 managers, each promotion goes through.
        let both = HashMap::from([
            ("w1".to_string(), NodeRole::Manager),
            ("w2".to_string(), NodeRole::Manager),
        ]);
        let (written, _) = plan(&manager, &[], &w1, &all, &both).write.unwrap();
        assert_eq!(written.role, Some(NodeSpecRoleEnum::MANAGER));
    }

    #[test]
    fn a_demotion_never_leaves_no_manager_an_even_count_or_no_reachable_majority() {
        let worker = spec("role: Worker");
        let m1 = node("m1", "manager", true, &[]);
        let only = plan(
            &worker,
            &[],
            &m1,
            std::slice::from_ref(&m1),
            &HashMap::from([("m1".to_string(), NodeRole::Worker)]),
        );
        assert_eq!(
            only.role_refused.as_deref(),
            Some("demoting m1 would leave the swarm without a manager")
        );
        // 3 -> 2: even.
        let three = [
            m1.clone(),
            node("m2", "manager", true, &[]),
            node("m3", "manager", true, &[]),
        ];
        let asks = HashMap::from([("m1".to_string(), NodeRole::Worker)]);
        assert!(
            plan(&worker, &[], &m1, &three, &asks)
                .role_refused
                .unwrap()
                .contains("2 managers")
        );
        // 5 -> 3 with two of the remaining four unreachable... and m2 demoted too: 3 left, 1 reachable.
        let five = [
            m1.clone(),
            node("m2", "manager", true, &[]),
            node("m3", "manager", false, &[]),
            node("m4", "manager", false, &[]),
            node("m5", "manager", true, &[]),
        ];
        let asks = HashMap::from([
            ("m1".to_string(), NodeRole::Worker),
            ("m2".to_string(), NodeRole::Worker),
        ]);
        assert_eq!(
            plan(&worker, &[], &m1, &five, &asks).role_refused.as_deref(),
            Some(
                "demoting m1 would leave 2 of 4 managers reachable, no majority: the swarm would lose quorum"
            )
        );
        // 5 -> 3, all reachable: goes through.
        let healthy: Vec<Node> = ["m1", "m2", "m3", "m4", "m5"]
            .iter()
            .map(|id| node(id, "manager", true, &[]))
            .collect();
        let (written, _) = plan(&worker, &[], &healthy[0], &healthy, &asks).write.unwrap();
        assert_eq!(written.role, Some(NodeSpecRoleEnum::WORKER));
    }
}
