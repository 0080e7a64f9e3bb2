//! Value types every kind shares: which SwarmCluster a resource lives on, what deleting it does,
//! durations as Go writes them ("1m30s") and Kubernetes quantities ("200Mi", "500m"), with their
//! exact conversions to the Engine's integers, and the rule that keeps the operator's labels its own.

use std::borrow::Cow;

use kube::core::Rule;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Name of the cluster used by resources without a `clusterRef`.
pub const DEFAULT_CLUSTER: &str = "default";

/// Label prefix reserved for the operator's owner labels on Swarm objects.
pub const LABEL_PREFIX: &str = "swarmoperator.io/";

/// Which SwarmCluster a namespaced resource lives on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ClusterRef {
    /// Name of the SwarmCluster.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The transition rule every namespaced kind carries on its spec: moving a resource to another
/// swarm would leave its object behind on the first one.
pub fn cluster_ref_immutable() -> Rule {
    Rule::new(
        "has(self.clusterRef) == has(oldSelf.clusterRef) && (!has(self.clusterRef) || self.clusterRef.name == oldSelf.clusterRef.name)",
    )
    .message(kube::core::Message::Message(
        "spec.clusterRef is immutable: delete the resource and create it again to move it to another cluster"
            .into(),
    ))
    .field_path(".clusterRef")
}

/// The rule on every kind's `spec.labels`: keys under `swarmoperator.io/` are the operator's own
/// (they say who owns a Swarm object), so a user may not set them.
pub fn reserved_labels() -> Rule {
    Rule::new("self.all(k, !k.startsWith('swarmoperator.io/'))")
        .message("spec.labels: keys under swarmoperator.io/ are reserved for the operator")
}

/// A duration the Engine takes as "at least 1ms, or 0 for the default" (healthcheck times).
pub fn zero_or_at_least_1ms(field: &str) -> Rule {
    Rule::new("duration(self) == duration('0s') || duration(self) >= duration('1ms')").message(
        kube::core::Message::Message(format!(
            "{field} must be at least 1ms (or 0s for the image's default)"
        )),
    )
}

/// CPUs: more than 0, and no more than a machine has (1024).
pub fn cpu_bounds(field: &str) -> Rule {
    Rule::new(
        "!isQuantity(string(self)) || (quantity(string(self)).isGreaterThan(quantity('0')) && quantity(string(self)).compareTo(quantity('1024')) <= 0)",
    )
    .message(kube::core::Message::Message(format!(
        "{field} must be more than 0 and at most 1024 CPUs, e.g. 500m or 2"
    )))
}

/// Memory: a whole number of bytes (`100m` would be a tenth of a byte).
pub fn whole_bytes(field: &str) -> Rule {
    Rule::new("!isQuantity(string(self)) || quantity(string(self)).isInteger()").message(
        kube::core::Message::Message(format!(
            "{field} must be a whole number of bytes, e.g. 200Mi or 1Gi (100m is a tenth of a byte)"
        )),
    )
}

/// A kind that lives on one SwarmCluster.
pub trait OnCluster {
    fn cluster_ref(&self) -> Option<&ClusterRef>;

    /// The SwarmCluster's name: `spec.clusterRef.name`, else `default`.
    fn cluster_name(&self) -> &str {
        self.cluster_ref()
            .map(|r| r.name.as_str())
            .unwrap_or(DEFAULT_CLUSTER)
    }
}

/// `OnCluster` for a kind whose spec has `cluster_ref`.
macro_rules! on_cluster {
    ($kind:ty) => {
        impl $crate::common::OnCluster for $kind {
            fn cluster_ref(&self) -> Option<&$crate::common::ClusterRef> {
                self.spec.cluster_ref.as_ref()
            }
        }
    };
}
pub(crate) use on_cluster;

/// What happens to the Swarm object when its resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

/// A duration like `10s`, `1m30s`, `500ms` or `2h`, as `docker service create` takes them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Duration(pub String);

