//! `swarm-operator convert`: a stack file as the SwarmStack that deploys it, or (`--split`) as the
//! children the controller would apply, printed as YAML. The same `compile` as the controller.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use serde::Serialize;
use swarm_operator_crds::{SwarmStack, SwarmStackSpec, data::KeyRef, stack::DataSource};

use super::objects::{StackChild, children};

/// What `convert` is asked.
#[derive(Clone)]
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

/// The SwarmStack for `request` and what the controller's compiler makes of it.
fn compiled(request: &Request) -> Result<(SwarmStack, super::Output), String> {
    let stack = stack(request)?;
    let input = super::Input {
        stack: &stack.stack_name(),
        compose: &stack.spec.compose,
        variables: &stack.spec.variables,
        sources: &stack.spec.sources,
        cluster_ref: None,
    };
    let output = super::compile(&input).map_err(|e| e.to_string())?;
    Ok((stack, output))
}

/// The YAML `convert` prints: the SwarmStack, or with `split` its children, one document each.
pub fn convert(request: &Request) -> Result<String, String> {
    // Compiled either way, so a file that would be refused is refused here too.
    let (stack, output) = compiled(request)?;
    for key in &output.ignored {
        eprintln!("Ignoring unsupported option: {key}");
    }
    for name in &output.unset {
        eprintln!("The {name:?} variable is not set. Defaulting to a blank string.");
    }
    if !request.split {
        return document(&stack);
    }
    let c = children(&stack, output.compiled);
    let mut docs = Vec::new();
    for n in &c.networks {
        docs.push(document(n.as_ref())?);
    }
    for s in &c.secrets {
        docs.push(document(s.as_ref())?);
    }
    for s in &c.configs {
        docs.push(document(s.as_ref())?);
    }
    for s in &c.services {
        docs.push(document(s.as_ref())?);
    }
    Ok(docs.join("---\n"))
}

/// `convert --diff`: what applying the file would change in the cluster, child by child, as a
/// unified diff of each child's spec and labels against the live one (`kubectl diff` style), and
/// the children the stack owns that would be pruned. The text, and whether anything differs.
pub async fn diff(request: &Request, client: kube::Client) -> Result<(String, bool), String> {
    let namespace = request
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let request = Request {
        namespace: Some(namespace.clone()),
        ..request.clone()
    };
    let (stack, output) = compiled(&request)?;
    let desired = children(&stack, output.compiled);
    let mut out = String::new();
    diff_kind(&client, &namespace, &request.name, &desired.networks, &mut out).await?;
    diff_kind(&client, &namespace, &request.name, &desired.secrets, &mut out).await?;
    diff_kind(&client, &namespace, &request.name, &desired.configs, &mut out).await?;
    diff_kind(&client, &namespace, &request.name, &desired.services, &mut out).await?;
    let changed = !out.is_empty();
    Ok((out, changed))
}

/// What the diff compares of a child: its labels and spec, as YAML.
fn comparable<K: StackChild>(obj: &K) -> Result<String, String> {
    let value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    let shown = serde_json::json!({
        "metadata": {"labels": value["metadata"]["labels"]},
        "spec": value["spec"],
    });
    serde_yaml_ng::to_string(&shown).map_err(|e| e.to_string())
}

async fn diff_kind<K: StackChild>(
    client: &kube::Client,
    namespace: &str,
    stack: &str,
    desired: &[std::sync::Arc<K>],
    out: &mut String,
) -> Result<(), String> {
    let api: kube::Api<K> = kube::Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&());
    for d in desired {
        let name = d.meta().name.clone().unwrap_or_default();
        let live = api
            .get_opt(&name)
            .await
            .map_err(|e| format!("get {kind} {name}: {e}"))?;
        let before = live.as_ref().map(comparable).transpose()?.unwrap_or_default();
        let after = comparable(d.as_ref())?;
        if before != after {
            let text = similar::TextDiff::from_lines(&before, &after);
            let live_name = if live.is_some() {
                format!("live/{kind}/{name}")
            } else {
                "/dev/null".into()
            };
            out.push_str(
                &text
                    .unified_diff()
                    .header(&live_name, &format!("file/{kind}/{name}"))
                    .to_string(),
            );
        }
    }
    let selector = format!("{}={stack}", super::objects::STACK_LABEL);
    let owned = api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("list {kind}: {e}"))?;
    for live in owned {
        let name = live.meta().name.clone().unwrap_or_default();
        if !desired
            .iter()
            .any(|d| d.meta().name.as_deref() == Some(name.as_str()))
        {
            out.push_str(&format!("pruned: {kind}/{name} is no longer in the file\n"));
        }
    }
    Ok(())
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
