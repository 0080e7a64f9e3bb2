//! Which keys a stack file may have, the way `docker stack deploy` sorts them: keys it converts;
//! keys it ignores with a warning (`build`, `container_name`, `depends_on`...); keys it refuses
//! (`extends`, `mem_limit`...); and unknown keys, which its schema refuses. `x-` extensions are
//! free everywhere. Keys are found with the line they are on, so a refusal can say where.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};

/// What the file's keys say before anything is converted.
#[derive(Debug, Default, PartialEq)]
pub struct KeyReport {
    /// Keys the CLI ignores with a warning, by path (`services.web.build`).
    pub ignored: Vec<String>,
    /// Keys refused, each with why: forbidden by the CLI, unknown to its schema, or known but
    /// not supported here.
    pub refused: Vec<Refusal>,
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Refusal {
    pub path: String,
    pub line: Option<usize>,
    pub why: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {line}): {}", self.path, self.why),
            None => write!(f, "{}: {}", self.path, self.why),
        }
    }
}

/// docker/cli's `UnsupportedProperties` and `DeprecatedProperties` of a service, and service keys
/// its conversion never reads (`depends_on`, `tmpfs`...): accepted, warned of, ignored.
const IGNORED_SERVICE_KEYS: &[&str] = &[
    "build",
    "cgroupns_mode",
    "cgroup_parent",
    "container_name",
    "depends_on",
    "devices",
    "domainname",
    "expose",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "profiles",
    "security_opt",
    "shm_size",
    "stdin_open",
    "tmpfs",
    "userns_mode",
];

/// docker/cli's `ForbiddenProperties`, with its reasons.
const FORBIDDEN_SERVICE_KEYS: &[(&str, &str)] = &[
    ("extends", "Support for `extends` is not implemented yet."),
    (
        "volume_driver",
        "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.",
    ),
    (
        "volumes_from",
        "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.",
    ),
    ("cpu_quota", "Set resource limits using deploy.resources"),
    ("cpu_shares", "Set resource limits using deploy.resources"),
    ("cpuset", "Set resource limits using deploy.resources"),
    ("mem_limit", "Set resource limits using deploy.resources"),
    ("memswap_limit", "Set resource limits using deploy.resources"),
];

/// Keys the CLI's schema knows at `path` that the operator cannot express yet: refused rather
/// than dropped, with why.
fn not_supported_here(path: &[&str], key: &str) -> Option<&'static str> {
    Some(match (path, key) {
        (["services", _], "env_file") => {
            "env_file names files on the machine running the CLI; put the variables in `environment` (with ${VAR} from spec.variables or valuesFrom)"
        }
        (["services", _], "credential_spec" | "isolation") => {
            "this is for Windows services, which swarm-operator does not run"
        }
        (["services", _], "oom_score_adj") => "oom_score_adj is not supported by swarm-operator yet",
        (["services", _, "healthcheck"], "start_interval") => {
            "start_interval is not supported by swarm-operator yet"
        }
        (["services", _, "deploy", "resources", "reservations"], "generic_resources") => {
            "generic_resources is not supported by swarm-operator yet"
        }
        (["secrets" | "configs", _], "template_driver" | "driver" | "driver_opts") => {
            "secret and config drivers are not supported by swarm-operator yet"
        }
        (["services", _, "networks", _], "ipv4_address" | "ipv6_address") => {
            "Swarm services cannot have a fixed address"
        }
        (["services", _, "volumes", "[]"], "bind") => {
            "bind options (propagation) are not supported by swarm-operator yet"
        }
        (["services", _, "volumes", "[]"], "consistency") => {
            "consistency is for Docker Desktop, not for swarm"
        }
        _ => return None,
    })
}

const SERVICE_KEYS: &[&str] = &[
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "deploy",
    "dns",
    "dns_search",
    "entrypoint",
    "environment",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "labels",
    "logging",
    "networks",
    "ports",
    "read_only",
    "restart",
    "secrets",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tty",
    "ulimits",
    "user",
    "volumes",
    "working_dir",
];

