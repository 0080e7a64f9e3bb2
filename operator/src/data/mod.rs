//! SwarmSecret and SwarmConfig controllers, one code path: read the source, name the content
//! `<name>-<hash>`, create that version when missing, report which versions services still use,
//! and remove old versions once nothing uses them. The value only ever goes into the create request.

mod reconcile;

pub use reconcile::run;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};
use sha2::{Digest, Sha256};
use swarm_operator_crds::{SwarmConfig, SwarmSecret, VersionedStatus, service::DeletionPolicy};

use crate::{error::Error, swarm::DataKind};

/// The first 10 hex digits of the content's SHA-256: enough to tell versions apart.
pub fn content_hash(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A custom resource whose content becomes a versioned Swarm secret or config.
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
    fn read(&self, client: &Client) -> impl Future<Output = Result<Result<Vec<u8>, String>, Error>> + Send;
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
    async fn read(&self, client: &Client) -> Result<Result<Vec<u8>, String>, Error> {
        let r = &self.spec.secret_ref;
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace().unwrap_or_default());
        let secret = api.get_opt(&r.name).await.map_err(|source| Error::Kube {
            operation: "get Secret",
            object: r.name.clone(),
            source,
        })?;
        Ok(match secret {
            None => Err(format!("Secret {} not found", r.name)),
            Some(s) => match s.data.and_then(|mut d| d.remove(&r.key)) {
                Some(value) => Ok(value.0),
                None => Err(format!("Secret {} has no key {}", r.name, r.key)),
            },
        })
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
    async fn read(&self, client: &Client) -> Result<Result<Vec<u8>, String>, Error> {
        let Some(r) = &self.spec.config_map_ref else {
            return Ok(Ok(self.spec.data.clone().unwrap_or_default().into_bytes()));
        };
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &self.namespace().unwrap_or_default());
        let map = api.get_opt(&r.name).await.map_err(|source| Error::Kube {
            operation: "get ConfigMap",
            object: r.name.clone(),
            source,
        })?;
        Ok(match map {
            None => Err(format!("ConfigMap {} not found", r.name)),
            Some(m) => {
                let text = m.data.and_then(|mut d| d.remove(&r.key)).map(String::into_bytes);
                let binary = || m.binary_data.and_then(|mut d| d.remove(&r.key)).map(|b| b.0);
                match text.or_else(binary) {
                    Some(value) => Ok(value),
                    None => Err(format!("ConfigMap {} has no key {}", r.name, r.key)),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_short_stable_and_content_bound() {
        assert_eq!(content_hash(b"s3cr3t"), content_hash(b"s3cr3t"));
        assert_ne!(content_hash(b"s3cr3t"), content_hash(b"s3cr3t2"));
        assert_eq!(content_hash(b"").len(), 10);
    }
}
