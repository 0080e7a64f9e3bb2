//! The stack file as data, after interpolation: the subset of docker/cli's `cli/compose/types`
//! that `docker stack deploy` converts, with each key's short and long forms (a string or a list,
//! a list or a mapping) read the way its loader reads them. Unknown keys were refused before
//! (see `schema`), so nothing here drops a key silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, de::Error as _};
use serde_yaml_ng::Value;

#[derive(Deserialize, Debug, Default)]
pub struct ComposeFile {
    #[serde(default)]
    pub services: BTreeMap<String, Value>,
    #[serde(default, deserialize_with = "nullable_map")]
    pub networks: BTreeMap<String, Network>,
    #[serde(default, deserialize_with = "nullable_map")]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(default, deserialize_with = "nullable_map")]
    pub secrets: BTreeMap<String, FileObject>,
    #[serde(default, deserialize_with = "nullable_map")]
    pub configs: BTreeMap<String, FileObject>,
}

/// One service; read on its own so an error names the service.
#[derive(Deserialize, Debug, Default)]
pub struct Service {
    pub image: Option<String>,
    #[serde(default, deserialize_with = "shell_command")]
    pub command: Option<Vec<String>>,
    #[serde(default, deserialize_with = "shell_command")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, deserialize_with = "env_mapping")]
    pub environment: BTreeMap<String, Option<String>>,
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "ports")]
    pub ports: Vec<Port>,
    #[serde(default, deserialize_with = "service_networks")]
    pub networks: BTreeMap<String, ServiceNetwork>,
    #[serde(default, deserialize_with = "service_volumes")]
    pub volumes: Vec<ServiceVolume>,
    #[serde(default, deserialize_with = "file_refs")]
    pub secrets: Vec<FileRef>,
    #[serde(default, deserialize_with = "file_refs")]
    pub configs: Vec<FileRef>,
    pub healthcheck: Option<Healthcheck>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub stop_grace_period: Option<String>,
    pub stop_signal: Option<String>,
    pub init: Option<bool>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default, deserialize_with = "labels")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable_map")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(default, deserialize_with = "string_list")]
    pub dns: Vec<String>,
    #[serde(default, deserialize_with = "string_list")]
    pub dns_search: Vec<String>,
    #[serde(default, deserialize_with = "hosts")]
    pub extra_hosts: Vec<(String, String)>,
    pub logging: Option<Logging>,
    pub restart: Option<String>,
    #[serde(default)]
    pub deploy: Deploy,
}

#[derive(Deserialize, Debug, Default)]
pub struct Deploy {
    pub mode: Option<String>,
    pub replicas: Option<u64>,
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default)]
    pub resources: Resources,
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default)]
    pub placement: Placement,
    pub endpoint_mode: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
pub struct UpdateConfig {
    pub parallelism: Option<u64>,
    pub delay: Option<String>,
    pub failure_action: Option<String>,
    pub monitor: Option<String>,
    pub max_failure_ratio: Option<f64>,
    pub order: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
pub struct Resources {
    pub limits: Option<Resource>,
    pub reservations: Option<Resource>,
}

#[derive(Deserialize, Debug, Default)]
pub struct Resource {
    #[serde(default, deserialize_with = "scalar_text")]
    pub cpus: Option<String>,
    #[serde(default, deserialize_with = "scalar_text")]
    pub memory: Option<String>,
    pub pids: Option<i64>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RestartPolicy {
    pub condition: Option<String>,
    pub delay: Option<String>,
    pub max_attempts: Option<u64>,
    pub window: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
pub struct Placement {
    #[serde(default)]
    pub constraints: Vec<String>,
    #[serde(default)]
    pub preferences: Vec<Preference>,
    pub max_replicas_per_node: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
pub struct Preference {
    pub spread: String,
}

#[derive(Deserialize, Debug, Default)]
pub struct Healthcheck {
    #[serde(default, deserialize_with = "health_test")]
    pub test: Vec<String>,
    pub timeout: Option<String>,
    pub interval: Option<String>,
    pub retries: Option<u64>,
    pub start_period: Option<String>,
    #[serde(default)]
    pub disable: bool,
}

#[derive(Deserialize, Debug, Default)]
pub struct Logging {
    pub driver: Option<String>,
    #[serde(default, deserialize_with = "labels")]
    pub options: BTreeMap<String, String>,
}

/// `nofile: 1024` or `nofile: {soft: 1024, hard: 2048}`.
#[derive(Debug, Default, PartialEq)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Single(i64),
            Pair { soft: i64, hard: i64 },
        }
        match Form::deserialize(d)? {
            Form::Single(n) => Ok(Ulimit { soft: n, hard: n }),
            Form::Pair { soft, hard } => Ok(Ulimit { soft, hard }),
        }
    }
}

#[derive(Debug, Default, PartialEq, Clone)]
pub struct Port {
    pub mode: Option<String>,
    pub target: u32,
    pub published: Option<u32>,
    pub protocol: Option<String>,
}

#[derive(Deserialize, Debug, Default, PartialEq, Clone)]
pub struct ServiceNetwork {
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default, deserialize_with = "labels")]
    pub driver_opts: BTreeMap<String, String>,
}