/// Go's time.ParseDuration syntax without a sign: one or more number+unit pairs.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration such as 10s, 1m30s or 500ms"
        })
    }
}

impl From<&str> for Duration {
    fn from(s: &str) -> Self {
        Duration(s.to_string())
    }
}

impl Duration {
    /// Nanoseconds, as the Engine counts durations.
    pub fn nanos(&self) -> Result<i64, String> {
        duration_nanos(&self.0)
    }
}

/// A Kubernetes quantity: `500m` CPUs, `200Mi` of memory, or a plain number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Quantity {
    Number(i64),
    Text(String),
}

impl Quantity {
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            Quantity::Number(n) => n.to_string().into(),
            Quantity::Text(s) => s.as_str().into(),
        }
    }

    /// CPUs as the Engine's NanoCPUs ("500m" -> 500_000_000).
    pub fn nano_cpus(&self) -> Result<i64, String> {
        Ok((quantity_value(&self.as_text())? * 1e9).round() as i64)
    }

    /// Bytes ("200Mi" -> 209_715_200).
    pub fn bytes(&self) -> Result<i64, String> {
        Ok(quantity_value(&self.as_text())?.round() as i64)
    }
}

impl From<&str> for Quantity {
    fn from(s: &str) -> Self {
        Quantity::Text(s.to_string())
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // A CEL rule rather than anyOf [integer, string+pattern]: kube's structural rewrite strips the
        // types out of anyOf branches, which then accept anything.
        json_schema!({
            "x-kubernetes-int-or-string": true,
            // Bounds the cost the API server estimates for the rule.
            "maxLength": 64,
            "x-kubernetes-validations": [{
                "rule": "type(self) == int || isQuantity(self)",
                "message": "must be a Kubernetes quantity such as 500m, 2, 200Mi or 1Gi"
            }],
            "description": "A Kubernetes quantity such as 500m, 2, 200Mi or 1Gi"
        })
    }
}

/// Nanoseconds in `s`, a Go duration without sign ("1m30s", "500ms", "1.5h").
fn duration_nanos(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a duration such as 10s, 1m30s or 500ms");
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(total.round() as i64)
}

/// The value of a Kubernetes quantity as a float of base units ("500m" -> 0.5, "2Ki" -> 2048).
fn quantity_value(q: &str) -> Result<f64, String> {
    let bad = || format!("{q:?} is not a quantity such as 500m, 2, 200Mi or 1Gi");
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    if value < 0.0 {
        return Err(format!("{q:?} is negative"));
    }
    Ok(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> Result<i64, String> {
        Duration::from(s).nanos()
    }
    fn nano_cpus(s: &str) -> Result<i64, String> {
        Quantity::from(s).nano_cpus()
    }
    fn bytes(s: &str) -> Result<i64, String> {
        Quantity::from(s).bytes()
    }

    #[test]
    fn go_durations() {
        assert_eq!(nanos("10s"), Ok(10_000_000_000));
        assert_eq!(nanos("1m30s"), Ok(90_000_000_000));
        assert_eq!(nanos("500ms"), Ok(500_000_000));
        assert_eq!(nanos("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(nanos("2us"), Ok(2_000));
        assert_eq!(nanos("0s"), Ok(0));
        for bad in ["", "10", "s", "10x", "1m30", "-5s", "1..5s"] {
            assert!(nanos(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(nano_cpus("500m"), Ok(500_000_000));
        assert_eq!(nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(nano_cpus("0.1"), Ok(100_000_000));
        assert_eq!(nano_cpus("250000u"), Ok(250_000_000));
        assert_eq!(Quantity::Number(3).nano_cpus(), Ok(3_000_000_000));
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(bytes("64Mi"), Ok(67_108_864));
        assert_eq!(bytes("1Gi"), Ok(1_073_741_824));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("1048576"), Ok(1_048_576));
        assert_eq!(bytes("1e3"), Ok(1000));
        assert!(bytes("12Qi").is_err());
        assert!(bytes("-1Mi").is_err());
    }
}
