//! What goes into each task's container besides the image: mounts, DNS, limits, identity.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Quantity;

/// A mount in the task's container (`--mount`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'Bind' || has(self.source)").message("a Bind mount needs a source path"),
    validation = Rule::new("self.type != 'Tmpfs' || !has(self.source)").message("a Tmpfs mount takes no source"),
    validation = Rule::new("self.type == 'Volume' || !has(self.volumeOptions)").message("volumeOptions go with type Volume"),
    validation = Rule::new("self.type == 'Tmpfs' || !has(self.tmpfsOptions)").message("tmpfsOptions go with type Tmpfs"),
)]
pub struct Mount {
    /// Bind, Volume or Tmpfs.
    #[serde(rename = "type")]
    pub type_: MountType,
    /// Host path (Bind) or volume name (Volume; anonymous when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Path in the container.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("a mount target must be an absolute path in the container, e.g. /data"))]
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MountType {
    #[default]
    Volume,
    Bind,
    Tmpfs,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeOptions {
    /// Volume driver, e.g. `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Options of the driver, e.g. `type: nfs`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Labels on the volume.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Do not copy the image's files at the target into a new volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_copy: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TmpfsOptions {
    /// Size as a Kubernetes quantity, e.g. `64Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// File mode as a number, e.g. 448 (0700 octal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4095))]
    pub mode: Option<i64>,
}

/// DNS settings of the containers (`--dns`, `--dns-search`, `--dns-option`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(ip, isIP(ip))").message("spec.dns.nameservers: each must be an IP address"))]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A ulimit (`--ulimit nofile=1024:2048`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.soft <= self.hard").message("a ulimit's soft limit cannot exceed its hard limit"))]
pub struct Ulimit {
    /// e.g. `nofile`, `nproc`.
    #[schemars(length(min = 1))]
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// An /etc/hosts entry (`--host name:ip`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostEntry {
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("isIP(self)").message("spec.hosts[].ip must be an IP address"))]
    pub ip: String,
    #[schemars(length(min = 1))]
    pub hostnames: Vec<String>,
}

/// A Kubernetes Secret of type kubernetes.io/dockerconfigjson in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    pub name: String,
}