/// A volume of a service, short (`data:/var/lib/data:ro`) or long syntax.
#[derive(Deserialize, Debug, Default, PartialEq, Clone)]
pub struct ServiceVolume {
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    pub volume: Option<VolumeOptions>,
    pub tmpfs: Option<TmpfsOptions>,
}

#[derive(Deserialize, Debug, Default, PartialEq, Clone)]
pub struct VolumeOptions {
    #[serde(default)]
    pub nocopy: bool,
}

#[derive(Deserialize, Debug, Default, PartialEq, Clone)]
pub struct TmpfsOptions {
    #[serde(default, deserialize_with = "scalar_text")]
    pub size: Option<String>,
    #[serde(default, deserialize_with = "file_mode")]
    pub mode: Option<u32>,
}

/// A service's secret or config: `- db_password` or `{source, target, uid, gid, mode}`.
#[derive(Deserialize, Debug, Default, PartialEq, Clone)]
pub struct FileRef {
    pub source: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    #[serde(default, deserialize_with = "file_mode")]
    pub mode: Option<u32>,
}

#[derive(Deserialize, Debug, Default, Clone)]
pub struct Network {
    pub name: Option<String>,
    pub driver: Option<String>,
    #[serde(default, deserialize_with = "labels")]
    pub driver_opts: BTreeMap<String, String>,
    pub ipam: Option<Ipam>,
    #[serde(default)]
    pub external: External,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Debug, Default, Clone)]
pub struct Ipam {
    pub driver: Option<String>,
    #[serde(default)]
    pub config: Vec<IpamPool>,
}

#[derive(Deserialize, Debug, Default, Clone)]
pub struct IpamPool {
    pub subnet: Option<String>,
}

#[derive(Deserialize, Debug, Default, Clone)]
pub struct Volume {
    pub name: Option<String>,
    pub driver: Option<String>,
    #[serde(default, deserialize_with = "labels")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default)]
    pub external: External,
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config.
#[derive(Deserialize, Debug, Default, Clone)]
pub struct FileObject {
    pub name: Option<String>,
    pub file: Option<String>,
    #[serde(default)]
    pub external: External,
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
    /// Where the content comes from in the cluster: `{secret: name, key: k}` or
    /// `{configMap: name, key: k}`.
    #[serde(rename = "x-kubernetes")]
    pub kubernetes: Option<KubernetesSource>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesSource {
    pub secret: Option<String>,
    pub config_map: Option<String>,
    pub key: String,
}

/// `external: true`, or the old `external: {name: x}` (which also names it).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct External {
    pub external: bool,
    pub name: Option<String>,
}

impl<'de> Deserialize<'de> for External {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Flag(bool),
            Named { name: Option<String> },
        }
        Ok(match Form::deserialize(d)? {
            Form::Flag(external) => External { external, name: None },
            Form::Named { name } => External { external: true, name },
        })
    }
}