/// The keys allowed in the mapping at `path` (with `*` for a name and `[]` for a list item), or
/// None when its keys are free (labels, environment, options) or it is not a known mapping.
fn known(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        [] => &[
            "version", "name", "services", "networks", "volumes", "secrets", "configs",
        ],
        ["services", _] => SERVICE_KEYS,
        ["services", _, "deploy"] => &[
            "mode",
            "replicas",
            "labels",
            "update_config",
            "rollback_config",
            "resources",
            "restart_policy",
            "placement",
            "endpoint_mode",
        ],
        ["services", _, "deploy", "update_config" | "rollback_config"] => &[
            "parallelism",
            "delay",
            "failure_action",
            "monitor",
            "max_failure_ratio",
            "order",
        ],
        ["services", _, "deploy", "resources"] => &["limits", "reservations"],
        ["services", _, "deploy", "resources", "limits"] => &["cpus", "memory", "pids"],
        ["services", _, "deploy", "resources", "reservations"] => &["cpus", "memory"],
        ["services", _, "deploy", "restart_policy"] => &["condition", "delay", "max_attempts", "window"],
        ["services", _, "deploy", "placement"] => &["constraints", "preferences", "max_replicas_per_node"],
        ["services", _, "deploy", "placement", "preferences", "[]"] => &["spread"],
        ["services", _, "healthcheck"] => &[
            "test",
            "timeout",
            "interval",
            "retries",
            "start_period",
            "disable",
        ],
        ["services", _, "logging"] => &["driver", "options"],
        ["services", _, "ports", "[]"] => &["mode", "target", "published", "protocol"],
        ["services", _, "volumes", "[]"] => &["type", "source", "target", "read_only", "volume", "tmpfs"],
        ["services", _, "volumes", "[]", "volume"] => &["nocopy"],
        ["services", _, "volumes", "[]", "tmpfs"] => &["size", "mode"],
        ["services", _, "secrets" | "configs", "[]"] => &["source", "target", "uid", "gid", "mode"],
        ["services", _, "networks", _] => &["aliases", "driver_opts"],
        ["services", _, "ulimits", _] => &["soft", "hard"],
        ["networks", _] => &[
            "name",
            "driver",
            "driver_opts",
            "ipam",
            "external",
            "internal",
            "attachable",
            "labels",
        ],
        ["networks", _, "ipam"] => &["driver", "config"],
        ["networks", _, "ipam", "config", "[]"] => &["subnet"],
        ["networks" | "volumes" | "secrets" | "configs", _, "external"] => &["name"],
        ["volumes", _] => &["name", "driver", "driver_opts", "external", "labels"],
        ["secrets" | "configs", _] => &["name", "file", "external", "labels"],
        ["secrets" | "configs", _, "x-kubernetes"] => &["secret", "configMap", "key"],
        _ => return None,
    })
}

/// Mappings whose keys are names (services, networks...) and whose values are checked again.
fn is_named_map(path: &[&str]) -> bool {
    matches!(
        path,
        ["services" | "networks" | "volumes" | "secrets" | "configs"]
            | ["services", _, "networks" | "ulimits"]
    )
}

/// Sorts every key of `document` (before interpolation: keys are never interpolated), with
/// the lines of `text` where each one refused is (looked up only when one is: a file parsed
/// again for its lines cost a stack of 1000 services a third of a megabyte).
pub fn check_keys(document: &Value, text: &str) -> KeyReport {
    let mut report = KeyReport::default();
    walk(document, &mut Vec::new(), &mut report);
    if !report.refused.is_empty() {
        let lines = key_lines(text);
        for r in &mut report.refused {
            r.line = lines.get(&r.path).copied();
        }
    }
    report
}

