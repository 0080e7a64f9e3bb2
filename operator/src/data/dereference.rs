//! Reads the content of a SwarmSecret or SwarmConfig from its source: a key of a Kubernetes
//! Secret or ConfigMap in the same namespace, or inline data. The value goes nowhere but the
//! Engine's create request; what is missing is named, never the value.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};
use swarm_operator_crds::{SwarmConfig, SwarmSecret};

use crate::error::Error;

/// The content, or a message naming what is missing.
pub type Content = Result<Vec<u8>, String>;

pub async fn secret_content(obj: &SwarmSecret, client: &Client) -> Result<Content, Error> {
    let r = &obj.spec.secret_ref;
    let api: Api<Secret> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
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

pub async fn config_content(obj: &SwarmConfig, client: &Client) -> Result<Content, Error> {
    let Some(r) = &obj.spec.config_map_ref else {
        return Ok(Ok(obj.spec.data.clone().unwrap_or_default().into_bytes()));
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
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
