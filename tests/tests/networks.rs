//! SwarmNetwork end to end, and SwarmServices that refer to one, on the real API server and swarm.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, time::Duration};

use kube::Api;
use rand::Rng;
use swarm_operator_crds::SwarmNetwork;
use swarm_operator_e2e::{TestEnv, kubectl_bin, test_image};

const WITHIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn service_waits_for_its_network_and_deleting_an_used_network_waits_for_it() {
    let mut env = TestEnv::new("network").await;
    env.start_operator();
    let networks: Api<SwarmNetwork> = Api::namespaced(env.client.clone(), &env.namespace);
    let web = format!("{}-web", env.prefix);
    let net_name = format!("{}-backend", env.prefix);
    let octet: u8 = rand::rng().random_range(100..250);

    // A service that refers to a SwarmNetwork not there yet waits, saying for what.
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {web}}}\n\
         spec: {{image: {}, replicas: 1, endpointMode: DNSRR, networks: [{{name: backend, aliases: [front]}}]}}",
        test_image("1")
    ))
    .await;
    let waiting = env
        .wait_condition(&web, "Reconciling", "WaitingForDependency", WITHIN)
        .await;
    assert!(waiting.contains("SwarmNetwork backend"), "{waiting}");
    assert!(env.swarm_service(&web).await.is_none(), "nothing half-applied");

    // The network appears: it is created as asked, and the service proceeds by itself.
    let manifest = format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: backend, namespace: {ns}}}\n\
         spec: {{networkName: {net_name}, attachable: true, labels: {{tier: data}}, \
         ipam: {{config: [{{subnet: 10.{octet}.0.0/24, gateway: 10.{octet}.0.1}}]}}}}",
        ns = env.namespace
    );
    env.kubectl_apply(&manifest, false).unwrap();
    let net = env
        .wait_for("SwarmNetwork Ready", WITHIN, || async {
            let n = networks.get("backend").await.map_err(|e| e.to_string())?;
            let ready = n.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            if ready {
                Ok(n)
            } else {
                Err(format!("{:?}", n.status))
            }
        })
        .await;
    let id = net.status.clone().unwrap().network_id.unwrap();
    let inspected: serde_json::Value =
        serde_json::from_str(&env.docker_cli(&["network", "inspect", &net_name])).unwrap();
    let engine = &inspected[0];
    assert_eq!(engine["Id"], id.as_str());
    assert_eq!(
        (engine["Driver"].as_str(), engine["Scope"].as_str()),
        (Some("overlay"), Some("swarm"))
    );
    assert_eq!(engine["Attachable"], true);
    assert_eq!(
        engine["IPAM"]["Config"][0]["Subnet"],
        format!("10.{octet}.0.0/24")
    );
    assert_eq!(engine["Labels"]["tier"], "data");
    assert_eq!(
        engine["Labels"]["swarmoperator.io/owner-uid"],
        net.metadata.uid.clone().unwrap().as_str()
    );

    env.wait_ready(&web, WITHIN).await;
    let attached = env.swarm_service_json(&web)["Spec"]["TaskTemplate"]["Networks"].clone();
    assert_eq!(
        attached,
        serde_json::json!([{"Target": id, "Aliases": ["front"]}])
    );

    // Swarm networks cannot change: the API server refuses it, naming the field.
    let out = Command::new(kubectl_bin())
        .args([
            "-n",
            &env.namespace,
            "patch",
            "swarmnetwork/backend",
            "--type=merge",
            "-p",
            r#"{"spec":{"internal":true}}"#,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("spec.internal is immutable"), "{msg}");

    // Deleting a network in use waits, saying for which services, and removes nothing.
    env.kubectl(&["delete", "swarmnetwork/backend", "--wait=false"]);
    let deleting = env
        .wait_for("the deletion to wait", WITHIN, || async {
            let n = networks.get("backend").await.map_err(|e| e.to_string())?;
            let c = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Reconciling").cloned());
            match c {
                Some(c) if c.status == "True" && c.reason == "Deleting" => Ok(c.message),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    assert!(deleting.contains(&web), "{deleting}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still_there = env.docker_cli(&["network", "ls", "-q", "--filter", &format!("name={net_name}")]);
    assert!(
        !still_there.trim().is_empty(),
        "the network was removed while in use"
    );
    assert!(networks.get_opt("backend").await.unwrap().is_some());

    // Once the service is gone, the deletion finishes by itself.
    env.kubectl(&["delete", &format!("swarmservice/{web}"), "--timeout=60s"]);
    env.wait_for("the network to be removed", WITHIN, || async {
        let gone_k8s = networks
            .get_opt("backend")
            .await
            .map_err(|e| e.to_string())?
            .is_none();
        let listed = env.docker_cli(&["network", "ls", "-q", "--filter", &format!("name={net_name}")]);
        if gone_k8s && listed.trim().is_empty() {
            Ok(())
        } else {
            Err(format!("k8s gone {gone_k8s}, swarm {listed}"))
        }
    })
    .await;
}

/// The counter scenario: a redis-like backend (a TCP echo, busybox nc) only on a private, internal
/// SwarmNetwork, and a web service on that network plus the routing mesh. The web tasks reach the
/// backend by its service name through Swarm DNS (DNSRR: no IPVS here); nothing outside the network
/// reaches it, and it publishes no port.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn backend_reachable_by_name_only_on_its_network() {
    let mut env = TestEnv::new("counter").await;
    env.start_operator();
    let redis = format!("{}-redis", env.prefix);
    let web = format!("{}-web", env.prefix);
    let published: i32 = rand::rng().random_range(20000..29000);
    env.kubectl_apply(&format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: backend, namespace: {ns}}}\n\
             spec: {{networkName: {p}-backend, internal: true}}",
            ns = env.namespace,
            p = env.prefix
        ),
        false,
    )
    .unwrap();
    env.apply(&format!(
        r#"
apiVersion: swarmoperator.io/v1alpha1
kind: SwarmService
metadata: {{name: {redis}}}
spec:
  image: {image}
  command: ["/bin/sh", "-c"]
  args: ["exec nc -ll -p 6379 -e cat"]
  healthcheck: {{test: ["NONE"]}}
  endpointMode: DNSRR
  networks: [{{name: backend}}]
"#,
        image = test_image("1")
    ))
    .await;
    env.apply(&format!(
        "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {web}}}\n\
         spec: {{image: {}, networks: [{{name: backend}}], ports: [{{target: 80, published: {published}}}]}}",
        test_image("1")
    ))
    .await;
    env.wait_ready(&redis, WITHIN).await;
    env.wait_ready(&web, WITHIN).await;

    // From a web task, the backend answers by its service name.
    let web_task = &env.running_tasks(&web).await[0];
    let web_container = web_task
        .status
        .as_ref()
        .unwrap()
        .container_status
        .as_ref()
        .unwrap()
        .container_id
        .clone()
        .unwrap();
    let echoed = env
        .wait_for("the backend to answer by name", WITHIN, || async {
            let out = Command::new("docker")
                .args([
                    "exec",
                    &web_container,
                    "sh",
                    "-c",
                    &format!("echo counter-42 | timeout 3 nc -w 2 {redis} 6379"),
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if text == "counter-42" {
                Ok(text)
            } else {
                Err(format!("{text:?} {}", String::from_utf8_lossy(&out.stderr)))
            }
        })
        .await;
    assert_eq!(echoed, "counter-42");

    // Nothing outside the network reaches the backend. Checked on what the Engine reports, never by
    // sending to its overlay address from outside the overlay: such a packet leaves this machine by
    // its default route (the overlay range is 10.0.0.0/8), toward hosts that are not ours.
    let redis_spec = env.swarm_service_json(&redis);
    assert!(
        redis_spec["Endpoint"]["Ports"]
            .as_array()
            .is_none_or(|p| p.is_empty()),
        "{}",
        redis_spec["Endpoint"]
    );
    let redis_task = env.running_tasks(&redis).await.remove(0);
    assert!(
        swarm_operator_e2e::task_host_ports(&redis_task).is_empty(),
        "host-mode ports"
    );
    let redis_container = redis_task
        .status
        .as_ref()
        .unwrap()
        .container_status
        .as_ref()
        .unwrap()
        .container_id
        .clone()
        .unwrap();
    let joined = env.docker_cli(&[
        "inspect",
        &redis_container,
        "--format",
        "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
    ]);
    assert_eq!(
        joined.split_whitespace().collect::<Vec<_>>(),
        [format!("{}-backend", env.prefix)],
        "networks joined"
    );
    // internal: no leg on docker_gwbridge, the bridge through which the host could reach a task.
    let gwbridge = env.docker_cli(&[
        "network",
        "inspect",
        "docker_gwbridge",
        "--format",
        "{{json .Containers}}",
    ]);
    assert!(
        !gwbridge.contains(&redis_container),
        "the backend has a docker_gwbridge endpoint"
    );

    // The web service is on the routing mesh (spec level: no IPVS here) and on the backend network.
    let web_spec = env.swarm_service_json(&web);
    let port = &web_spec["Endpoint"]["Ports"][0];
    assert_eq!(
        (port["PublishedPort"].as_i64(), port["PublishMode"].as_str()),
        (Some(published as i64), Some("ingress"))
    );
    let backend_id = env
        .wait_for("the network's ID", WITHIN, || async {
            let api: Api<SwarmNetwork> = Api::namespaced(env.client.clone(), &env.namespace);
            api.get("backend")
                .await
                .ok()
                .and_then(|n| n.status?.network_id)
                .ok_or_else(|| "no ID".to_string())
        })
        .await;
    assert_eq!(
        web_spec["Spec"]["TaskTemplate"]["Networks"][0]["Target"],
        backend_id.as_str()
    );
}

/// A service on a network gets its virtual IP from the swarm's allocator, which writes the new
/// service once more right after its creation. The operator takes that write for its own echo
/// when the inspection after the create already shows the address, and as news when it does not:
/// either way the status shows the Engine's virtual IPs well before a resync (30 s here) would.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn a_new_service_on_a_network_reports_its_virtual_ip() {
    let mut env = TestEnv::new("vip").await;
    env.start_operator();
    let octet: u8 = rand::rng().random_range(100..250);
    env.kubectl_apply(
        &format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmNetwork\nmetadata: {{name: store, namespace: {ns}}}\n\
             spec: {{networkName: {p}-store, ipam: {{config: [{{subnet: 10.{octet}.1.0/24}}]}}}}",
            ns = env.namespace,
            p = env.prefix
        ),
        false,
    )
    .unwrap();
    // Several at once, so that some inspections come before the allocator's write.
    let names: Vec<String> = (0..8).map(|i| format!("{}-api-{i}", env.prefix)).collect();
    for name in &names {
        env.apply(&format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {name}}}\n\
             spec: {{image: {}, replicas: 0, networks: [{{name: store}}]}}",
            test_image("1")
        ))
        .await;
    }
    for name in &names {
        env.wait_ready(name, WITHIN).await;
    }
    for name in &names {
        let engine = env.swarm_service_json(name)["Endpoint"]["VirtualIPs"].clone();
        let on_swarm: Vec<(String, String)> = engine
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|v| {
                (
                    v["NetworkID"].as_str().unwrap_or_default().to_string(),
                    v["Addr"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert_eq!(on_swarm.len(), 1, "{name}: the Engine gave one address: {engine}");
        assert!(
            on_swarm[0].1.starts_with(&format!("10.{octet}.1.")),
            "{name}: {on_swarm:?}"
        );
        env.wait_for(
            &format!("{name}'s status to show its virtual IP"),
            Duration::from_secs(10),
            || async {
                let svc = env.services().get(name).await.map_err(|e| e.to_string())?;
                let reported: Vec<(String, String)> = svc
                    .status
                    .and_then(|s| s.endpoint)
                    .map(|e| e.virtual_ips)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| (v.network_id, v.address))
                    .collect();
                if reported == on_swarm {
                    Ok(())
                } else {
                    Err(format!("{reported:?}"))
                }
            },
        )
        .await;
    }
}
