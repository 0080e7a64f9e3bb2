//! A compiled stack as Kubernetes objects: each child named as `convert` says, labelled with its
//! stack and its name in the file, and owned by the stack (so Kubernetes' garbage collector
//! removes it with the stack).

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{
    NamespaceResourceScope,
    apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference},
};
use kube::Resource;
use serde::{Serialize, de::DeserializeOwned};
use swarm_operator_crds::{SwarmConfig, SwarmNetwork, SwarmSecret, SwarmService, SwarmStack};

use super::convert::{Child, Compiled};

/// Label on every child: the SwarmStack (resource name) it belongs to.
pub const STACK_LABEL: &str = "swarmoperator.io/stack";
/// Label on every child: its name in the stack file.
pub const IN_FILE_LABEL: &str = "swarmoperator.io/stack-object";

/// The children of one stack, by kind. Shared, not copied: those that exist are the watches'
/// own objects, and a plan holds the very objects it was made of (a stack of 1000 services held
/// each of them three times over in one pass before).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Children {
    pub services: Vec<Arc<SwarmService>>,
    pub networks: Vec<Arc<SwarmNetwork>>,
    pub secrets: Vec<Arc<SwarmSecret>>,
    pub configs: Vec<Arc<SwarmConfig>>,
}

impl Children {
    pub fn len(&self) -> usize {
        self.services.len() + self.networks.len() + self.secrets.len() + self.configs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The children `compiled` makes for `stack`, taking its specs rather than copying them (a pass
/// held both, 2 MB at the peak of a stack of 1000). Without a UID (a stack not yet stored, as
/// `swarm-operator convert` has) they carry no owner reference.
pub fn children(stack: &SwarmStack, compiled: Compiled) -> Children {
    let meta = |name: &str, in_file: &str| child_meta(stack, name, in_file);
    fn each<S, K>(list: Vec<Child<S>>, make: impl Fn(Child<S>) -> K) -> Vec<Arc<K>> {
        super::exact(list.into_iter().map(|c| Arc::new(make(c))))
    }
    let Compiled {
        services,
        networks,
        secrets,
        configs,
    } = compiled;
    Children {
        services: each(services, |c| SwarmService {
            metadata: meta(&c.resource, &c.name),
            spec: c.spec,
            status: None,
        }),
        networks: each(networks, |c| SwarmNetwork {
            metadata: meta(&c.resource, &c.name),
            spec: c.spec,
            status: None,
        }),
        secrets: each(secrets, |c| SwarmSecret {
            metadata: meta(&c.resource, &c.name),
            spec: c.spec,
            status: None,
        }),
        configs: each(configs, |c| SwarmConfig {
            metadata: meta(&c.resource, &c.name),
            spec: c.spec,
            status: None,
        }),
    }
}

fn child_meta(stack: &SwarmStack, name: &str, in_file: &str) -> ObjectMeta {
    let owner = stack.metadata.uid.as_ref().map(|uid| OwnerReference {
        api_version: SwarmStack::api_version(&()).into_owned(),
        kind: SwarmStack::kind(&()).into_owned(),
        name: stack.metadata.name.clone().unwrap_or_default(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    });
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: stack.metadata.namespace.clone(),
        labels: Some(BTreeMap::from([
            (
                STACK_LABEL.to_string(),
                stack.metadata.name.clone().unwrap_or_default(),
            ),
            (IN_FILE_LABEL.to_string(), label_value(in_file)),
        ])),
        // A deployed child carries the finalizer of its own controller from its creation: one
        // Kubernetes write (and one pass) less per child than that controller adding it.
        // `convert`'s children, which kubectl applies, leave that to the controller.
        finalizers: owner
            .is_some()
            .then(|| vec![crate::controller::FINALIZER.to_string()]),
        owner_references: owner.map(|o| vec![o]),
        ..Default::default()
    }
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn label_value(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Whether `child` is owned (as controller) by the stack with `uid`.
pub fn owned_by<K: Resource>(child: &K, uid: &str) -> bool {
    child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// What the stack does alike with each kind of child: compare its spec, read its conditions,
/// name it in its status.
pub trait StackChild:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// How the stack's messages call it: `service`, `network`, `secret`, `config`.
    const WHAT: &'static str;
    fn same_spec(&self, other: &Self) -> bool;
    fn conditions(&self) -> &[Condition];
    /// The name the stack's messages give it: the Swarm name where it has a fixed one.
    fn shown_name(&self) -> String;
    /// The children of this kind in `children`.
    fn of(children: &Children) -> &[Arc<Self>];
}

macro_rules! stack_child {
    ($kind:ty, $what:literal, $field:ident, $shown:expr) => {
        impl StackChild for $kind {
            const WHAT: &'static str = $what;
            fn same_spec(&self, other: &Self) -> bool {
                self.spec == other.spec
            }
            fn conditions(&self) -> &[Condition] {
                self.status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or_default()
            }
            fn shown_name(&self) -> String {
                let shown: fn(&Self) -> String = $shown;
                shown(self)
            }
            fn of(children: &Children) -> &[Arc<Self>] {
                &children.$field
            }
        }
    };
}

stack_child!(SwarmService, "service", services, |s| s.service_name());
stack_child!(SwarmNetwork, "network", networks, |n| n.network_name());
stack_child!(SwarmSecret, "secret", secrets, |s| s
    .metadata
    .name
    .clone()
    .unwrap_or_default());
stack_child!(SwarmConfig, "config", configs, |s| s
    .metadata
    .name
    .clone()
    .unwrap_or_default());