/// A mapping whose values may be empty (`networks: {backend: }`).
fn nullable_map<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let raw: Option<BTreeMap<String, Option<T>>> = Deserialize::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// Text of a scalar (a number or a string): `memory: 200M` and `memory: 209715200` alike.
fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(D::Error::custom(format!(
                "expected a number or a string, got {other:?}"
            )));
        }
    })
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A file mode: a number, or YAML 1.1's octal as the CLI's YAML reads it (`0440` is 288).
fn file_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let text = match scalar_text(d)? {
        None => return Ok(None),
        Some(t) => t,
    };
    let parsed = if let Some(octal) = text.strip_prefix("0o") {
        u32::from_str_radix(octal, 8)
    } else if text.len() > 1 && text.starts_with('0') {
        u32::from_str_radix(&text[1..], 8)
    } else {
        text.parse()
    };
    parsed
        .map(Some)
        .map_err(|_| D::Error::custom(format!("mode: {text:?} is not a file mode such as 0440")))
}

/// `command: echo hi` (split as a shell would) or `command: [echo, hi]`.
fn shell_command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => shell_words::split(&s).map(Some).map_err(D::Error::custom),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| scalar_string(v).ok_or_else(|| D::Error::custom("expected a list of strings")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(D::Error::custom("expected a string or a list of strings")),
    }
}

/// `dns: 8.8.8.8` or a list.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| scalar_string(v).ok_or_else(|| D::Error::custom("expected a list of strings")))
            .collect(),
        Some(v) => scalar_string(&v)
            .map(|s| vec![s])
            .ok_or_else(|| D::Error::custom("expected a string or a list of strings")),
    }
}

/// `["CMD", ...]` as is; a string is run by the shell.
fn health_test<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec!["CMD-SHELL".into(), s]),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| scalar_string(v).ok_or_else(|| D::Error::custom("expected a list of strings")))
            .collect(),
        Some(_) => Err(D::Error::custom("expected a string or a list of strings")),
    }
}

/// A list of `KEY=value` (or `KEY`) or a mapping: `None` values are a name with no value.
fn list_or_mapping<E: serde::de::Error>(v: Option<Value>) -> Result<BTreeMap<String, Option<String>>, E> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(map)) => {
            for (k, v) in map {
                let key = scalar_string(&k).ok_or_else(|| E::custom("expected string keys"))?;
                let value = match v {
                    Value::Null => None,
                    other => Some(
                        scalar_string(&other)
                            .ok_or_else(|| E::custom(format!("{key}: expected a string")))?,
                    ),
                };
                out.insert(key, value);
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let text = scalar_string(&item).ok_or_else(|| E::custom("expected a list of strings"))?;
                match text.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(text, None),
                };
            }
        }
        Some(_) => return Err(E::custom("expected a list or a mapping")),
    }
    Ok(out)
}

fn env_mapping<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    list_or_mapping(Option::<Value>::deserialize(d)?)
}

/// Labels (and the like): a missing value is an empty string.
fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(list_or_mapping::<D::Error>(Option::<Value>::deserialize(d)?)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// `extra_hosts`: `["host:ip"]`, `["host=ip"]` or `{host: ip}`, as (host, ip).
fn hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let mut out = Vec::new();
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(map)) => {
            for (k, v) in map {
                let host = scalar_string(&k).ok_or_else(|| D::Error::custom("expected string keys"))?;
                out.push((host, scalar_string(&v).unwrap_or_default()));
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let text =
                    scalar_string(&item).ok_or_else(|| D::Error::custom("expected a list of strings"))?;
                // The CLI tries `=` first, then `:` (an IPv6 address has colons).
                let (host, ip) = text
                    .split_once('=')
                    .or_else(|| text.split_once(':'))
                    .ok_or_else(|| D::Error::custom(format!("{text:?} is not host:ip")))?;
                out.push((host.to_string(), ip.to_string()));
            }
        }
        Some(_) => return Err(D::Error::custom("expected a list or a mapping")),
    }
    Ok(out
        .into_iter()
        .map(|(h, ip)| {
            let ip = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .map(str::to_string)
                .unwrap_or(ip);
            (h, ip)
        })
        .collect())
}

/// `networks: [a, b]` or `networks: {a: {aliases: [...]}, b: }`.
fn service_networks<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, ServiceNetwork>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| {
                scalar_string(v)
                    .map(|n| (n, ServiceNetwork::default()))
                    .ok_or_else(|| D::Error::custom("expected a list of network names"))
            })
            .collect(),
        Some(v @ Value::Mapping(_)) => {
            let map: BTreeMap<String, Option<ServiceNetwork>> =
                serde_yaml_ng::from_value(v).map_err(D::Error::custom)?;
            Ok(map.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
        }
        Some(_) => Err(D::Error::custom("expected a list or a mapping")),
    }
}

