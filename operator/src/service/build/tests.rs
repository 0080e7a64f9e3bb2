//! build.rs from the YAML fixture and field by field.
use super::*;
use crate::labels::{OWNER_NAME, OWNER_NAMESPACE, OWNER_UID};

fn build(svc: &SwarmService) -> ServiceSpec {
    service_spec(svc, &Resolved::default()).unwrap()
}

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
    let spec = build(&from_yaml(WHOAMI));
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

/// Every field of tests/fixtures/every-field.yaml, as the Engine API takes it.
#[test]
fn every_field_group_translates_to_the_engine_form() {
    let svc = from_yaml(include_str!("../../../../tests/fixtures/every-field.yaml"));
    let spec = serde_json::to_value(build(&svc)).unwrap();
    let expected = serde_json::json!({
        "Name": "every-field",
        "Labels": {"team": "web", OWNER_UID: "uid-1", OWNER_NAMESPACE: "", OWNER_NAME: "every-field"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "swarm-operator-test/whoami:1",
                "Labels": {"tier": "front"},
                "Command": ["/bin/sh", "-c"],
                "Args": ["trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"],
                "Hostname": "web-{{.Task.Slot}}",
                "Env": ["GREETING=hello"],
                "Dir": "/www",
                "User": "root",
                "Groups": ["nogroup"],
                "TTY": true,
                "ReadOnly": true,
                "Mounts": [
                    {"Target": "/scratch", "Type": "tmpfs", "TmpfsOptions": {"SizeBytes": 16777216, "Mode": 448}},
                    {"Target": "/data", "Source": "every-field-data", "Type": "volume",
                     "VolumeOptions": {"Labels": {"a": "b"}, "DriverConfig": {"Name": "local"}}},
                    {"Target": "/host-tmp", "Source": "/tmp", "Type": "bind", "ReadOnly": true}
                ],
                "StopSignal": "SIGTERM",
                "StopGracePeriod": 3_000_000_000i64,
                "HealthCheck": {"Test": ["CMD", "wget", "-qO-", "http://127.0.0.1:80/"], "Interval": 2_000_000_000i64,
                                "Timeout": 1_500_000_000i64, "Retries": 3, "StartPeriod": 1_000_000_000i64},
                "Hosts": ["10.1.2.3 db.internal db"],
                "DNSConfig": {"Nameservers": ["10.0.0.2"], "Search": ["example.internal"], "Options": ["ndots:2"]},
                "Init": true,
                "Sysctls": {"net.core.somaxconn": "1024"},
                "CapabilityAdd": ["CAP_NET_ADMIN"],
                "CapabilityDrop": ["CAP_MKNOD"],
                "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
            },
            "Resources": {
                "Limits": {"NanoCPUs": 500_000_000i64, "MemoryBytes": 67_108_864i64, "Pids": 100},
                "Reservations": {"NanoCPUs": 100_000_000i64, "MemoryBytes": 8_388_608i64}
            },
            "RestartPolicy": {"Condition": "on-failure", "Delay": 2_000_000_000i64, "MaxAttempts": 3, "Window": 60_000_000_000i64},
            "Placement": {"Constraints": ["node.role == manager"],
                          "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}], "MaxReplicas": 2},
            "LogDriver": {"Name": "json-file", "Options": {"max-size": "1m"}}
        },
        "Mode": {"Replicated": {"Replicas": 2}},
        "UpdateConfig": {"Parallelism": 1, "Delay": 1_000_000_000i64, "FailureAction": "rollback",
                         "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0.5, "Order": "start-first"},
        "RollbackConfig": {"Parallelism": 2, "Delay": 0, "FailureAction": "pause",
                           "Monitor": 90_000_000_000i64, "MaxFailureRatio": 0.0, "Order": "stop-first"},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishMode": "host"}]}
    });
    assert_eq!(spec, expected);
}

#[test]
fn networks_are_attached_by_resolved_id() {
    let yaml = "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: n}\nspec: {image: x, \
                networks: [{name: backend, external: true, aliases: [db], driverOptions: {k: v}}]}";
    let resolved = Resolved {
        networks: HashMap::from([("backend".to_string(), "net-id-1".to_string())]),
        ..Default::default()
    };
    let spec = service_spec(&from_yaml(yaml), &resolved).unwrap();
    assert_eq!(
        serde_json::to_value(spec.task_template.unwrap().networks).unwrap(),
        serde_json::json!([{"Target": "net-id-1", "Aliases": ["db"], "DriverOpts": {"k": "v"}}])
    );
    assert_eq!(
        service_spec(&from_yaml(yaml), &Resolved::default())
            .unwrap_err()
            .field,
        "networks[0].name"
    );
}

#[test]
fn modes_translate() {
    let with = |extra: &str| {
        let yaml = format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: j}}\nspec: {{image: x, {extra}}}"
        );
        serde_json::to_value(build(&from_yaml(&yaml)).mode).unwrap()
    };
    assert_eq!(with("mode: Global"), serde_json::json!({"Global": {}}));
    assert_eq!(with("mode: GlobalJob"), serde_json::json!({"GlobalJob": {}}));
    assert_eq!(
        with("mode: ReplicatedJob, maxConcurrent: 2, totalCompletions: 6"),
        serde_json::json!({"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 6}})
    );
}

#[test]
fn partial_update_config_gets_docker_cli_defaults() {
    let yaml = "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: u}\nspec: {image: x, updateConfig: {order: StartFirst}}";
    let u = serde_json::to_value(build(&from_yaml(yaml)).update_config).unwrap();
    assert_eq!(
        u,
        serde_json::json!({"Parallelism": 1, "Delay": 0, "FailureAction": "pause", "Monitor": 5_000_000_000i64,
                           "MaxFailureRatio": 0.0, "Order": "start-first"})
    );
}

#[test]
fn unparseable_quantity_names_the_field() {
    let yaml = "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: q}\nspec: {image: x, resources: {limits: {memory: 12Qi}}}";
    let err = service_spec(&from_yaml(yaml), &Resolved::default()).unwrap_err();
    assert_eq!(err.field, "resources.limits.memory");
    assert!(err.to_string().starts_with("spec.resources.limits.memory: "));
}

#[test]
fn defaults_name_from_metadata_and_one_replica() {
    let spec = build(&from_yaml(
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
    let spec = build(&from_yaml(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: web}\nspec: {image: x, serviceName: front}",
    ));
    assert_eq!(spec.name.as_deref(), Some("front"));
}
