//! SwarmSecret and SwarmConfig: content kept as versioned Swarm secrets and configs, one code path
//! for both. Swarm secrets and configs are immutable, so each content is its own object named
//! `<name>-<short content hash>`; services roll over to a new version at their own pace, and an
//! old version goes once nothing uses it. The pass (see `crate::pass`):
//!
//! ```text
//!  dereference.rs ─► plan.rs ─────────► apply.rs ─────────► status (here)    cleanup.rs on delete
//!  the source's      create the new     create, remove,      current version,  every version once
//!  content           version? remove    events               versions in use   unused
//!                    which old ones? (pure)
//! ```

mod apply;
mod cleanup;
mod dereference;
pub mod plan;

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{controller::Action, reflector::ObjectRef, watcher},
};
use sha2::{Digest, Sha256};
use swarm_operator_crds::{DeletionPolicy, SwarmConfig, SwarmSecret, VersionedStatus, data::DataVersion};

use crate::{
    context::Context,
    controller::{scoped_api, touched, user_changes_controller},
    error::Error,
    pass::{Outcome, Reconciled},
    swarm::DataKind,
};

/// What tells one version of a resource's content from another: the first 10 hex digits of the
/// SHA-256 of the resource's UID and the content. Salted by the UID, the name (in status, events
/// and `docker secret ls`) says nothing about the value: the same password in two namespaces gets
/// two unrelated names, and no one can test a guess against it.
pub fn version_hash(owner_uid: &str, data: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(owner_uid.as_bytes());
    hasher.update([0]);
    hasher.update(data);
    hasher
        .finalize()
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a SwarmSecret and a SwarmConfig differ in; the rest of their pass is shared.
pub trait DataResource:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + swarm_operator_crds::OnCluster
    + 'static
{
    const KIND: DataKind;
    fn versioned_status(&self) -> Option<&VersionedStatus>;
    fn labels(&self) -> &BTreeMap<String, String>;
    fn deletion_policy(&self) -> DeletionPolicy;
    /// The Kubernetes object the content comes from, if any (watched to follow changes).
    fn source_name(&self) -> Option<&str>;
    /// The content, or a message naming what is missing (never the content itself).
    fn content(&self, client: &Client) -> impl Future<Output = Result<dereference::Content, Error>> + Send;
}

impl DataResource for SwarmSecret {
    const KIND: DataKind = DataKind::Secret;
    fn versioned_status(&self) -> Option<&VersionedStatus> {
        self.status.as_ref()
    }
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.spec.labels
    }
    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy.unwrap_or_default()
    }
    fn source_name(&self) -> Option<&str> {
        Some(&self.spec.secret_ref.name)
    }
    async fn content(&self, client: &Client) -> Result<dereference::Content, Error> {
        dereference::secret_content(self, client).await
    }
}

impl DataResource for SwarmConfig {
    const KIND: DataKind = DataKind::Config;
    fn versioned_status(&self) -> Option<&VersionedStatus> {
        self.status.as_ref()
    }
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.spec.labels
    }
    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy.unwrap_or_default()
    }
    fn source_name(&self) -> Option<&str> {
        self.spec.config_map_ref.as_ref().map(|r| r.name.as_str())
    }
    async fn content(&self, client: &Client) -> Result<dereference::Content, Error> {
        dereference::config_content(self, client).await
    }
}

/// What the status reports besides the conditions.
pub struct Facts {
    /// (Swarm name, Swarm ID) of the current version.
    pub current: Option<(String, String)>,
    /// Every version still in the swarm, the current one first.
    pub versions: Vec<DataVersion>,
}

impl Facts {
    fn before<K: DataResource>(obj: &K) -> Self {
        let previous = obj.versioned_status().cloned().unwrap_or_default();
        Facts {
            current: previous.swarm_name.zip(previous.swarm_id),
            versions: previous.versions,
        }
    }
}

