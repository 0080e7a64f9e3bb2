//! Pure comparison of the desired ServiceSpec with what the Engine reports, after normalising what the
//! Engine fills in or reorders, so an unchanged spec compares equal and makes no write.

use bollard::models::{ServiceSpec, TaskSpec};
use serde_json::Value;

/// Engine defaults filled into a TaskSpec when the client leaves them out (path, value).
const TASK_DEFAULTS: &[(&[&str], &str)] = &[
    (&["Runtime"], "container"),
    (&["ContainerSpec", "Isolation"], "default"),
];
/// Engine defaults filled into a ServiceSpec outside its TaskTemplate.
const SERVICE_DEFAULTS: &[(&[&str], &str)] = &[(&["EndpointSpec", "Mode"], "vip")];

/// Dotted Engine field names where `actual` differs from `desired`, e.g. `TaskTemplate.ContainerSpec.Env`.
/// Empty when nothing needs writing.
pub fn spec_differences(desired: &ServiceSpec, actual: &ServiceSpec) -> Vec<String> {
    let mut out = Vec::new();
    let digest = Digest::of(desired);
    diff_values(
        "",
        &normalized_service(desired, digest),
        &normalized_service(actual, digest),
        &mut out,
    );
    out
}

/// How image digests are compared, which depends on what the user wrote.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Digest {
    /// The user gave a tag: a digest the manager pinned to it is no difference.
    PinnedByTheManager,
    /// The user gave a digest: it is compared whole.
    GivenByTheUser,
}

impl Digest {
    fn of(desired: &ServiceSpec) -> Self {
        let image = desired
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.as_deref())
            .unwrap_or_default();
        if image.contains('@') {
            Digest::GivenByTheUser
        } else {
            Digest::PinnedByTheManager
        }
    }
}

/// The generation of the resource whose spec this Swarm service holds, as the operator recorded
/// it when it wrote the spec (label `swarmoperator.io/generation`); None for a service it never
/// wrote. After Swarm rolls an update back, the spec it restored says the earlier generation.
pub fn written_generation(spec: &ServiceSpec) -> Option<i64> {
    spec.labels.as_ref()?.get(crate::labels::GENERATION)?.parse().ok()
}

/// Whether `desired` and `actual` differ only in which version of a secret or config they mount
/// (a SwarmSecret or SwarmConfig rotated): the same references with other Swarm IDs and names.
pub fn only_data_versions_differ(desired: &ServiceSpec, actual: &ServiceSpec) -> bool {
    let without_versions = |spec: &ServiceSpec| {
        let mut v = normalized_service(spec, Digest::of(desired));
        for (list, keys) in [
            ("Secrets", ["SecretID", "SecretName"]),
            ("Configs", ["ConfigID", "ConfigName"]),
        ] {
            let pointer = format!("/TaskTemplate/ContainerSpec/{list}");
            if let Some(Value::Array(refs)) = v.pointer_mut(&pointer) {
                for r in refs.iter_mut().filter_map(Value::as_object_mut) {
                    keys.iter().for_each(|k| {
                        r.remove(*k);
                    });
                }
            }
        }
        v
    };
    let digest = Digest::of(desired);
    normalized_service(desired, digest) != normalized_service(actual, digest)
        && without_versions(desired) == without_versions(actual)
}

/// Whether a task was made from the service's current TaskTemplate: Swarm's own notion of a task
/// that an update does not have to replace.
pub fn task_is_current(task: &TaskSpec, template: &TaskSpec) -> bool {
    normalized_task(task) == normalized_task(template)
}

fn normalized_service(spec: &ServiceSpec, digest: Digest) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    if digest == Digest::PinnedByTheManager {
        strip_pinned_digest(&mut v);
    }
    // Which generation wrote the spec is the operator's bookkeeping, not a difference.
    if let Some(Value::Object(labels)) = v.get_mut("Labels") {
        labels.remove(crate::labels::GENERATION);
    }
    // Clients that resolve the image (the docker CLI) add the platforms its manifest lists; the
    // spec has no field for them and they follow from the image.
    if let Some(Value::Object(placement)) = v.pointer_mut("/TaskTemplate/Placement") {
        placement.remove("Platforms");
    }
    if let Some(template) = v.get_mut("TaskTemplate") {
        normalize_task_value(template);
    }
    remove_defaults(&mut v, SERVICE_DEFAULTS);
    sort_ports(&mut v);
    drop_empty(&mut v);
    v
}

fn normalized_task(spec: &TaskSpec) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    normalize_task_value(&mut v);
    drop_empty(&mut v);
    v
}

fn normalize_task_value(v: &mut Value) {
    remove_defaults(v, TASK_DEFAULTS);
    // ForceUpdate counts `docker service update --force`; 0 is the same as absent.
    if let Some(o) = v.as_object_mut()
        && o.get("ForceUpdate").and_then(Value::as_u64) == Some(0)
    {
        o.remove("ForceUpdate");
    }
}

