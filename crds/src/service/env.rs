//! The environment of a service's containers: plain values, and values read from a key of a
//! Secret or ConfigMap in the namespace (`valueFrom`, `envFrom`), as a Pod spec has them. Docker
//! keeps every value in the service spec, where `docker service inspect` shows it.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One environment variable of the service's containers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.value) && has(self.valueFrom))").message("spec.env: a variable takes value or valueFrom, not both"))]
pub struct EnvVar {
    /// Variable name.
    #[schemars(length(min = 1), regex(pattern = r"^[^=]+$"))]
    pub name: String,
    /// Value; empty when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value from a key of a Secret or ConfigMap in the same namespace. A change of that key
    /// rolls the service (following its updateConfig).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Where a variable's value comes from: exactly one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretKeyRef) != has(self.configMapKeyRef)").message("spec.env[].valueFrom: give exactly one of secretKeyRef and configMapKeyRef"))]
pub struct EnvVarSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
}

/// A key of a Secret or ConfigMap in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeySelector {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// When true, a missing object or key leaves the variable unset instead of stalling the service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// Every key of a Secret or ConfigMap as a variable (`envFrom`). Variables in `env` win over
/// these, and a later source wins over an earlier one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretRef) != has(self.configMapRef)").message("spec.envFrom: give each exactly one of secretRef and configMapRef"))]
pub struct EnvFromSource {
    /// Put before every key's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^=]*$"))]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SourceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<SourceRef>,
}

/// A Secret or ConfigMap in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// When true, a missing object adds no variables instead of stalling the service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}
