//! SwarmStack: a stack file as `docker stack deploy` takes it, compiled into the kinds that exist
//! and owned by the stack. The pass (see `controller`):
//!
//! ```text
//!  dereference      compile (pure)                      plan (pure)      apply          status
//!  valuesFrom  ─►   keys ─► interpolate ─► compose ─►   children to  ─►  server-side ─► one line
//!  ConfigMaps       (schema) (interpolate)  (convert)   apply / prune    apply, delete   per service
//! ```
//!
//! `swarm-operator convert` runs the same `compile`, so what it prints is what the controller applies.

pub mod cli;
pub mod compose;
pub mod controller;
pub mod convert;
pub mod interpolate;
pub mod objects;
pub mod schema;
pub mod units;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_yaml_ng::Value;
use swarm_operator_crds::{ClusterRef, stack::DataSource};

pub use convert::{Child, Compiled};
use schema::Refusal;

/// `items` in a vector of their own number. `collect()` over a vector's `into_iter()` reuses its
/// buffer in place, however much larger than the items it is: a stack's children kept the
/// compiled list's whole buffer (780 bytes a service) as a vector of pointers, and each service's
/// network attachments room for four. What a pass or a store keeps is made with this.
pub(crate) fn exact<T>(items: impl ExactSizeIterator<Item = T>) -> Vec<T> {
    let mut made = Vec::with_capacity(items.len());
    made.extend(items);
    made
}

/// Why a stack file cannot be deployed; the message names the key (and line) at fault.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum StackError {
    #[error("the stack file is not YAML: {0}")]
    Yaml(String),
    #[error("the stack file must be a mapping with `services`")]
    NotAMapping,
    #[error("{}", refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Refused { refused: Vec<Refusal> },
    #[error(transparent)]
    Interpolation(#[from] interpolate::InterpolationError),
    #[error("{path}{}: {message}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Invalid {
        path: String,
        line: Option<usize>,
        message: String,
    },
}

/// A stack file and what it is compiled with.
pub struct Input<'a> {
    pub stack: &'a str,
    pub compose: &'a str,
    pub variables: &'a BTreeMap<String, String>,
    pub sources: &'a BTreeMap<String, DataSource>,
    pub cluster_ref: Option<&'a ClusterRef>,
}

/// A compiled stack and what the CLI would have warned of.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub compiled: Compiled,
    /// Keys ignored, as `docker stack deploy` ignores them.
    pub ignored: Vec<String>,
    /// Variables used without a value.
    pub unset: Vec<String>,
}

/// Compiles a stack file: its keys checked, its variables substituted, its objects converted.
pub fn compile(input: &Input) -> Result<Output, StackError> {
    let raw: Value = serde_yaml_ng::from_str(input.compose).map_err(|e| StackError::Yaml(e.to_string()))?;
    if !matches!(raw, Value::Mapping(_)) {
        return Err(StackError::NotAMapping);
    }
    let keys = schema::check_keys(&raw, input.compose);
    if !keys.refused.is_empty() {
        return Err(StackError::Refused {
            refused: keys.refused,
        });
    }
    let interpolated = interpolate::interpolate(&raw, input.variables)?;
    drop(raw);
    // The file's lines are read only for a message that names one.
    let at = |path: String, message: String| StackError::Invalid {
        line: schema::key_lines(input.compose).get(&path).copied(),
        path,
        message,
    };
    let mut file: compose::ComposeFile =
        serde_yaml_ng::from_value(interpolated.document).map_err(|e| at(String::new(), e.to_string()))?;
    if file.services.is_empty() {
        return Err(at("services".into(), "the stack has no services".into()));
    }
    // Each service's YAML taken, not copied, into its typed form as the conversion reaches it
    // (the conversion reads only the typed one, and one at a time).
    let services = std::mem::take(&mut file.services)
        .into_iter()
        .map(|(name, value)| {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(convert::Invalid {
                    path: format!("services.{name}"),
                    message: "a service name has letters, digits, '.', '_' and '-' only".into(),
                });
            }
            match serde_yaml_ng::from_value::<compose::Service>(value) {
                Ok(service) => Ok((name, service)),
                Err(e) => Err(convert::Invalid {
                    path: format!("services.{name}"),
                    message: e.to_string(),
                }),
            }
        });
    let scope = convert::Scope {
        stack: input.stack,
        cluster_ref: input.cluster_ref,
        variables: input.variables,
        sources: input.sources,
    };
    let compiled = convert::compile(&scope, &file, services).map_err(|e| at(e.path, e.message))?;
    Ok(Output {
        compiled,
        ignored: keys.ignored,
        unset: interpolated.unset.into_iter().collect(),
    })
}