fn file_refs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FileRef>, D::Error> {
    let items: Option<Vec<Value>> = Deserialize::deserialize(d)?;
    items
        .unwrap_or_default()
        .into_iter()
        .map(|v| match v {
            Value::String(source) => Ok(FileRef {
                source,
                ..Default::default()
            }),
            other => serde_yaml_ng::from_value(other).map_err(D::Error::custom),
        })
        .collect()
}

fn service_volumes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ServiceVolume>, D::Error> {
    let items: Option<Vec<Value>> = Deserialize::deserialize(d)?;
    items
        .unwrap_or_default()
        .into_iter()
        .map(|v| match v {
            Value::String(spec) => parse_volume(&spec).map_err(D::Error::custom),
            other => serde_yaml_ng::from_value(other).map_err(D::Error::custom),
        })
        .collect()
}

/// A short volume spec, as docker/cli's `volumespec.Parse`: `target`, `source:target` or
/// `source:target:options` (`ro`, `rw`, `nocopy`); a source that is a path makes a bind mount.
pub fn parse_volume(spec: &str) -> Result<ServiceVolume, String> {
    let mut volume = ServiceVolume::default();
    if spec.is_empty() {
        return Err("invalid empty volume spec".into());
    }
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("invalid spec: {spec}: empty section between colons"));
    }
    match parts.as_slice() {
        [target] => volume.target = target.to_string(),
        [source, target] => {
            volume.source = Some(source.to_string());
            volume.target = target.to_string();
        }
        [source, target, options] => {
            volume.source = Some(source.to_string());
            volume.target = target.to_string();
            for option in options.split(',') {
                match option {
                    "ro" => volume.read_only = true,
                    "rw" => volume.read_only = false,
                    "nocopy" => volume.volume = Some(VolumeOptions { nocopy: true }),
                    // Propagation and SELinux options have no place in a Swarm mount here.
                    other => {
                        return Err(format!(
                            "invalid spec: {spec}: option {other:?} is not supported (ro, rw, nocopy)"
                        ));
                    }
                }
            }
        }
        _ => return Err(format!("invalid spec: {spec}: too many colons")),
    }
    volume.type_ = Some(
        match volume.source.as_deref() {
            Some(s) if s.starts_with(['.', '/', '~']) => "bind",
            _ => "volume",
        }
        .into(),
    );
    Ok(volume)
}

fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Port>, D::Error> {
    #[derive(Deserialize)]
    struct Long {
        mode: Option<String>,
        target: u32,
        #[serde(default, deserialize_with = "scalar_text")]
        published: Option<String>,
        protocol: Option<String>,
    }
    let items: Option<Vec<Value>> = Deserialize::deserialize(d)?;
    let mut out = Vec::new();
    for item in items.unwrap_or_default() {
        match item {
            Value::Mapping(_) => {
                let long: Long = serde_yaml_ng::from_value(item).map_err(D::Error::custom)?;
                let published = long
                    .published
                    .map(|p| {
                        p.parse::<u32>()
                            .map_err(|_| D::Error::custom(format!("published: {p:?} is not a port")))
                    })
                    .transpose()?;
                out.push(Port {
                    mode: long.mode,
                    target: long.target,
                    published,
                    protocol: long.protocol,
                });
            }
            other => {
                let spec = scalar_string(&other).ok_or_else(|| D::Error::custom("expected a port"))?;
                out.extend(parse_port(&spec).map_err(D::Error::custom)?);
            }
        }
    }
    Ok(out)
}

