//! Bad input, the way users get it wrong, across every kind: what can be judged without the swarm
//! is refused at `kubectl apply` naming the field; what only the swarm can judge goes
//! `Stalled/InvalidSpec` naming the field, with one Warning event, nothing created and no retry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use swarm_operator_e2e::{TestEnv, condition, http_get, sample, test_image};

/// (what a user did, kind, metadata.name, spec, what the refusal must name).
const REFUSED_AT_APPLY: &[(&str, &str, &str, &str, &str)] = &[
    (
        "image with uppercase repository",
        "SwarmService",
        "bad",
        "{image: MyApp/web:1}",
        "spec.image",
    ),
    (
        "image with a space",
        "SwarmService",
        "bad",
        "{image: 'nginx :1'}",
        "spec.image",
    ),
    ("empty image", "SwarmService", "bad", "{image: ''}", "spec.image"),
    (
        "digest too short",
        "SwarmService",
        "bad",
        "{image: 'app@sha256:abc'}",
        "spec.image",
    ),
    (
        "metadata.name with a dot",
        "SwarmService",
        "a.b",
        "{image: nginx:1}",
        "metadata.name",
    ),
    (
        "serviceName with a dot",
        "SwarmService",
        "bad",
        "{image: nginx:1, serviceName: a.b}",
        "spec.serviceName",
    ),
    (
        "serviceName too long",
        "SwarmService",
        "bad",
        "{image: nginx:1, serviceName: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx}",
        "spec.serviceName",
    ),
    (
        "env name empty",
        "SwarmService",
        "bad",
        "{image: nginx:1, env: [{name: '', value: x}]}",
        "spec.env",
    ),
    (
        "env name with =",
        "SwarmService",
        "bad",
        "{image: nginx:1, env: [{name: 'A=B', value: x}]}",
        "spec.env",
    ),
    (
        "negative replicas",
        "SwarmService",
        "bad",
        "{image: nginx:1, replicas: -1}",
        "spec.replicas",
    ),
    (
        "too many replicas",
        "SwarmService",
        "bad",
        "{image: nginx:1, replicas: 100000}",
        "spec.replicas",
    ),
    (
        "replicas with Global",
        "SwarmService",
        "bad",
        "{image: nginx:1, mode: Global, replicas: 2}",
        "spec.replicas",
    ),
    (
        "totalCompletions with Replicated",
        "SwarmService",
        "bad",
        "{image: nginx:1, totalCompletions: 3}",
        "spec.maxConcurrent and spec.totalCompletions",
    ),
    (
        "too many completions",
        "SwarmService",
        "bad",
        "{image: nginx:1, mode: ReplicatedJob, totalCompletions: 100000}",
        "spec.totalCompletions",
    ),
    (
        "relative tmpfs target",
        "SwarmService",
        "bad",
        "{image: nginx:1, mounts: [{type: Tmpfs, target: relative/path}]}",
        "spec.mounts[0].target",
    ),
    (
        "bind without source",
        "SwarmService",
        "bad",
        "{image: nginx:1, mounts: [{type: Bind, target: /data}]}",
        "spec.mounts[0]",
    ),
    (
        "two mounts at one target",
        "SwarmService",
        "bad",
        "{image: nginx:1, mounts: [{type: Tmpfs, target: /a}, {type: Volume, target: /a}]}",
        "spec.mounts[1]",
    ),
    (
        "tmpfs with a source",
        "SwarmService",
        "bad",
        "{image: nginx:1, mounts: [{type: Tmpfs, source: x, target: /a}]}",
        "spec.mounts[0]",
    ),
    (
        "two secrets at one target",
        "SwarmService",
        "bad",
        "{image: nginx:1, secrets: [{name: a, target: x}, {name: b, target: x}]}",
        "spec.secrets",
    ),
    (
        "secret target defaulting onto another",
        "SwarmService",
        "bad",
        "{image: nginx:1, secrets: [{name: a}, {name: b, target: a}]}",
        "spec.secrets",
    ),
    (
        "two configs at one target",
        "SwarmService",
        "bad",
        "{image: nginx:1, configs: [{name: a, target: /etc/x}, {name: b, target: /etc/x}]}",
        "spec.configs",
    ),
    (
        "constraint with one =",
        "SwarmService",
        "bad",
        "{image: nginx:1, placement: {constraints: ['node.role=manager']}}",
        "spec.placement.constraints",
    ),
    (
        "constraint with unknown key",
        "SwarmService",
        "bad",
        "{image: nginx:1, placement: {constraints: ['role == manager']}}",
        "spec.placement.constraints",
    ),
    (
        "constraint without value",
        "SwarmService",
        "bad",
        "{image: nginx:1, placement: {constraints: ['node.role == ']}}",
        "spec.placement.constraints",
    ),
    (
        "memory in millibytes",
        "SwarmService",
        "bad",
        "{image: nginx:1, resources: {limits: {memory: 100m}}}",
        "spec.resources.limits.memory",
    ),
    (
        "memory limit below 4Mi",
        "SwarmService",
        "bad",
        "{image: nginx:1, resources: {limits: {memory: 1Mi}}}",
        "spec.resources.limits.memory",
    ),
    (
        "memory as plain small number",
        "SwarmService",
        "bad",
        "{image: nginx:1, resources: {limits: {memory: 1000}}}",
        "spec.resources.limits.memory",
    ),
    (
        "memory not a quantity",
        "SwarmService",
        "bad",
        "{image: nginx:1, resources: {limits: {memory: lots}}}",
        "spec.resources.limits.memory",
    ),
    (
        "memory reservation above limit",
        "SwarmService",
        "bad",
        "{image: nginx:1, resources: {limits: {memory: 64Mi}, reservations: {memory: 128Mi}}}",
        "spec.resources.reservations.memory",
    ),
    (
        "cpu zero",
        "SwarmService",
        "bad",
        "{image: nginx:1, resources: {limits: {cpu: '0'}}}",
        "spec.resources.limits.cpu",
    ),
    (
        "cpu absurd",
        "SwarmService",
        "bad",
        "{image: nginx:1, resources: {limits: {cpu: '100000'}}}",
        "spec.resources.limits.cpu",
    ),
    (
        "cpu reservation above limit",
        "SwarmService",
        "bad",
        "{image: nginx:1, resources: {limits: {cpu: 500m}, reservations: {cpu: '1'}}}",
        "spec.resources.reservations.cpu",
    ),
    (
        "ulimit soft above hard",
        "SwarmService",
        "bad",
        "{image: nginx:1, ulimits: [{name: nofile, soft: 4096, hard: 1024}]}",
        "soft limit",
    ),
    (
        "healthcheck interval below 1ms",
        "SwarmService",
        "bad",
        "{image: nginx:1, healthcheck: {test: [CMD, 'true'], interval: 500us}}",
        "spec.healthcheck.interval",
    ),
    (
        "healthcheck timeout below 1ms",
        "SwarmService",
        "bad",
        "{image: nginx:1, healthcheck: {test: [CMD, 'true'], timeout: 10ns}}",
        "spec.healthcheck.timeout",
    ),
    (
        "healthcheck test word",
        "SwarmService",
        "bad",
        "{image: nginx:1, healthcheck: {test: [curl, localhost]}}",
        "spec.healthcheck.test",
    ),
    (
        "duration without unit",
        "SwarmService",
        "bad",
        "{image: nginx:1, stopGracePeriod: '10'}",
        "spec.stopGracePeriod",
    ),
    (
        "negative retries",
        "SwarmService",
        "bad",
        "{image: nginx:1, healthcheck: {test: [CMD, 'true'], retries: -1}}",
        "spec.healthcheck.retries",
    ),
    (
        "hosts entry with a bad IP",
        "SwarmService",
        "bad",
        "{image: nginx:1, hosts: [{ip: 10.0.0.300, hostnames: [db]}]}",
        "spec.hosts[0].ip",
    ),
    (
        "dns nameserver not an IP",
        "SwarmService",
        "bad",
        "{image: nginx:1, dns: {nameservers: [dns.google]}}",
        "spec.dns.nameservers",
    ),
    (
        "unknown stop signal",
        "SwarmService",
        "bad",
        "{image: nginx:1, stopSignal: SIGFOO}",
        "spec.stopSignal",
    ),
    (
        "stop signal out of range",
        "SwarmService",
        "bad",
        "{image: nginx:1, stopSignal: '99'}",
        "spec.stopSignal",
    ),
    (
        "unknown capability",
        "SwarmService",
        "bad",
        "{image: nginx:1, capabilityAdd: [CAP_FLY]}",
        "spec.capabilityAdd",
    ),
    (
        "DNSRR with an ingress port",
        "SwarmService",
        "bad",
        "{image: nginx:1, endpointMode: DNSRR, ports: [{target: 80, published: 8080}]}",
        "spec.endpointMode",
    ),
    (
        "port out of range",
        "SwarmService",
        "bad",
        "{image: nginx:1, ports: [{target: 70000}]}",
        "spec.ports[0].target",
    ),
    (
        "port published twice",
        "SwarmService",
        "bad",
        "{image: nginx:1, ports: [{target: 80, published: 8080}, {target: 81, published: 8080}]}",
        "spec.ports",
    ),
    (
        "reserved label",
        "SwarmService",
        "bad",
        "{image: nginx:1, labels: {swarmoperator.io/owner-uid: x}}",
        "spec.labels",
    ),
    (
        "rollback that rolls back",
        "SwarmService",
        "bad",
        "{image: nginx:1, rollbackConfig: {failureAction: Rollback}}",
        "spec.rollbackConfig.failureAction",
    ),
    (
        "updateConfig on a job",
        "SwarmService",
        "bad",
        "{image: nginx:1, mode: ReplicatedJob, updateConfig: {parallelism: 1}}",
        "spec.updateConfig",
    ),
    (
        "max failure ratio above 1",
        "SwarmService",
        "bad",
        "{image: nginx:1, updateConfig: {maxFailureRatio: 2}}",
        "spec.updateConfig.maxFailureRatio",
    ),
    (
        "network subnet that does not parse",
        "SwarmNetwork",
        "bad-net",
        "{ipam: {config: [{subnet: 10.0.0.0/33}]}}",
        "spec.ipam.config[0].subnet",
    ),
    (
        "network gateway not an IP",
        "SwarmNetwork",
        "bad-net",
        "{ipam: {config: [{subnet: 10.10.0.0/24, gateway: gw}]}}",
        "spec.ipam.config[0].gateway",
    ),
    (
        "network name too long",
        "SwarmNetwork",
        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        "{}",
        "metadata.name",
    ),
    (
        "networkName with a space",
        "SwarmNetwork",
        "bad-net",
        "{networkName: 'a b'}",
        "spec.networkName",
    ),
    (
        "network reserved label",
        "SwarmNetwork",
        "bad-net",
        "{labels: {swarmoperator.io/x: y}}",
        "spec.labels",
    ),
    (
        "secret name too long for versions",
        "SwarmSecret",
        "ssssssssssssssssssssssssssssssssssssssssssssssssssssss",
        "{secretRef: {name: s, key: k}}",
        "metadata.name",
    ),
    (
        "secret without a source",
        "SwarmSecret",
        "bad-secret",
        "{}",
        "spec.secretRef",
    ),
    (
        "config with two sources",
        "SwarmConfig",
        "bad-config",
        "{data: x, configMapRef: {name: m, key: k}}",
        "spec",
    ),
    (
        "config without a source",
        "SwarmConfig",
        "bad-config",
        "{}",
        "spec",
    ),
    (
        "config name too long for versions",
        "SwarmConfig",
        "cccccccccccccccccccccccccccccccccccccccccccccccccccccc",
        "{data: x}",
        "metadata.name",
    ),
    (
        "cluster with an http endpoint",
        "SwarmCluster",
        "bad-cluster",
        "{endpoints: ['http://m:2375']}",
        "spec.endpoints",
    ),
    (
        "cluster without endpoints",
        "SwarmCluster",
        "bad-cluster",
        "{endpoints: []}",
        "spec.endpoints",
    ),
    (
        "cluster resync below 1s",
        "SwarmCluster",
        "bad-cluster",
        "{endpoints: ['tcp://m:2376'], insecure: true, resyncInterval: 100ms}",
        "spec.resyncInterval",
    ),
    (
        "cluster on plain tcp without tls",
        "SwarmCluster",
        "bad-cluster",
        "{endpoints: ['tcp://m:2375']}",
        "spec.tls",
    ),
];

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server: scripts/test.sh runs it"]
async fn bad_manifests_of_every_kind_are_refused_at_apply_naming_the_field() {
    let env = TestEnv::new("refusals").await;
    let mut failures = Vec::new();
    for (what, kind, name, spec, field) in REFUSED_AT_APPLY {
        let manifest = format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        );
        match env.kubectl_apply(&manifest, true) {
            Ok(()) => failures.push(format!("{what}: accepted\n{manifest}")),
            Err(msg) if !msg.contains(field) => {
                failures.push(format!("{what}: does not name {field}: {msg}"))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        REFUSED_AT_APPLY.len(),
        failures.join("\n")
    );
    // The rules refuse only what is wrong: images, names and values users write are accepted.
    for image in [
        "nginx",
        "docker.io/library/nginx:1.27",
        "registry.example:5000/team/app:2",
        "localhost:5000/app",
        "127.0.0.1:15000/swarm-operator-test/whoami:1",
        "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        let manifest = format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: good}}\nspec: {{image: '{image}',              resources: {{limits: {{memory: 200Mi, cpu: 500m}}, reservations: {{memory: 100Mi}}}},              placement: {{constraints: ['node.role == manager', 'node.labels.zone!=east']}}, stopSignal: SIGQUIT,              capabilityAdd: [NET_ADMIN], healthcheck: {{test: [CMD, 'true'], interval: 1ms}}}}\n"
        );
        env.kubectl_apply(&manifest, true)
            .unwrap_or_else(|e| panic!("{image} refused: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server: scripts/test.sh runs it"]
async fn a_service_mode_cannot_change() {
    let env = TestEnv::new("modechange").await;
    env.apply(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: web}\nspec: {image: x}",
    )
    .await;
    let refused = env
        .kubectl_apply(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: web}\nspec: {image: x, mode: Global}\n",
            false,
        )
        .unwrap_err();
    assert!(
        refused.contains("spec.mode") && refused.contains("immutable"),
        "{refused}"
    );
}

/// Engine writes the operator made so far, from its metrics.
async fn engine_writes(port: u16) -> f64 {
    let text = http_get(port, "/metrics").await.unwrap();
    sample(
        &text,
        "swarm_operator_engine_api_calls_total",
        &[r#"access="write""#],
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn what_only_the_swarm_refuses_stalls_once_naming_the_field() {
    let mut env = TestEnv::new("swarmrefuses").await;
    // A published port another service holds: only the swarm knows.
    let port = 20000 + (std::process::id() % 5000) as u16;
    let holder = format!("{}-holder", env.prefix);
    env.create_unmanaged_service(&holder, &test_image("1"), &[]).await;
    env.docker_cli(&[
        "service",
        "update",
        "--quiet",
        "--detach",
        "--publish-add",
        &format!("{port}:80"),
        &holder,
    ]);
    env.start_operator();
    let cases = [
        (
            format!("{}-port", env.prefix),
            format!("ports: [{{target: 80, published: {port}}}]"),
            "spec.ports",
        ),
        (
            format!("{}-hostname", env.prefix),
            "hostname: '{{.Nope}'".to_string(),
            "spec.hostname",
        ),
    ];
    for (name, spec, _) in &cases {
        env.apply(&format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\nspec: {{image: {}, replicas: 0, {spec}}}",
            test_image("1")
        ))
        .await;
    }
    for (name, _, field) in &cases {
        let message = env
            .wait_condition(name, "Stalled", "InvalidSpec", Duration::from_secs(10))
            .await;
        assert!(message.contains(field), "{name}: {message}");
        let svc = env.services().get(name).await.unwrap();
        assert_eq!(condition(&svc, "Ready").unwrap().status, "False");
        assert!(env.swarm_service(name).await.is_none(), "{name} was created");
    }
    // No retry: the Engine write counter stays flat, and each said it once.
    let writes = engine_writes(env.metrics_port).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        engine_writes(env.metrics_port).await,
        writes,
        "the operator kept writing"
    );
    let warnings = env.events("InvalidSpec").await;
    assert_eq!(warnings.len(), cases.len(), "one Warning each: {warnings:?}");
    assert!(warnings.iter().all(|(t, _)| t == "Warning"));
    env.docker_cli(&["service", "rm", &holder]);
}