fn walk(value: &Value, path: &mut Vec<String>, report: &mut KeyReport) {
    match value {
        Value::Mapping(map) => {
            let owned = path.clone();
            let shape: Vec<&str> = owned.iter().map(String::as_str).collect();
            let allowed = known(&shape);
            let named = is_named_map(&shape);
            for (key, elem) in map {
                let key = key_text(key);
                path.push(key.clone());
                let dotted = path.join(".");
                let refuse = |why: String| Refusal {
                    line: None,
                    path: dotted.clone(),
                    why,
                };
                if key.starts_with("x-") {
                    // Extensions are the user's own, except the one the operator reads.
                    if key == "x-kubernetes" {
                        walk(elem, path, report);
                    }
                    path.pop();
                    continue;
                }
                if named {
                    walk(elem, path, report);
                    path.pop();
                    continue;
                }
                let Some(allowed) = allowed else {
                    path.pop();
                    continue;
                };
                let is_service = matches!(shape.as_slice(), ["services", _]);
                if allowed.contains(&key.as_str()) {
                    walk(elem, path, report);
                } else if let Some((_, why)) = FORBIDDEN_SERVICE_KEYS
                    .iter()
                    .find(|(k, _)| *k == key && is_service)
                {
                    report
                        .refused
                        .push(refuse(format!("forbidden by docker stack deploy: {why}")));
                } else if (is_service && IGNORED_SERVICE_KEYS.contains(&key.as_str()))
                    || (shape.is_empty() && key == "name")
                {
                    // A top-level `name` (compose spec) is the project's; the stack's is its resource's.
                    report.ignored.push(dotted.clone());
                } else if let Some(why) = not_supported_here(&shape, &key) {
                    report.refused.push(refuse(why.to_string()));
                } else {
                    report.refused.push(refuse(format!(
                        "unknown key {key:?}; allowed here: {}",
                        allowed.join(", ")
                    )));
                }
                path.pop();
            }
        }
        Value::Sequence(list) => {
            for (i, elem) in list.iter().enumerate() {
                path.push("[]".into());
                let before = report.refused.len();
                walk(elem, path, report);
                path.pop();
                // Name the item: `services.web.ports[1].published`.
                let prefix = format!("{}.[]", path.join("."));
                for r in &mut report.refused[before..] {
                    if let Some(rest) = r.path.strip_prefix(&prefix) {
                        let indexed = format!("{}[{i}]{rest}", path.join("."));
                        r.path = indexed;
                    }
                }
            }
        }
        Value::Tagged(tagged) => walk(&tagged.value, path, report),
        _ => {}
    }
}

pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => "?".into(),
    }
}

/// Line of every mapping key in `text`, by dotted path with list items as `[i]`
/// (`services.web.ports[1].published`). Empty when the text does not parse.
pub fn key_lines(text: &str) -> BTreeMap<String, usize> {
    let mut collector = LineCollector::default();
    let mut parser = Parser::new_from_str(text);
    if parser.load(&mut collector, false).is_err() {
        return BTreeMap::new();
    }
    collector.lines
}

/// Where the parser is: in a mapping (waiting for a key, or for the value of `key`) or a list.
enum Frame {
    Map { key: Option<String> },
    List { index: usize },
}

#[derive(Default)]
struct LineCollector {
    stack: Vec<Frame>,
    /// Path segments of the frames above the current one.
    path: Vec<String>,
    lines: BTreeMap<String, usize>,
}

impl LineCollector {
    /// A node starts where the innermost frame expects a value: take its place in the path.
    fn enter_value(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key: Some(k) }) => self.path.push(k.clone()),
            Some(Frame::List { index }) => self.path.push(format!("[{index}]")),
            _ => self.path.push(String::new()),
        }
    }
    /// A node ended: the frame moves on to its next key or item.
    fn value_done(&mut self) {
        self.path.pop();
        match self.stack.last_mut() {
            Some(Frame::Map { key }) => *key = None,
            Some(Frame::List { index }) => *index += 1,
            None => {}
        }
    }
    fn dotted(&self, last: &str) -> String {
        let mut parts: Vec<&str> = self
            .path
            .iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .collect();
        parts.push(last);
        let mut out = String::new();
        for p in parts {
            if !out.is_empty() && !p.starts_with('[') {
                out.push('.');
            }
            out.push_str(p);
        }
        out
    }
}