/// `Reconciled` for a `DataResource`: the shared pass, named once per kind.
macro_rules! reconciled_data {
    ($kind:ty) => {
        impl Reconciled for $kind {
            type Status = VersionedStatus;
            type Facts = Facts;

            fn swarm_name(&self) -> String {
                self.versioned_status()
                    .and_then(|s| s.swarm_name.clone())
                    .unwrap_or_else(|| self.name_any())
            }
            /// Swarm names of versions are `<name>-<hash>`.
            fn concerns(&self, kind: &str, name: &str) -> bool {
                kind == Self::KIND.word()
                    && name
                        .strip_prefix(&self.name_any())
                        .is_some_and(|rest| rest.starts_with('-'))
            }
            fn status(&self) -> Option<&VersionedStatus> {
                self.status.as_ref()
            }
            fn facts_before(&self) -> Facts {
                Facts::before(self)
            }
            fn status_with(&self, facts: Facts, conditions: Vec<Condition>) -> VersionedStatus {
                let (swarm_name, swarm_id) = facts.current.unzip();
                VersionedStatus {
                    observed_generation: self.metadata.generation,
                    conditions,
                    // Set by the pass (see pass::write_status).
                    swarm: None,
                    swarm_name,
                    swarm_id,
                    versions: facts.versions,
                }
            }
            async fn converge(&self, ctx: &Context) -> Result<Outcome<Facts>, Error> {
                apply::converge(self, ctx).await
            }
            async fn cleanup(&self, ctx: &Context) -> Result<Action, Error> {
                cleanup::cleanup(self, ctx).await
            }
        }
    };
}

reconciled_data!(SwarmSecret);
reconciled_data!(SwarmConfig);

/// Runs the controller of `K` until a shutdown signal; it also watches the Secrets or ConfigMaps
/// the resources read, so a change to a source starts a new version at once.
pub async fn run<K: DataResource + Reconciled>(ctx: Arc<Context>, namespace: Option<&str>, concurrency: u16) {
    let queue = ctx.queues.of::<K>();
    let controller = user_changes_controller(scoped_api::<K>(ctx.client.clone(), namespace), queue.clone());
    let store = controller.store();
    let sources = move |ns: Option<String>, name: String| {
        queue.requested(
            store
                .state()
                .into_iter()
                .filter(|o| o.namespace() == ns && o.source_name() == Some(name.as_str()))
                .map(|o| ObjectRef::from_obj(o.as_ref())),
        )
    };
    // The watches only say which source changed (its resourceVersion moves with its data): their
    // metadata is enough, and the values of every Secret in the namespaces are never held.
    let controller = match K::KIND {
        DataKind::Secret => {
            let secrets = scoped_api::<PartialObjectMeta<Secret>>(ctx.client.clone(), namespace);
            controller.watches_stream(
                touched(secrets, watcher::Config::default()),
                move |s: PartialObjectMeta<Secret>| sources(s.namespace(), s.name_any()),
            )
        }
        DataKind::Config => {
            let maps = scoped_api::<PartialObjectMeta<ConfigMap>>(ctx.client.clone(), namespace);
            controller.watches_stream(
                touched(maps, watcher::Config::default()),
                move |m: PartialObjectMeta<ConfigMap>| sources(m.namespace(), m.name_any()),
            )
        }
    };
    crate::pass::run(controller, ctx, concurrency).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_are_short_stable_and_reveal_nothing() {
        assert_eq!(version_hash("uid-a", b"s3cr3t"), version_hash("uid-a", b"s3cr3t"));
        assert_ne!(
            version_hash("uid-a", b"s3cr3t"),
            version_hash("uid-a", b"s3cr3t2")
        );
        assert_eq!(version_hash("uid-a", b"").len(), 10);
        // The same value in another resource (another namespace, say) says nothing of it.
        assert_ne!(version_hash("uid-a", b"s3cr3t"), version_hash("uid-b", b"s3cr3t"));
        let unsalted: String = Sha256::digest(b"s3cr3t")
            .iter()
            .take(5)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_ne!(version_hash("uid-a", b"s3cr3t"), unsalted);
    }
}