/// Removes each field that holds the Engine's default: leaving it out means the same.
fn remove_defaults(v: &mut Value, defaults: &[(&[&str], &str)]) {
    for (path, default) in defaults {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let pointer: String = parents.iter().map(|p| format!("/{p}")).collect();
        if let Some(Value::Object(parent)) = v.pointer_mut(&pointer)
            && parent.get(*last).and_then(Value::as_str) == Some(*default)
        {
            parent.remove(*last);
        }
    }
}

/// Ports are a set to the user; the Engine may report them in another order.
fn sort_ports(v: &mut Value) {
    if let Some(Value::Array(ports)) = v.pointer_mut("/EndpointSpec/Ports") {
        ports.sort_by_key(|p| {
            (
                p.get("TargetPort").and_then(Value::as_i64),
                p["Protocol"].to_string(),
                p.get("PublishedPort").and_then(Value::as_i64),
            )
        });
    }
}

/// A manager that can reach the registry pins `image:tag` to `image:tag@sha256:...`; the tag the
/// user asked for is what counts. An image given by digest is compared whole.
fn strip_pinned_digest(v: &mut Value) {
    if let Some(Value::String(image)) = v.pointer_mut("/TaskTemplate/ContainerSpec/Image")
        && let Some((named, _digest)) = image.split_once("@sha256:")
    {
        *image = named.to_string();
    }
}

