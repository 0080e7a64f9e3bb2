//! The Engine's create request for a SwarmNetwork, owner labels included (pure).

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use swarm_operator_crds::SwarmNetwork;

use crate::labels::owner_labels;

/// The Engine's create request for `net`, owner labels included.
pub fn create_request(net: &SwarmNetwork) -> NetworkCreateRequest {
    let spec = &net.spec;
    let mut labels: HashMap<String, String> = spec.labels.clone().unwrap_or_default().into_iter().collect();
    labels.extend(owner_labels(net));
    let mut options: HashMap<String, String> = spec
        .driver_options
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if spec.encrypted == Some(true) {
        options.insert("encrypted".into(), String::new());
    }
    NetworkCreateRequest {
        name: net.network_name(),
        driver: Some(spec.driver.clone().unwrap_or_else(|| "overlay".into())),
        scope: Some("swarm".into()),
        internal: spec.internal,
        attachable: spec.attachable,
        ipam: spec.ipam.as_ref().map(|i| Ipam {
            driver: i.driver.clone(),
            config: (!i.config.is_empty()).then(|| {
                i.config
                    .iter()
                    .map(|c| IpamConfig {
                        subnet: c.subnet.clone(),
                        gateway: c.gateway.clone(),
                        ip_range: c.ip_range.clone(),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        }),
        options: (!options.is_empty()).then_some(options),
        labels: Some(labels),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reaches_the_create_request() {
        let mut net: SwarmNetwork = serde_yaml_ng::from_str(
            r#"
apiVersion: swarmoperator.io/v1alpha1
kind: SwarmNetwork
metadata: {name: backend, namespace: shop}
spec:
  attachable: true
  internal: true
  encrypted: true
  ipam: {driver: default, config: [{subnet: 10.123.0.0/24, gateway: 10.123.0.1, ipRange: 10.123.0.128/25}]}
  driverOptions: {com.docker.network.driver.mtu: "1400"}
  labels: {tier: data}
"#,
        )
        .unwrap();
        net.metadata.uid = Some("uid-n".into());
        let req = serde_json::to_value(create_request(&net)).unwrap();
        assert_eq!(req["Name"], "backend");
        assert_eq!(
            (req["Driver"].as_str(), req["Scope"].as_str()),
            (Some("overlay"), Some("swarm"))
        );
        assert_eq!(
            (req["Attachable"].as_bool(), req["Internal"].as_bool()),
            (Some(true), Some(true))
        );
        assert_eq!(req["Options"]["encrypted"], "");
        assert_eq!(req["Options"]["com.docker.network.driver.mtu"], "1400");
        assert_eq!(req["IPAM"]["Config"][0]["Subnet"], "10.123.0.0/24");
        assert_eq!(req["IPAM"]["Config"][0]["IPRange"], "10.123.0.128/25");
        assert_eq!(req["Labels"]["tier"], "data");
        assert_eq!(req["Labels"][crate::labels::OWNER_UID], "uid-n");
    }
}
