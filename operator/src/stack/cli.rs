//! `swarm-operator convert`: a stack file as the SwarmStack that deploys it, or (`--split`) as the
//! children the controller would apply, printed as YAML. The same `compile` as the controller.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use serde::Serialize;
use swarm_operator_crds::{SwarmStack, SwarmStackSpec, data::KeyRef, stack::DataSource};

use super::objects::children;

/// What `convert` is asked.
pub struct Request {
    pub compose: String,
    pub name: String,
    pub namespace: Option<String>,
    /// `KEY=value` pairs.
    pub set: Vec<String>,
    /// `NAME=secret:<secret>/<key>` or `NAME=configmap:<configmap>/<key>`.
    pub sources: Vec<String>,
    pub split: bool,
}

/// The SwarmStack for `request`, as it would be applied.
pub fn stack(request: &Request) -> Result<SwarmStack, String> {
    let mut variables = BTreeMap::new();
    for pair in &request.set {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--set {pair:?}: expected KEY=value"))?;
        variables.insert(k.to_string(), v.to_string());
    }
    let mut sources = BTreeMap::new();
    for pair in &request.sources {
        let bad =
            || format!("--source {pair:?}: expected NAME=secret:<name>/<key> or NAME=configmap:<name>/<key>");
        let (name, what) = pair.split_once('=').ok_or_else(bad)?;
        let (kind, reference) = what.split_once(':').ok_or_else(bad)?;
        let (object, key) = reference.split_once('/').ok_or_else(bad)?;
        let key = KeyRef {
            name: object.into(),
            key: key.into(),
        };
        let source = match kind {
            "secret" => DataSource {
                secret: Some(key),
                config_map: None,
            },
            "configmap" => DataSource {
                secret: None,
                config_map: Some(key),
            },
            _ => return Err(bad()),
        };
        sources.insert(name.to_string(), source);
    }
    Ok(SwarmStack {
        metadata: ObjectMeta {
            name: Some(request.name.clone()),
            namespace: request.namespace.clone(),
            ..Default::default()
        },
        spec: SwarmStackSpec {
            compose: request.compose.clone(),
            variables,
            sources,
            ..Default::default()
        },
        status: None,
    })
}

/// The YAML `convert` prints: the SwarmStack, or with `split` its children, one document each.
pub fn convert(request: &Request) -> Result<String, String> {
    let stack = stack(request)?;
    let input = super::Input {
        stack: &stack.stack_name(),
        compose: &stack.spec.compose,
        variables: &stack.spec.variables,
        sources: &stack.spec.sources,
        cluster_ref: None,
    };
    // Compiled either way, so a file that would be refused is refused here too.
    let output = super::compile(&input).map_err(|e| e.to_string())?;
    for key in &output.ignored {
        eprintln!("Ignoring unsupported option: {key}");
    }
    for name in &output.unset {
        eprintln!("The {name:?} variable is not set. Defaulting to a blank string.");
    }
    if !request.split {
        return document(&stack);
    }
    let c = children(&stack, &output.compiled);
    let mut docs = Vec::new();
    for n in &c.networks {
        docs.push(document(n)?);
    }
    for s in &c.secrets {
        docs.push(document(s)?);
    }
    for s in &c.configs {
        docs.push(document(s)?);
    }
    for s in &c.services {
        docs.push(document(s)?);
    }
    Ok(docs.join("---\n"))
}

/// One object as YAML with its apiVersion and kind first.
fn document<K: kube::Resource<DynamicType = ()> + Serialize>(obj: &K) -> Result<String, String> {
    let mut value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), K::api_version(&()).into());
    out.insert("kind".into(), K::kind(&()).into());
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        out.extend(std::mem::take(map));
    }
    serde_yaml_ng::to_string(&out).map_err(|e| e.to_string())
}