/// Null, empty lists and empty objects say nothing; the Engine drops or adds them freely. The Engine
/// also omits zero numbers, false and empty strings (Go's omitempty), so they mean absent too.
fn drop_empty(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.values_mut().for_each(drop_empty);
            map.retain(|_, x| !is_empty(x));
        }
        Value::Array(items) => items.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn diff_values(path: &str, desired: &Value, actual: &Value, out: &mut Vec<String>) {
    if desired == actual {
        return;
    }
    let empty = Value::Object(serde_json::Map::new());
    // An object on one side and nothing on the other: name the leaves inside, not the object.
    let (desired, actual) = match (desired, actual) {
        (Value::Null, Value::Object(_)) => (&empty, actual),
        (Value::Object(_), Value::Null) => (desired, &empty),
        _ => (desired, actual),
    };
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => {
            let mut keys: Vec<&String> = d.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let dv = d.get(k).unwrap_or(&Value::Null);
                let av = a.get(k).unwrap_or(&Value::Null);
                diff_values(&child, dv, av, out);
            }
        }
        _ => out.push(if path.is_empty() {
            "(spec)".to_string()
        } else {
            path.to_string()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secret(id: &str, name: &str, target: &str) -> ServiceSpec {
        serde_json::from_value(serde_json::json!({
            "Name": "s",
            "TaskTemplate": {"ContainerSpec": {"Image": "x", "Secrets": [
                {"SecretID": id, "SecretName": name, "File": {"Name": target, "UID": "0", "GID": "0", "Mode": 292}}
            ]}}
        }))
        .unwrap()
    }

    #[test]
    fn a_new_secret_version_is_told_apart_from_other_changes() {
        let v1 = with_secret("id1", "db-aaaa", "db");
        let v2 = with_secret("id2", "db-bbbb", "db");
        assert!(
            only_data_versions_differ(&v2, &v1),
            "another version of the same secret"
        );
        assert!(!only_data_versions_differ(&v1, &v1), "no difference at all");
        let moved = with_secret("id2", "db-bbbb", "elsewhere");
        assert!(!only_data_versions_differ(&moved, &v1), "the target changed too");
    }
    use serde_json::json;

    fn spec(v: Value) -> ServiceSpec {
        serde_json::from_value(v).unwrap()
    }

    fn desired() -> Value {
        json!({
            "Name": "web", "Labels": {"a": "b"},
            "TaskTemplate": {"ContainerSpec": {"Image": "img:1", "Env": ["A=1"]}},
            "Mode": {"Replicated": {"Replicas": 3}},
            "EndpointSpec": {"Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
                {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 53, "PublishMode": "host"}
            ]}
        })
    }

    /// What Engine 20.10 reports for `desired()`, verbatim from an inspect.
    fn as_engine_reports() -> Value {
        let mut v = desired();
        v["TaskTemplate"]["ContainerSpec"]["Isolation"] = json!("default");
        v["TaskTemplate"]["ForceUpdate"] = json!(0);
        v["TaskTemplate"]["Runtime"] = json!("container");
        v["EndpointSpec"]["Mode"] = json!("vip");
        v
    }

    #[test]
    fn engine_defaults_are_not_differences() {
        assert_eq!(
            spec_differences(&spec(desired()), &spec(as_engine_reports())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn runtime_other_than_container_is_a_difference() {
        let mut actual = as_engine_reports();
        actual["TaskTemplate"]["Runtime"] = json!("plugin");
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            ["TaskTemplate.Runtime"]
        );
    }

    #[test]
    fn isolation_other_than_default_is_a_difference() {
        let mut actual = as_engine_reports();
        actual["TaskTemplate"]["ContainerSpec"]["Isolation"] = json!("process");
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            ["TaskTemplate.ContainerSpec.Isolation"]
        );
    }

    #[test]
    fn forced_update_counter_is_a_difference() {
        let mut actual = as_engine_reports();
        actual["TaskTemplate"]["ForceUpdate"] = json!(2);
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            ["TaskTemplate.ForceUpdate"]
        );
    }

    #[test]
    fn dnsrr_endpoint_mode_is_a_difference() {
        let mut actual = as_engine_reports();
        actual["EndpointSpec"]["Mode"] = json!("dnsrr");
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            ["EndpointSpec.Mode"]
        );
    }

    #[test]
    fn port_order_is_not_a_difference() {
        let mut actual = as_engine_reports();
        let ports = actual["EndpointSpec"]["Ports"].as_array_mut().unwrap();
        ports.reverse();
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn empty_lists_and_maps_are_not_differences() {
        let mut actual = as_engine_reports();
        actual["TaskTemplate"]["ContainerSpec"]["Args"] = json!([]);
        actual["TaskTemplate"]["ContainerSpec"]["Labels"] = json!({});
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn out_of_band_changes_are_named() {
        let mut actual = as_engine_reports();
        actual["TaskTemplate"]["ContainerSpec"]["Image"] = json!("img:2");
        actual["TaskTemplate"]["ContainerSpec"]["Env"] = json!([]);
        actual["Mode"]["Replicated"]["Replicas"] = json!(1);
        actual["Labels"]["extra"] = json!("x");
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            [
                "Labels.extra",
                "Mode.Replicated.Replicas",
                "TaskTemplate.ContainerSpec.Env",
                "TaskTemplate.ContainerSpec.Image"
            ]
        );
    }

    #[test]
    fn zero_false_and_empty_string_are_absent() {
        let mut d = desired();
        d["UpdateConfig"] =
            json!({"Parallelism": 1, "Delay": 0, "MaxFailureRatio": 0.0, "Order": "stop-first"});
        d["TaskTemplate"]["ContainerSpec"]["TTY"] = json!(false);
        d["TaskTemplate"]["ContainerSpec"]["Dir"] = json!("");
        let mut actual = as_engine_reports();
        actual["UpdateConfig"] = json!({"Parallelism": 1, "Order": "stop-first"});
        assert_eq!(spec_differences(&spec(d), &spec(actual)), Vec::<String>::new());
    }

    #[test]
    fn scaled_to_zero_out_of_band_is_a_difference() {
        let mut actual = as_engine_reports();
        actual["Mode"]["Replicated"]["Replicas"] = json!(0);
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            ["Mode.Replicated.Replicas"]
        );
    }

    #[test]
    fn digest_pinned_by_the_manager_is_not_a_difference() {
        let mut actual = as_engine_reports();
        actual["TaskTemplate"]["ContainerSpec"]["Image"] = json!("img:1@sha256:0123456789abcdef");
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            Vec::<String>::new()
        );
        let mut other_tag = as_engine_reports();
        other_tag["TaskTemplate"]["ContainerSpec"]["Image"] = json!("img:2@sha256:0123456789abcdef");
        assert_eq!(
            spec_differences(&spec(desired()), &spec(other_tag)),
            ["TaskTemplate.ContainerSpec.Image"]
        );
    }

    #[test]
    fn a_digest_the_user_gave_is_compared_whole() {
        let by_digest = |d: &str| {
            let mut v = as_engine_reports();
            v["TaskTemplate"]["ContainerSpec"]["Image"] = json!(format!("img@sha256:{d}"));
            spec(v)
        };
        assert_eq!(
            spec_differences(&by_digest("aaaa"), &by_digest("bbbb")),
            ["TaskTemplate.ContainerSpec.Image"]
        );
        assert_eq!(
            spec_differences(&by_digest("aaaa"), &by_digest("aaaa")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_written_generation_is_bookkeeping_not_a_difference() {
        let with_generation = |g: &str| {
            let mut v = as_engine_reports();
            v["Labels"] = json!({crate::labels::GENERATION: g});
            spec(v)
        };
        assert_eq!(
            spec_differences(&with_generation("2"), &with_generation("1")),
            Vec::<String>::new()
        );
        assert_eq!(written_generation(&with_generation("7")), Some(7));
        assert_eq!(written_generation(&spec(as_engine_reports())), None);
    }

    #[test]
    fn platforms_derived_from_the_image_are_not_a_difference() {
        let mut actual = as_engine_reports();
        actual["TaskTemplate"]["Placement"] =
            json!({"Platforms": [{"Architecture": "amd64", "OS": "linux"}]});
        assert_eq!(
            spec_differences(&spec(desired()), &spec(actual)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn task_spec_without_runtime_is_current() {
        // Tasks report their spec without the Runtime the service's TaskTemplate carries.
        let template: TaskSpec = serde_json::from_value(as_engine_reports()["TaskTemplate"].clone()).unwrap();
        let task: TaskSpec = serde_json::from_value(
            json!({"ContainerSpec": {"Image": "img:1", "Env": ["A=1"], "Isolation": "default"}, "ForceUpdate": 0}),
        )
        .unwrap();
        assert!(task_is_current(&task, &template));
        let old: TaskSpec =
            serde_json::from_value(json!({"ContainerSpec": {"Image": "img:0", "Env": ["A=1"]}})).unwrap();
        assert!(!task_is_current(&old, &template));
    }
}
