//! Which nodes a service's tasks may run on, as Swarm's scheduler judges it: Ready and Active
//! nodes whose attributes match every placement constraint and, when the spec names platforms,
//! one of them (pure). A Global service wants one task on each.

use bollard::models::TaskSpecPlacement;

use crate::swarm::NodeFacts;

/// The nodes that take tasks of a service placed by `placement`.
pub fn eligible<'a>(nodes: &'a [NodeFacts], placement: Option<&TaskSpecPlacement>) -> Vec<&'a NodeFacts> {
    let constraints = placement
        .and_then(|p| p.constraints.as_deref())
        .unwrap_or_default();
    let platforms = placement.and_then(|p| p.platforms.as_deref()).unwrap_or_default();
    nodes
        .iter()
        .filter(|n| n.state == "ready" && n.availability == "active")
        .filter(|n| constraints.iter().all(|c| satisfies(n, c)))
        .filter(|n| {
            platforms.is_empty()
                || platforms.iter().any(|p| {
                    let os = p.os.as_deref().unwrap_or_default();
                    let arch = p.architecture.as_deref().unwrap_or_default();
                    (os.is_empty() || os.eq_ignore_ascii_case(&n.os))
                        && (arch.is_empty() || same_arch(arch, &n.arch))
                })
        })
        .collect()
}

/// Whether `node` satisfies `constraint` (`key == value` or `key != value`). Values compare
/// without regard to case, as Swarm does; a label the node lacks has the empty value. A constraint
/// that does not parse matches nothing (the swarm refuses it anyway).
fn satisfies(node: &NodeFacts, constraint: &str) -> bool {
    let (key, equal, value) = match (constraint.split_once("=="), constraint.split_once("!=")) {
        (Some((k, v)), None) => (k, true, v),
        (None, Some((k, v))) => (k, false, v),
        _ => return false,
    };
    let (key, value) = (key.trim(), value.trim());
    let label = |labels: &std::collections::HashMap<String, String>, name: &str| {
        labels.get(name).cloned().unwrap_or_default()
    };
    let actual = match key {
        "node.id" => node.id.clone(),
        "node.hostname" => node.hostname.clone(),
        "node.role" => node.role.clone(),
        "node.platform.os" => node.os.clone(),
        "node.platform.arch" => node.arch.clone(),
        k => match (k.strip_prefix("node.labels."), k.strip_prefix("engine.labels.")) {
            (Some(name), _) => label(&node.labels, name),
            (_, Some(name)) => label(&node.engine_labels, name),
            _ => return false,
        },
    };
    actual.eq_ignore_ascii_case(value) == equal
}

/// amd64 and x86_64 name one architecture, as do arm64 and aarch64.
fn same_arch(a: &str, b: &str) -> bool {
    let canonical = |s: &str| match s.to_ascii_lowercase().as_str() {
        "x86_64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        other => other.to_string(),
    };
    canonical(a) == canonical(b)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::Platform;

    use super::*;

    fn node(hostname: &str, role: &str, availability: &str, state: &str, zone: Option<&str>) -> NodeFacts {
        NodeFacts {
            id: format!("id-{hostname}"),
            hostname: hostname.into(),
            role: role.into(),
            availability: availability.into(),
            state: state.into(),
            labels: zone
                .map(|z| HashMap::from([("zone".to_string(), z.to_string())]))
                .unwrap_or_default(),
            engine_labels: HashMap::new(),
            os: "linux".into(),
            arch: "x86_64".into(),
        }
    }

    fn placed(constraints: &[&str]) -> TaskSpecPlacement {
        TaskSpecPlacement {
            constraints: Some(constraints.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        }
    }

    fn names(nodes: Vec<&NodeFacts>) -> Vec<&str> {
        nodes.iter().map(|n| n.hostname.as_str()).collect()
    }

    fn swarm() -> Vec<NodeFacts> {
        vec![
            node("m1", "manager", "active", "ready", Some("east")),
            node("w1", "worker", "active", "ready", Some("west")),
            node("w2", "worker", "drain", "ready", Some("east")),
            node("w3", "worker", "active", "down", None),
            node("w4", "worker", "pause", "ready", None),
        ]
    }

    #[test]
    fn only_ready_active_nodes_take_tasks() {
        assert_eq!(names(eligible(&swarm(), None)), ["m1", "w1"]);
    }

    #[test]
    fn constraints_select_by_role_hostname_and_labels() {
        let nodes = swarm();
        assert_eq!(
            names(eligible(&nodes, Some(&placed(&["node.role == manager"])))),
            ["m1"]
        );
        assert_eq!(
            names(eligible(&nodes, Some(&placed(&["node.role!=manager"])))),
            ["w1"]
        );
        assert_eq!(
            names(eligible(&nodes, Some(&placed(&["node.labels.zone == WEST"])))),
            ["w1"]
        );
        assert_eq!(
            names(eligible(
                &nodes,
                Some(&placed(&["node.hostname == w1", "node.role == worker"]))
            )),
            ["w1"]
        );
        assert_eq!(
            names(eligible(&nodes, Some(&placed(&["node.labels.rack == a"])))),
            Vec::<&str>::new()
        );
        assert_eq!(
            names(eligible(&nodes, Some(&placed(&["node.labels.rack != a"])))),
            ["m1", "w1"]
        );
        assert_eq!(
            names(eligible(&nodes, Some(&placed(&["node.role=manager"])))),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn platforms_match_os_and_architecture_by_either_name() {
        let nodes = swarm();
        let on = |os: &str, arch: &str| TaskSpecPlacement {
            platforms: Some(vec![Platform {
                os: Some(os.into()),
                architecture: Some(arch.into()),
            }]),
            ..Default::default()
        };
        assert_eq!(names(eligible(&nodes, Some(&on("linux", "amd64")))), ["m1", "w1"]);
        assert_eq!(
            names(eligible(&nodes, Some(&on("linux", "arm64")))),
            Vec::<&str>::new()
        );
    }
}
