//! Pure translation of a SwarmService into the Engine API's ServiceSpec.

use std::collections::HashMap;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
};
use swarm_operator_crds::service::{PortConfig, PortProtocol, PublishMode, SwarmService};

use crate::labels::owner_labels;

/// The ServiceSpec the Swarm should hold for `svc`, owner labels included.
pub fn service_spec(svc: &SwarmService) -> ServiceSpec {
    let spec = &svc.spec;
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.extend(owner_labels(svc));
    let env: Vec<String> = spec
        .env
        .iter()
        .map(|e| format!("{}={}", e.name, e.value.as_deref().unwrap_or_default()))
        .collect();
    ServiceSpec {
        name: Some(svc.service_name()),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.clone()),
                command: spec.command.clone(),
                args: spec.args.clone(),
                env: (!env.is_empty()).then_some(env),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(spec.replicas.unwrap_or(1))),
            }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            ports: (!spec.ports.is_empty()).then(|| spec.ports.iter().map(port).collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn port(p: &PortConfig) -> EndpointPortConfig {
    EndpointPortConfig {
        protocol: Some(match p.protocol {
            PortProtocol::TCP => EndpointPortConfigProtocolEnum::TCP,
            PortProtocol::UDP => EndpointPortConfigProtocolEnum::UDP,
            PortProtocol::SCTP => EndpointPortConfigProtocolEnum::SCTP,
        }),
        target_port: Some(i64::from(p.target)),
        published_port: p.published.map(i64::from),
        publish_mode: Some(match p.mode {
            PublishMode::Ingress => EndpointPortConfigPublishModeEnum::INGRESS,
            PublishMode::Host => EndpointPortConfigPublishModeEnum::HOST,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{OWNER_NAME, OWNER_NAMESPACE, OWNER_UID};

    fn from_yaml(yaml: &str) -> SwarmService {
        let mut svc: SwarmService = serde_yaml_ng::from_str(yaml).unwrap();
        svc.metadata.uid = Some("uid-1".into());
        svc
    }

    const WHOAMI: &str = r#"
apiVersion: swarmoperator.io/v1alpha1
kind: SwarmService
metadata: {name: whoami, namespace: web}
spec:
  image: swarm-operator-test/whoami:1
  command: ["/bin/sh", "-c"]
  args: ["exec httpd -f -p 80 -h /www"]
  env: [{name: A, value: "1"}, {name: EMPTY}]
  labels: {team: web}
  replicas: 3
  ports:
  - {target: 80, published: 4567}
  - {target: 53, published: 5353, protocol: UDP, mode: Host}
"#;

    #[test]
    fn every_field_reaches_the_service_spec() {
        let spec = service_spec(&from_yaml(WHOAMI));
        assert_eq!(spec.name.as_deref(), Some("whoami"));
        let labels = spec.labels.unwrap();
        assert_eq!(labels["team"], "web");
        assert_eq!(labels[OWNER_UID], "uid-1");
        assert_eq!(labels[OWNER_NAMESPACE], "web");
        assert_eq!(labels[OWNER_NAME], "whoami");
        let c = spec.task_template.unwrap().container_spec.unwrap();
        assert_eq!(c.image.as_deref(), Some("swarm-operator-test/whoami:1"));
        assert_eq!(c.command.unwrap(), ["/bin/sh", "-c"]);
        assert_eq!(c.args.unwrap(), ["exec httpd -f -p 80 -h /www"]);
        assert_eq!(c.env.unwrap(), ["A=1", "EMPTY="]);
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(3));
        let ports = spec.endpoint_spec.unwrap().ports.unwrap();
        assert_eq!(ports[0].target_port, Some(80));
        assert_eq!(ports[0].published_port, Some(4567));
        assert_eq!(ports[0].protocol, Some(EndpointPortConfigProtocolEnum::TCP));
        assert_eq!(
            ports[0].publish_mode,
            Some(EndpointPortConfigPublishModeEnum::INGRESS)
        );
        assert_eq!(ports[1].protocol, Some(EndpointPortConfigProtocolEnum::UDP));
        assert_eq!(
            ports[1].publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
    }

    #[test]
    fn defaults_name_from_metadata_and_one_replica() {
        let spec = service_spec(&from_yaml(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: web}\nspec: {image: x}",
        ));
        assert_eq!(spec.name.as_deref(), Some("web"));
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(1));
        let c = spec.task_template.unwrap().container_spec.unwrap();
        assert_eq!((c.env, c.command, c.args), (None, None, None));
        assert_eq!(spec.endpoint_spec.unwrap().ports, None);
    }

    #[test]
    fn service_name_overrides_metadata_name() {
        let spec = service_spec(&from_yaml(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: web}\nspec: {image: x, serviceName: front}",
        ));
        assert_eq!(spec.name.as_deref(), Some("front"));
    }
}
