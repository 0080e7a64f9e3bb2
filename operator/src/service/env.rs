//! The containers' environment: plain values, and values read from Secrets and ConfigMaps
//! (`env[].valueFrom`, `envFrom`). Reading them is the only network step (`read`); putting the
//! variables together is pure (`assemble`). A value goes nowhere but the ServiceSpec sent to the
//! Engine: what is missing is named, never a value, and `Debug` shows names and versions only.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};
use swarm_operator_crds::{
    SwarmService,
    service::{EnvFromSource, EnvVar},
};

use super::dereference::get;
use crate::error::Error;

/// Which kind of object a variable is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceKind {
    Secret,
    ConfigMap,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceKind::Secret => "Secret",
            SourceKind::ConfigMap => "ConfigMap",
        })
    }
}

/// One Secret or ConfigMap as read: its resourceVersion and its keys' bytes.
#[derive(Clone, Default, PartialEq)]
pub struct SourceData {
    pub version: String,
    pub keys: BTreeMap<String, Vec<u8>>,
}

/// The Secrets and ConfigMaps the spec reads variables from; None where the object is absent.
#[derive(Clone, Default, PartialEq)]
pub struct Sources(pub BTreeMap<(SourceKind, String), Option<SourceData>>);

impl std::fmt::Debug for Sources {
    /// Versions only: the keys' bytes are values of secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.versions()).finish()
    }
}

impl Sources {
    /// `Secret/<name>@<resourceVersion>` of each object found, sorted: what status records.
    pub fn versions(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|((kind, name), data)| data.as_ref().map(|d| format!("{kind}/{name}@{}", d.version)))
            .collect()
    }
}

/// Why the environment cannot be put together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Objects or keys that do not exist (yet), in the user's words; each names the variable.
    Missing(Vec<String>),
    /// A value that cannot be a variable's (not UTF-8 text): the spec or the source must change.
    /// `field` is the spec's field below `spec.`.
    Invalid { field: String, message: String },
}

/// The variables of `env` and `env_from` as Docker takes them (`NAME=value`): every `envFrom`
/// source's keys first (a later source wins a name over an earlier one), then `env` in its
/// order, which wins a name over `envFrom`, as in a Pod.
pub fn assemble(
    env: &[EnvVar],
    env_from: &[EnvFromSource],
    sources: &Sources,
) -> Result<Vec<String>, Problem> {
    let mut missing = Vec::new();
    let mut from_sources: BTreeMap<String, String> = BTreeMap::new();
    for (i, source) in env_from.iter().enumerate() {
        let Some((kind, reference)) = from_source(source) else {
            continue;
        };
        match sources.0.get(&(kind, reference.name.clone())).cloned().flatten() {
            None if reference.optional => {}
            None => missing.push(format!("{kind} {} (spec.envFrom[{i}])", reference.name)),
            Some(data) => {
                let prefix = source.prefix.as_deref().unwrap_or_default();
                for (key, bytes) in &data.keys {
                    // Kubernetes keys hold no `=` and the prefix none either (CRD): a valid name.
                    let name = format!("{prefix}{key}");
                    let value = text(bytes, kind, &reference.name, key, format!("envFrom[{i}]"))?;
                    from_sources.insert(name, value);
                }
            }
        }
    }
    let mut vars = Vec::new();
    for var in env {
        let value = match var.value_from.as_ref().and_then(|f| key_source(f)) {
            None => var.value.clone().unwrap_or_default(),
            Some((kind, selector)) => {
                let data = sources.0.get(&(kind, selector.name.clone())).cloned().flatten();
                let field = format!("env[{}]", var.name);
                match data.as_ref().map(|d| d.keys.get(&selector.key)) {
                    Some(Some(bytes)) => text(bytes, kind, &selector.name, &selector.key, field)?,
                    _ if selector.optional => continue,
                    None => {
                        missing.push(format!("{kind} {} (spec.{field})", selector.name));
                        continue;
                    }
                    Some(None) => {
                        missing.push(format!(
                            "key {} of {kind} {} (spec.{field})",
                            selector.key, selector.name
                        ));
                        continue;
                    }
                }
            }
        };
        from_sources.remove(&var.name);
        vars.push((var.name.clone(), value));
    }
    if !missing.is_empty() {
        return Err(Problem::Missing(missing));
    }
    Ok(from_sources
        .into_iter()
        .chain(vars)
        .map(|(name, value)| format!("{name}={value}"))
        .collect())
}

