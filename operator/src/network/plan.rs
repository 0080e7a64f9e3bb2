//! What a SwarmNetwork pass does, and what its deletion does, decided from what the swarm holds.
//! Swarm networks cannot be changed (the CRD refuses changes to their fields), so there is no
//! update: create once, or report the one that exists.

use bollard::models::Network;
use swarm_operator_crds::{DeletionPolicy, SwarmNetwork};

use crate::labels::{Ownership, ownership};

#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Create,
    /// Ours: report it.
    Report,
    /// The name belongs to someone else: touch nothing.
    Conflict(Ownership),
}

pub fn plan(net: &SwarmNetwork, existing: Option<&Network>) -> Plan {
    match existing {
        None => Plan::Create,
        Some(found) => match ownership(net, found.labels.as_ref()) {
            Ownership::Ours => Plan::Report,
            other => Plan::Conflict(other),
        },
    }
}

/// What deleting a SwarmNetwork does to its Swarm network.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Nothing of ours to remove (gone, someone else's, or `deletionPolicy: Orphan`).
    Release,
    /// Remove it once no service uses it; never force.
    RemoveWhenUnused,
}

pub fn deletion(net: &SwarmNetwork, existing: Option<&Network>) -> Deletion {
    let ours = existing.is_some_and(|n| ownership(net, n.labels.as_ref()) == Ownership::Ours);
    if ours && net.spec.deletion_policy.unwrap_or_default() != DeletionPolicy::Orphan {
        Deletion::RemoveWhenUnused
    } else {
        Deletion::Release
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::labels::owner_labels;

    fn network(policy: Option<DeletionPolicy>) -> SwarmNetwork {
        let mut net = SwarmNetwork::new("backend", Default::default());
        net.metadata.namespace = Some("shop".into());
        net.metadata.uid = Some("uid-n".into());
        net.spec.deletion_policy = policy;
        net
    }

    fn swarm_network(labels: HashMap<String, String>) -> Network {
        Network {
            id: Some("net-id".into()),
            labels: Some(labels),
            ..Default::default()
        }
    }

    #[test]
    fn create_once_then_report() {
        let net = network(None);
        assert_eq!(plan(&net, None), Plan::Create);
        assert_eq!(plan(&net, Some(&swarm_network(owner_labels(&net)))), Plan::Report);
    }

    #[test]
    fn a_network_of_someone_else_is_a_conflict() {
        let net = network(None);
        assert_eq!(
            plan(&net, Some(&swarm_network(HashMap::new()))),
            Plan::Conflict(Ownership::Unmanaged)
        );
        let mut other = network(None);
        other.metadata.uid = Some("uid-other".into());
        other.metadata.namespace = Some("team-b".into());
        assert_eq!(
            plan(&net, Some(&swarm_network(owner_labels(&other)))),
            Plan::Conflict(Ownership::Other {
                namespace: "team-b".into(),
                name: "backend".into()
            })
        );
    }

    #[test]
    fn deletion_removes_only_what_is_ours() {
        let net = network(None);
        let ours = swarm_network(owner_labels(&net));
        assert_eq!(deletion(&net, Some(&ours)), Deletion::RemoveWhenUnused);
        assert_eq!(deletion(&net, None), Deletion::Release);
        assert_eq!(
            deletion(&net, Some(&swarm_network(HashMap::new()))),
            Deletion::Release
        );
        let orphan = network(Some(DeletionPolicy::Orphan));
        assert_eq!(
            deletion(&orphan, Some(&swarm_network(owner_labels(&orphan)))),
            Deletion::Release
        );
    }
}
