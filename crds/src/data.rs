//! `SwarmSecret` and `SwarmConfig`: Swarm secrets and configs fed from Kubernetes Secrets and
//! ConfigMaps. Swarm keeps them immutable, so each content is its own Swarm object named
//! `<name>-<short content hash>`; a change makes a new version and services roll over to it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ClusterRef, DeletionPolicy, cluster_ref_immutable, on_cluster, reserved_labels};

/// A key of a Kubernetes object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

/// A Swarm secret whose value comes from a Kubernetes Secret.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "swarmoperator.io",
    version = "v1alpha1",
    kind = "SwarmSecret",
    namespaced,
    status = "VersionedStatus",
    shortname = "swsecret",
    category = "swarm",
    doc = "A Docker Swarm secret fed from a Kubernetes Secret",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Swarm name", type_ = "string", json_path = ".status.swarmName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 53")
        .message("metadata.name: at most 53 characters, as Swarm allows 64 for the name and each version adds -<10 hex digits>")
)]
#[x_kube(validation = cluster_ref_immutable())]
#[serde(rename_all = "camelCase")]
pub struct SwarmSecretSpec {
    /// The SwarmCluster this lives on; the one named `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,
    /// The Kubernetes Secret and key holding the value.
    pub secret_ref: KeyRef,
    /// Labels on the Swarm secret. Keys under `swarmoperator.io/` are the operator's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = reserved_labels())]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// A Swarm config whose content comes from a ConfigMap or is given inline.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "swarmoperator.io",
    version = "v1alpha1",
    kind = "SwarmConfig",
    namespaced,
    status = "VersionedStatus",
    shortname = "swconfig",
    category = "swarm",
    doc = "A Docker Swarm config fed from a ConfigMap or given inline",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Swarm name", type_ = "string", json_path = ".status.swarmName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 53")
        .message("metadata.name: at most 53 characters, as Swarm allows 64 for the name and each version adds -<10 hex digits>")
)]
#[x_kube(
    validation = Rule::new("has(self.configMapRef) != has(self.data)")
        .message("spec: set exactly one of configMapRef and data"),
    validation = cluster_ref_immutable(),
)]
#[serde(rename_all = "camelCase")]
pub struct SwarmConfigSpec {
    /// The SwarmCluster this lives on; the one named `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,
    /// The ConfigMap and key holding the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<KeyRef>,
    /// The content, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = reserved_labels())]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// Observed state of a SwarmSecret or SwarmConfig. Never holds the value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionedStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// ID of the swarm this resource's objects are on (`docker info`'s Swarm.Cluster.ID). A
    /// cluster that comes to reach another swarm (its SwarmCluster deleted, selected away or
    /// pointed elsewhere) leaves the resource ClusterUnavailable instead of moving it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<String>,
    /// The current version's Swarm name, `<name>-<hash>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "swarmID")]
    pub swarm_id: Option<String>,
    /// Every version still in the swarm (the current one and older ones services still use).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<DataVersion>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataVersion {
    pub swarm_name: String,
    #[serde(rename = "swarmID")]
    pub swarm_id: String,
    /// Swarm services that use this version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

on_cluster!(SwarmSecret);
on_cluster!(SwarmConfig);
