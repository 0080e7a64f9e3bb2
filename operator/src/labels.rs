//! Owner labels: how a Swarm object names the resource that made it. Swarm has no owner references,
//! so these labels are what ownership checks, orphan clean-up and event routing go by.

use std::collections::HashMap;

use kube::{Resource, ResourceExt};

pub const OWNER_UID: &str = "swarmoperator.io/owner-uid";
pub const OWNER_NAMESPACE: &str = "swarmoperator.io/owner-namespace";
pub const OWNER_NAME: &str = "swarmoperator.io/owner-name";
/// The labels that say whose a Swarm object is; an object without them is no one's.
pub const OWNER_LABELS: [&str; 3] = [OWNER_UID, OWNER_NAMESPACE, OWNER_NAME];
/// On a Swarm service: the generation of the resource whose spec the operator last wrote to it.
/// Kept apart from status.observedGeneration, which says what the conditions speak of.
pub const GENERATION: &str = "swarmoperator.io/generation";

/// The labels that mark a Swarm object as made for `owner`.
pub fn owner_labels<K: Resource>(owner: &K) -> HashMap<String, String> {
    HashMap::from([
        (OWNER_UID.to_string(), owner.uid().unwrap_or_default()),
        (OWNER_NAMESPACE.to_string(), owner.namespace().unwrap_or_default()),
        (OWNER_NAME.to_string(), owner.name_any()),
    ])
}

/// Who owns a Swarm object, judged by its labels.
#[derive(Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Made for this resource (same UID).
    Ours,
    /// Made by swarm-operator for another resource.
    Other { namespace: String, name: String },
    /// Not made by swarm-operator.
    Unmanaged,
}

impl Ownership {
    /// Who holds the object, in the user's words: `SwarmService shop/web`, or "something other
    /// than swarm-operator".
    pub fn holder(&self, kind: &str) -> String {
        match self {
            Ownership::Other { namespace, name } => format!("{kind} {namespace}/{name}"),
            _ => "something other than swarm-operator".to_string(),
        }
    }
}

pub fn ownership<K: Resource>(owner: &K, labels: Option<&HashMap<String, String>>) -> Ownership {
    let Some(uid) = labels.and_then(|l| l.get(OWNER_UID)) else {
        return Ownership::Unmanaged;
    };
    if owner.uid().as_deref() == Some(uid.as_str()) {
        return Ownership::Ours;
    }
    let get = |k| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
    Ownership::Other {
        namespace: get(OWNER_NAMESPACE),
        name: get(OWNER_NAME),
    }
}
