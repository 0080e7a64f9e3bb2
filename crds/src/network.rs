//! `SwarmNetwork`: one Swarm network, as `docker network create --driver overlay` would make it.
//! Swarm networks cannot be changed after creation, so the CRD refuses changes to the fields that
//! describe one.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema, core::Rule};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ClusterRef, DeletionPolicy, cluster_ref_immutable, on_cluster, reserved_labels};

/// A transition rule that refuses any change to `field` once set (or unset).
fn immutable(field: &str) -> Rule {
    Rule::new(format!(
        "has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})"
    ))
    .message(kube::core::Message::Message(format!(
        "spec.{field} is immutable: Swarm networks cannot be changed; create a new SwarmNetwork"
    )))
    .field_path(format!(".{field}"))
}

/// Desired state of a Swarm network.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "swarmoperator.io",
    version = "v1alpha1",
    kind = "SwarmNetwork",
    namespaced,
    status = "SwarmNetworkStatus",
    shortname = "swnet",
    category = "swarm",
    doc = "A Docker Swarm network managed through the Kubernetes API",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Network", type_ = "string", json_path = ".status.networkName"),
    printcolumn(name = "Driver", type_ = "string", json_path = ".status.driver"),
    printcolumn(name = "Scope", type_ = "string", json_path = ".status.scope"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("has(self.spec.networkName) || size(self.metadata.name) <= 63")
        .message("metadata.name is the Swarm network name when spec.networkName is not set, and Swarm allows at most 63 characters (set spec.networkName otherwise)")
)]
#[x_kube(
    validation = immutable("networkName"),
    validation = immutable("driver"),
    validation = immutable("attachable"),
    validation = immutable("internal"),
    validation = immutable("encrypted"),
    validation = immutable("ipam"),
    validation = immutable("driverOptions"),
    validation = immutable("labels"),
    validation = cluster_ref_immutable(),
)]
#[serde(rename_all = "camelCase")]
pub struct SwarmNetworkSpec {
    /// The SwarmCluster this lives on; the one named `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,
    /// Name of the Swarm network. Defaults to metadata.name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"))]
    pub network_name: Option<String>,
    /// Network driver; overlay by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Standalone containers (`docker run --network`) may join, besides services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachable: Option<bool>,
    /// No route to the outside world.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    /// Encrypt the overlay's traffic between nodes (IPsec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// Address management: subnets, gateways, ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    /// Options of the driver, e.g. com.docker.network.driver.mtu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_options: Option<BTreeMap<String, String>>,
    /// Labels on the Swarm network. Keys under `swarmoperator.io/` are the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = reserved_labels())]
    pub labels: Option<BTreeMap<String, String>>,
    /// Delete (default) removes the Swarm network with the resource, once no service uses it;
    /// Orphan leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ipam {
    /// IPAM driver; `default` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub config: Vec<IpamConfig>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfig {
    /// e.g. 10.10.0.0/24
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("isCIDR(self)").message("spec.ipam.config[].subnet must be a subnet such as 10.10.0.0/24"))]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("isIP(self)").message("spec.ipam.config[].gateway must be an IP address such as 10.10.0.1"))]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("isCIDR(self)").message("spec.ipam.config[].ipRange must be a range such as 10.10.0.128/25"))]
    pub ip_range: Option<String>,
}

/// Observed state, kstatus-compatible.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmNetworkStatus {
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "networkID")]
    pub network_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// swarm for overlay networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Swarm services attached to the network, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

impl SwarmNetwork {
    /// The Swarm network name: spec.networkName, else metadata.name.
    pub fn network_name(&self) -> String {
        self.spec
            .network_name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}

on_cluster!(SwarmNetwork);