/// A short port spec as docker/cli reads it (`nat.ParsePortSpecs`, then ingress mode):
/// `80`, `8080:80`, `8080:80/udp`, `8000-8001:80-81`, `127.0.0.1:8080:80` (the address is
/// dropped: Swarm publishes on every address). Sorted by target as the CLI sorts them.
pub fn parse_port(spec: &str) -> Result<Vec<Port>, String> {
    let bad = |why: &str| format!("invalid port {spec:?}: {why}");
    let (body, protocol) = match spec.rsplit_once('/') {
        Some((b, p)) => (b, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad("the protocol must be tcp, udp or sctp"));
    }
    // [ip:]published:target, with an IPv6 address in brackets.
    let (published, target) = match body.rsplit_once(':') {
        None => (None, body),
        Some((rest, target)) => {
            let published = match rest.rsplit_once(':') {
                Some((_ip, p)) => p,
                None => rest,
            };
            (Some(published).filter(|p| !p.is_empty()), target)
        }
    };
    let range = |r: &str| -> Result<(u32, u32), String> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: u32 = a.parse().map_err(|_| bad("not a port number"))?;
        let b: u32 = b.parse().map_err(|_| bad("not a port number"))?;
        if a == 0 || b < a || b > 65535 {
            return Err(bad("not a port range"));
        }
        Ok((a, b))
    };
    let (t0, t1) = range(target)?;
    let published = published.map(range).transpose()?;
    if let Some((p0, p1)) = published
        && p1 - p0 != t1 - t0
        && p0 != p1
    {
        return Err(bad("the published and target ranges differ in size"));
    }
    Ok((t0..=t1)
        .enumerate()
        .map(|(i, target)| Port {
            mode: Some("ingress".into()),
            target,
            published: published.map(|(p0, p1)| if p0 == p1 { p0 } else { p0 + i as u32 }),
            protocol: Some(protocol.clone()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(yaml: &str) -> Service {
        serde_yaml_ng::from_str(yaml).expect("service")
    }

    #[test]
    fn short_and_long_forms_read_alike() {
        let s = service(
            "image: x\ncommand: sh -c 'echo hi'\nenvironment: [A=1, B]\nlabels: [a=b]\nnetworks: [front]\nsecrets: [db]\nextra_hosts: ['db:10.0.0.2', 'v6=[::1]']\ndns: 1.1.1.1\nulimits: {nofile: 10, nproc: {soft: 1, hard: 2}}\nhealthcheck: {test: curl -f localhost}\n",
        );
        assert_eq!(s.command, Some(vec!["sh".into(), "-c".into(), "echo hi".into()]));
        assert_eq!(s.environment.get("A"), Some(&Some("1".into())));
        assert_eq!(s.environment.get("B"), Some(&None));
        assert_eq!(s.labels.get("a").map(String::as_str), Some("b"));
        assert!(s.networks.contains_key("front"));
        assert_eq!(s.secrets[0].source, "db");
        assert_eq!(
            s.extra_hosts,
            vec![("db".into(), "10.0.0.2".into()), ("v6".into(), "::1".into())]
        );
        assert_eq!(s.dns, vec!["1.1.1.1"]);
        assert_eq!(s.ulimits.get("nofile"), Some(&Ulimit { soft: 10, hard: 10 }));
        assert_eq!(s.ulimits.get("nproc"), Some(&Ulimit { soft: 1, hard: 2 }));
        assert_eq!(
            s.healthcheck.map(|h| h.test),
            Some(vec!["CMD-SHELL".into(), "curl -f localhost".into()])
        );
    }

    #[test]
    fn ports_as_the_cli_reads_them() {
        let p = |s: &str| parse_port(s).expect(s);
        assert_eq!(p("80")[0].published, None);
        assert_eq!(p("8080:80")[0].published, Some(8080));
        assert_eq!(p("8080:80/udp")[0].protocol.as_deref(), Some("udp"));
        assert_eq!(p("127.0.0.1:8080:80")[0].published, Some(8080));
        let range = p("8000-8001:80-81");
        assert_eq!((range[1].target, range[1].published), (81, Some(8001)));
        assert_eq!(p("80")[0].mode.as_deref(), Some("ingress"));
        for bad in ["x", "80/ftp", "0", "8000-8002:80-81", "70000"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_as_the_cli_reads_them() {
        let v = parse_volume("data:/var/lib/data:ro").expect("volume");
        assert_eq!(
            (v.type_.as_deref(), v.source.as_deref(), v.read_only),
            (Some("volume"), Some("data"), true)
        );
        assert_eq!(
            parse_volume("/srv:/srv").expect("bind").type_.as_deref(),
            Some("bind")
        );
        assert_eq!(parse_volume("/cache").expect("anonymous").source, None);
        assert!(parse_volume("a::b").is_err());
        assert!(parse_volume("a:b:c:d").is_err());
    }
}
