//! Small value types shared by the SwarmService spec: durations as Go writes them ("10s", "1m30s") and
//! Kubernetes quantities ("200Mi", "500m").

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

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