/// Each object the spec reads variables from, once.
pub fn referenced(env: &[EnvVar], env_from: &[EnvFromSource]) -> Vec<(SourceKind, String)> {
    let mut out: Vec<(SourceKind, String)> = env_from
        .iter()
        .filter_map(|s| from_source(s).map(|(kind, r)| (kind, r.name.clone())))
        .chain(env.iter().filter_map(|v| {
            let (kind, selector) = key_source(v.value_from.as_ref()?)?;
            Some((kind, selector.name.clone()))
        }))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the spec reads a variable from the `kind` object `name`.
pub fn reads(svc: &SwarmService, kind: SourceKind, name: &str) -> bool {
    referenced(&svc.spec.env, &svc.spec.env_from)
        .iter()
        .any(|(k, n)| *k == kind && n == name)
}

fn from_source(source: &EnvFromSource) -> Option<(SourceKind, &swarm_operator_crds::service::SourceRef)> {
    match (&source.secret_ref, &source.config_map_ref) {
        (Some(r), _) => Some((SourceKind::Secret, r)),
        (None, Some(r)) => Some((SourceKind::ConfigMap, r)),
        (None, None) => None,
    }
}

fn key_source(
    from: &swarm_operator_crds::service::EnvVarSource,
) -> Option<(SourceKind, &swarm_operator_crds::service::KeySelector)> {
    match (&from.secret_key_ref, &from.config_map_key_ref) {
        (Some(s), _) => Some((SourceKind::Secret, s)),
        (None, Some(s)) => Some((SourceKind::ConfigMap, s)),
        (None, None) => None,
    }
}

fn text(bytes: &[u8], kind: SourceKind, name: &str, key: &str, field: String) -> Result<String, Problem> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Problem::Invalid {
        field,
        message: format!(
            "key {key} of {kind} {name} is not UTF-8 text, which an environment variable must be"
        ),
    })
}