impl MarkedEventReceiver for LineCollector {
    fn on_event(&mut self, ev: Event, mark: yaml_rust2::scanner::Marker) {
        match ev {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A collection as a key is not a compose file; give it an empty key.
                if let Some(Frame::Map { key: None }) = self.stack.last_mut() {
                    self.stack.push(Frame::Map { key: None });
                    self.path.push(String::new());
                    return;
                }
                self.enter_value();
                self.stack.push(match ev {
                    Event::MappingStart(..) => Frame::Map { key: None },
                    _ => Frame::List { index: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            Event::Scalar(text, ..) => match self.stack.last_mut() {
                Some(Frame::Map { key: key @ None }) => {
                    *key = Some(text.clone());
                    let dotted = self.dotted(&text);
                    self.lines.entry(dotted).or_insert(mark.line());
                }
                _ => {
                    self.enter_value();
                    self.value_done();
                }
            },
            Event::Alias(_) => {
                self.enter_value();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(text: &str) -> KeyReport {
        let doc: Value = serde_yaml_ng::from_str(text).expect("yaml");
        check_keys(&doc, text)
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let text = "services:\n  web:\n    image: nginx\n    deploy:\n      replica: 2\n    ports:\n      - target: 80\n        publishd: 8080\n";
        let r = report(text);
        assert_eq!(r.refused.len(), 2, "{r:?}");
        assert_eq!(r.refused[0].path, "services.web.deploy.replica");
        assert_eq!(r.refused[0].line, Some(5));
        assert!(r.refused[0].why.contains("replicas"), "{}", r.refused[0].why);
        assert_eq!(r.refused[1].path, "services.web.ports[0].publishd");
        assert_eq!(r.refused[1].line, Some(8));
    }

    #[test]
    fn ignored_keys_are_listed_and_forbidden_ones_refused() {
        let text = "services:\n  web:\n    image: nginx\n    build: .\n    container_name: w\n    depends_on: [db]\n    mem_limit: 1g\n    x-anything: {whatever: 1}\nx-defaults: &d {a: 1}\n";
        let r = report(text);
        assert_eq!(
            r.ignored,
            vec![
                "services.web.build",
                "services.web.container_name",
                "services.web.depends_on"
            ]
        );
        assert_eq!(r.refused.len(), 1);
        assert_eq!(r.refused[0].line, Some(7));
        assert!(r.refused[0].why.contains("deploy.resources"));
    }

    #[test]
    fn env_file_is_refused_with_a_way_out() {
        let r = report("services:\n  web:\n    image: nginx\n    env_file: .env\n");
        assert_eq!(r.refused[0].path, "services.web.env_file");
        assert!(r.refused[0].why.contains("environment"));
    }

    #[test]
    fn free_maps_are_not_checked() {
        let r = report(
            "services:\n  web:\n    image: nginx\n    labels: {anything: x}\n    environment: {A: b}\n    networks:\n      front:\n        aliases: [a]\n    logging:\n      driver: json-file\n      options: {max-size: 1m}\nnetworks:\n  front:\n    driver_opts: {encrypted: ''}\n",
        );
        assert_eq!(r, KeyReport::default());
    }

    #[test]
    fn flow_style_and_lists_get_lines_too() {
        let lines = key_lines("a: {b: 1, c: [x, {d: 2}]}\ne:\n  - f: 1\n  - g: 2\n");
        assert_eq!(lines.get("a.b"), Some(&1));
        assert_eq!(lines.get("a.c[1].d"), Some(&1));
        assert_eq!(lines.get("e[1].g"), Some(&4));
    }
}