/// Reads every Secret and ConfigMap the spec of `svc` names for its environment.
pub async fn read(svc: &SwarmService, client: &Client) -> Result<Sources, Error> {
    let ns = svc.namespace().unwrap_or_default();
    let mut sources = Sources::default();
    for (kind, name) in referenced(&svc.spec.env, &svc.spec.env_from) {
        let found = match kind {
            SourceKind::Secret => {
                let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
                get(&api, "get Secret", &name).await?.map(|s| SourceData {
                    version: s.resource_version().unwrap_or_default(),
                    keys: s
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect(),
                })
            }
            SourceKind::ConfigMap => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
                get(&api, "get ConfigMap", &name).await?.map(|m| SourceData {
                    version: m.resource_version().unwrap_or_default(),
                    keys: m
                        .binary_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .chain(
                            m.data
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(k, v)| (k, v.into_bytes())),
                        )
                        .collect(),
                })
            }
        };
        sources.0.insert((kind, name), found);
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> swarm_operator_crds::SwarmServiceSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn source(version: &str, keys: &[(&str, &str)]) -> Option<SourceData> {
        Some(SourceData {
            version: version.into(),
            keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        })
    }

    fn sources(entries: Vec<(SourceKind, &str, Option<SourceData>)>) -> Sources {
        Sources(
            entries
                .into_iter()
                .map(|(k, n, d)| ((k, n.to_string()), d))
                .collect(),
        )
    }

    #[test]
    fn plain_values_keep_their_order_and_empty_means_empty() {
        let s = spec("image: a\nenv: [{name: B, value: '2'}, {name: A}]");
        assert_eq!(
            assemble(&s.env, &s.env_from, &Sources::default()),
            Ok(vec!["B=2".into(), "A=".into()])
        );
    }

    #[test]
    fn values_from_keys_and_whole_sources_with_env_winning_and_later_sources_winning() {
        let s = spec(
            "image: a
env:
- {name: TLS_CERT, valueFrom: {secretKeyRef: {name: tls, key: cert}}}
- {name: MODE, valueFrom: {configMapKeyRef: {name: site, key: mode}}}
- {name: LEVEL, value: debug}
envFrom:
- configMapRef: {name: site}
- {prefix: DB_, secretRef: {name: db}}
- configMapRef: {name: override}",
        );
        let found = sources(vec![
            (SourceKind::Secret, "tls", source("7", &[("cert", "PEM")])),
            (SourceKind::Secret, "db", source("8", &[("user", "app")])),
            (
                SourceKind::ConfigMap,
                "site",
                source("9", &[("mode", "prod"), ("LEVEL", "info"), ("COLOR", "red")]),
            ),
            (
                SourceKind::ConfigMap,
                "override",
                source("10", &[("COLOR", "blue")]),
            ),
        ]);
        assert_eq!(
            assemble(&s.env, &s.env_from, &found),
            Ok(vec![
                "COLOR=blue".into(),
                "DB_user=app".into(),
                "mode=prod".into(),
                "TLS_CERT=PEM".into(),
                "MODE=prod".into(),
                "LEVEL=debug".into(),
            ])
        );
        assert_eq!(
            found.versions(),
            [
                "Secret/db@8",
                "Secret/tls@7",
                "ConfigMap/override@10",
                "ConfigMap/site@9"
            ]
        );
        assert!(!format!("{found:?}").contains("PEM"), "{found:?}");
    }

    #[test]
    fn missing_objects_and_keys_are_named_with_the_variable_unless_optional() {
        let s = spec(
            "image: a
env:
- {name: PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
- {name: TOKEN, valueFrom: {secretKeyRef: {name: api, key: token}}}
- {name: MAYBE, valueFrom: {secretKeyRef: {name: api, key: token, optional: true}}}
envFrom:
- secretRef: {name: gone}
- secretRef: {name: gone-too, optional: true}",
        );
        let found = sources(vec![
            (SourceKind::Secret, "db", source("1", &[("user", "app")])),
            (SourceKind::Secret, "api", None),
            (SourceKind::Secret, "gone", None),
            (SourceKind::Secret, "gone-too", None),
        ]);
        assert_eq!(
            assemble(&s.env, &s.env_from, &found),
            Err(Problem::Missing(vec![
                "Secret gone (spec.envFrom[0])".into(),
                "key password of Secret db (spec.env[PASSWORD])".into(),
                "Secret api (spec.env[TOKEN])".into(),
            ]))
        );
        let optional = spec(
            "image: a\nenv: [{name: MAYBE, valueFrom: {secretKeyRef: {name: api, key: t, optional: true}}}]",
        );
        assert_eq!(assemble(&optional.env, &optional.env_from, &found), Ok(vec![]));
    }

    #[test]
    fn a_value_that_is_not_text_is_refused_without_showing_it() {
        let s = spec("image: a\nenv: [{name: K, valueFrom: {secretKeyRef: {name: bin, key: k}}}]");
        let mut data = source("1", &[]).unwrap();
        data.keys.insert("k".into(), vec![0xff, 0xfe, b's']);
        let found = sources(vec![(SourceKind::Secret, "bin", Some(data))]);
        assert_eq!(
            assemble(&s.env, &s.env_from, &found),
            Err(Problem::Invalid {
                field: "env[K]".into(),
                message: "key k of Secret bin is not UTF-8 text, which an environment variable must be"
                    .into()
            })
        );
    }

    #[test]
    fn each_source_is_read_once() {
        let s = spec(
            "image: a
env:
- {name: A, valueFrom: {secretKeyRef: {name: db, key: a}}}
- {name: B, valueFrom: {secretKeyRef: {name: db, key: b}}}
envFrom: [{secretRef: {name: db}}, {configMapRef: {name: db}}]",
        );
        assert_eq!(
            referenced(&s.env, &s.env_from),
            [
                (SourceKind::Secret, "db".to_string()),
                (SourceKind::ConfigMap, "db".to_string())
            ]
        );
    }
}
