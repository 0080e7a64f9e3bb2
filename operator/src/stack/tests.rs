//! The stack compiler from whole files: what `docker stack deploy` would make, what it refuses,
//! and a fuzz run that only asks for no panic.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::ObjectMeta;
use swarm_operator_crds::{
    SwarmStack, SwarmStackSpec,
    conditions::{READY, REASON_ROLLED_BACK, STALLED},
    service::{EndpointMode, FailureAction, PublishMode, SwarmServiceStatus, UpdateOrder},
};

use super::{
    Input, Output, StackError, compile,
    controller::{Change, plan, stack_owners, summary},
    objects::children,
};
use crate::conditions::Summary;

const SHOP: &str = r#"
version: "3.8"
services:
  front:
    image: "shop/front:${IMG_TAG:-1}"
    environment: [Z=1, A=2]
    ports: ["9090:90", "8080:80"]
    networks: [frontend]
    deploy:
      replicas: ${REPLICAS:-2}
      endpoint_mode: dnsrr
      update_config: {parallelism: 1, order: start-first, failure_action: rollback}
      resources: {limits: {memory: 200M}, reservations: {memory: 100M}}
  api:
    image: shop/api:1
    networks:
      backend: {aliases: [prod.api]}
    secrets: [b_secret, a_secret]
networks:
  frontend:
  backend: {external: true}
secrets:
  a_secret: {external: true}
  b_secret: {file: ./b, x-kubernetes: {secret: shop, key: b}}
"#;

fn compiled(text: &str, vars: &[(&str, &str)]) -> Result<Output, StackError> {
    let variables: BTreeMap<String, String> =
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    compile(&Input {
        stack: "prod",
        compose: text,
        variables: &variables,
        sources: &BTreeMap::new(),
        cluster_ref: None,
    })
}

fn refusal(text: &str) -> String {
    compiled(text, &[]).expect_err("refused").to_string()
}

#[test]
fn names_labels_networks_and_order_follow_the_cli() {
    let out = compiled(SHOP, &[("REPLICAS", "4")]).expect("compiles").compiled;
    let front = &out
        .services
        .iter()
        .find(|s| s.name == "front")
        .expect("front")
        .spec;
    assert_eq!(front.service_name.as_deref(), Some("prod_front"));
    assert_eq!(front.image, "shop/front:1");
    assert_eq!(front.replicas, Some(4));
    assert_eq!(
        front.labels.get("com.docker.stack.namespace").map(String::as_str),
        Some("prod")
    );
    assert_eq!(
        front.labels.get("com.docker.stack.image").map(String::as_str),
        Some("shop/front:1")
    );
    assert_eq!(
        front
            .container_labels
            .get("com.docker.stack.namespace")
            .map(String::as_str),
        Some("prod")
    );
    let env: Vec<&str> = front.env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(env, ["A", "Z"], "sorted as the CLI sorts them");
    let published: Vec<Option<i32>> = front.ports.iter().map(|p| p.published).collect();
    assert_eq!(published, [Some(8080), Some(9090)]);
    assert_eq!(front.ports[0].mode, PublishMode::Ingress);
    assert_eq!(front.endpoint_mode, Some(EndpointMode::DNSRR));
    let update = front.update_config.as_ref().expect("update_config");
    assert_eq!(
        (update.order, update.failure_action),
        (Some(UpdateOrder::StartFirst), Some(FailureAction::Rollback))
    );
    let limits = front
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(
        limits.memory.as_ref().map(|m| m.bytes()),
        Some(Ok(200 * 1024 * 1024)),
        "200M is 200 MiB"
    );
    assert_eq!(front.networks[0].name, "prod-frontend");
    assert_eq!(front.networks[0].aliases, ["front"]);

    let api = &out.services.iter().find(|s| s.name == "api").expect("api").spec;
    assert_eq!(api.networks[0].name, "backend");
    assert_eq!(api.networks[0].external, Some(true));
    assert_eq!(api.networks[0].aliases, ["prod.api", "api"]);
    let secrets: Vec<(&str, Option<&str>)> = api
        .secrets
        .iter()
        .map(|s| (s.name.as_str(), s.target.as_deref()))
        .collect();
    assert_eq!(
        secrets,
        [
            ("a-secret", Some("a_secret")),
            ("prod-b-secret", Some("b_secret"))
        ]
    );

    // Only the networks services use and that are not external; no default one, as all have networks.
    let networks: Vec<&str> = out.networks.iter().map(|n| n.resource.as_str()).collect();
    assert_eq!(networks, ["prod-frontend"]);
    assert_eq!(out.secrets.len(), 1, "external secrets are not created");
    assert_eq!(out.secrets[0].spec.secret_ref.name, "shop");
}

#[test]
fn a_service_without_networks_gets_the_default_overlay() {
    let out = compiled("services:\n  web:\n    image: nginx\n", &[])
        .expect("compiles")
        .compiled;
    assert_eq!(out.networks[0].spec.network_name.as_deref(), Some("prod_default"));
    assert_eq!(out.networks[0].spec.driver.as_deref(), Some("overlay"));
    assert_eq!(out.services[0].spec.networks[0].name, "prod-default");
}

#[test]
fn refusals_name_the_key_and_line() {
    assert!(
        refusal("services:\n  web:\n    image: x\n    deploy:\n      replicaz: 2\n")
            .contains("services.web.deploy.replicaz (line 5)")
    );
    assert!(
        refusal("services:\n  web:\n    image: x\n    networks: [nope]\n")
            .contains("undefined network \"nope\"")
    );
    assert!(refusal("services:\n  web:\n    image: x:${TAG:?set TAG}\n").contains("set TAG"));
    let missing = refusal("services:\n  web:\n    image: x\n    secrets: [s]\nsecrets:\n  s: {file: ./s}\n");
    assert!(missing.contains("spec.sources.s.secret"), "{missing}");
    assert!(refusal("services:\n  web:\n    image: x\n    deploy:\n      rollback_config: {failure_action: rollback}\n").contains("rollback_config.failure_action"));
    assert!(
        refusal("services:\n  web:\n    image: x\n    volumes: [./data:/data]\n").contains("absolute path")
    );
    assert!(
        refusal("services:\n  web:\n    image: x\n    deploy: {mode: global, replicas: 2}\n")
            .contains("replicas can only be used")
    );
    assert!(refusal("- a\n- b\n").contains("mapping"));
    assert!(refusal("services:\n  web:\n    build: .\n").contains("image is required"));
}

#[test]
fn ignored_keys_and_unset_variables_are_reported() {
    let out = compiled(
        "services:\n  web:\n    image: x:$TAG\n    build: .\n    container_name: w\n",
        &[],
    )
    .expect("compiles");
    assert_eq!(out.ignored, ["services.web.build", "services.web.container_name"]);
    assert_eq!(out.unset, ["TAG"]);
}

fn stack() -> SwarmStack {
    SwarmStack {
        metadata: ObjectMeta {
            name: Some("prod".into()),
            namespace: Some("shop".into()),
            uid: Some("u-1".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: SwarmStackSpec {
            compose: SHOP.into(),
            ..Default::default()
        },
        status: None,
    }
}

#[test]
fn the_plan_applies_what_differs_and_prunes_what_left_the_file() {
    let s = stack();
    let desired = children(&s, compiled(SHOP, &[]).expect("compiles").compiled);
    assert!(
        desired.services[0]
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o[0].uid == "u-1")
    );
    // Nothing exists: everything is created (never applied over someone else's of that name).
    let first = plan(&desired, &Default::default(), true);
    assert_eq!(first.create.len(), desired.len());
    assert!(first.apply.is_empty());
    // Everything as desired: nothing to do.
    assert!(plan(&desired, &desired, true).is_empty());
    // A hand edit is put back.
    let mut edited = desired.clone();
    std::sync::Arc::make_mut(&mut edited.services[0]).spec.replicas = Some(9);
    let again = plan(&desired, &edited, true);
    assert!(matches!(again.apply.as_slice(), [Change::Service(s)] if s.spec.replicas != Some(9)));
    // A service removed from the file is pruned, unless prune is false.
    let mut fewer = desired.clone();
    let gone = fewer.services.remove(0);
    let pruned = plan(&fewer, &desired, true);
    assert!(matches!(pruned.prune.as_slice(), [Change::Service(s)] if s.metadata.name == gone.metadata.name));
    assert!(plan(&fewer, &desired, false).prune.is_empty());
}

#[test]
fn a_services_change_wakes_the_stack_that_owns_it_and_no_other() {
    use kube::runtime::reflector::ObjectRef;
    let s = stack();
    let desired = children(&s, compiled(SHOP, &[]).expect("compiles").compiled);
    let this = ObjectRef::<SwarmStack>::new("prod").within("shop");
    for child in &desired.services {
        assert_eq!(
            stack_owners(child).collect::<Vec<_>>(),
            std::slice::from_ref(&this)
        );
    }
    // A service of its own, or one another kind owns, wakes no stack.
    let mut other = desired.services[0].as_ref().clone();
    other.metadata.owner_references = None;
    assert_eq!(stack_owners(&other).count(), 0);
    let mut owner = desired.services[0].metadata.owner_references.clone().unwrap()[0].clone();
    owner.kind = "Deployment".into();
    owner.api_version = "apps/v1".into();
    other.metadata.owner_references = Some(vec![owner]);
    assert_eq!(stack_owners(&other).count(), 0);
}

#[test]
fn a_plan_holds_the_children_it_was_made_of_not_copies() {
    use std::sync::Arc;
    let s = stack();
    let desired = children(&s, compiled(SHOP, &[]).expect("compiles").compiled);
    let first = plan(&desired, &Default::default(), true);
    let made: Vec<&Arc<_>> = first
        .create
        .iter()
        .filter_map(|c| match c {
            Change::Service(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(made.len(), desired.services.len());
    // A stack of 1000 services held each of them in the plan a second time.
    for (planned, wanted) in made.iter().zip(&desired.services) {
        assert!(
            Arc::ptr_eq(planned, wanted),
            "{} copied",
            wanted.metadata.name.as_deref().unwrap_or_default()
        );
    }
    // So does the pruning of one that exists: the watch's own object.
    let pruned = plan(&Default::default(), &desired, true);
    assert!(
        pruned
            .prune
            .iter()
            .any(|c| matches!(c, Change::Service(s) if Arc::ptr_eq(s, &desired.services[0])))
    );
}

#[test]
fn new_services_wait_until_the_networks_secrets_and_configs_are_ready() {
    use crate::stack::controller::hold_new_services;
    let s = stack();
    let desired = children(&s, compiled(SHOP, &[]).expect("compiles").compiled);
    assert!(!desired.networks.is_empty(), "the shop has networks");
    // Nothing exists: the networks (and the rest) are made, the services wait.
    let mut first = plan(&desired, &Default::default(), true);
    let held = hold_new_services(&mut first, &desired, &Default::default());
    assert_eq!(held.len(), desired.services.len());
    assert!(first.create.iter().all(|c| !matches!(c, Change::Service(_))));
    assert!(!first.create.is_empty());
    // They exist but are not Ready yet: still held.
    let mut existing = desired.clone();
    existing.services.clear();
    let mut second = plan(&desired, &existing, true);
    assert_eq!(
        hold_new_services(&mut second, &desired, &existing).len(),
        desired.services.len()
    );
    // Ready at their generation: the services are made.
    let ready = vec![condition("Ready", "True", "Running")];
    for n in &mut existing.networks {
        let n = std::sync::Arc::make_mut(n);
        n.metadata.generation = Some(1);
        n.status = Some(swarm_operator_crds::SwarmNetworkStatus {
            conditions: ready.clone(),
            ..Default::default()
        });
    }
    for d in &mut existing.secrets {
        let d = std::sync::Arc::make_mut(d);
        d.metadata.generation = Some(1);
        d.status = Some(swarm_operator_crds::VersionedStatus {
            conditions: ready.clone(),
            ..Default::default()
        });
    }
    for d in &mut existing.configs {
        let d = std::sync::Arc::make_mut(d);
        d.metadata.generation = Some(1);
        d.status = Some(swarm_operator_crds::VersionedStatus {
            conditions: ready.clone(),
            ..Default::default()
        });
    }
    let mut third = plan(&desired, &existing, true);
    assert!(hold_new_services(&mut third, &desired, &existing).is_empty());
    assert_eq!(third.create.len(), desired.services.len());
}

#[test]
fn the_dry_run_checks_the_services_held_back_once() {
    use crate::stack::controller::{Plan, fingerprint, hold_new_services, to_check};
    let s = stack();
    let desired = children(&s, compiled(SHOP, &[]).expect("compiles").compiled);
    let services = |p: &Plan| {
        p.create
            .iter()
            .filter(|c| matches!(c, Change::Service(_)))
            .count()
    };
    // Nothing exists: the networks are written, the services wait for them, and all are checked.
    let mut first = plan(&desired, &Default::default(), true);
    let held = hold_new_services(&mut first, &desired, &Default::default());
    let (check, checked_then) = to_check(&first, &held, None);
    assert_eq!(
        checked_then,
        Some(fingerprint(held.iter())),
        "what the pass keeps"
    );
    assert_eq!(services(&check), desired.services.len());
    assert_eq!(check.create.len(), first.create.len() + held.len());
    // The pass that makes them, once the networks are Ready, does not ask again for the same ones.
    let mut made = Plan {
        create: held.clone(),
        ..Default::default()
    };
    let checked_then = checked_then.unwrap();
    assert!(to_check(&made, &[], Some(checked_then)).0.create.is_empty());
    // Nor does another pass while they are held back.
    assert_eq!(to_check(&first, &held, Some(checked_then)).0.create, first.create);
    // It does if any of them changed since, or nothing was checked.
    assert_eq!(services(&to_check(&made, &[], None).0), held.len());
    if let Some(Change::Service(svc)) = made.create.first_mut() {
        std::sync::Arc::make_mut(svc).spec.replicas = Some(7);
    }
    assert_eq!(services(&to_check(&made, &[], Some(checked_then)).0), held.len());
}

fn condition(type_: &str, status: &str, reason: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: "m".into(),
        observed_generation: Some(1),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ),
    }
}

#[test]
fn the_stack_is_ready_only_when_every_child_is_and_names_what_swarm_rolled_back() {
    let s = stack();
    let desired = children(&s, compiled(SHOP, &[]).expect("compiles").compiled);
    let mut existing = desired.clone();
    for svc in &mut existing.services {
        let svc = std::sync::Arc::make_mut(svc);
        svc.metadata.generation = Some(1);
        svc.status = Some(SwarmServiceStatus {
            conditions: vec![
                condition(READY, "True", "Running"),
                condition(STALLED, "False", "Running"),
            ],
            ..Default::default()
        });
    }
    for net in &mut existing.networks {
        let net = std::sync::Arc::make_mut(net);
        net.metadata.generation = Some(1);
        net.status = Some(swarm_operator_crds::SwarmNetworkStatus {
            conditions: vec![condition(READY, "True", "Running")],
            ..Default::default()
        });
    }
    for sec in &mut existing.secrets {
        let sec = std::sync::Arc::make_mut(sec);
        sec.metadata.generation = Some(1);
        sec.status = Some(swarm_operator_crds::VersionedStatus {
            conditions: vec![condition(READY, "True", "Running")],
            ..Default::default()
        });
    }
    assert!(
        summary(&desired, &existing).is_ready(),
        "{:?}",
        summary(&desired, &existing)
    );
    // A secret not there yet keeps it Reconciling.
    let mut waiting = existing.clone();
    waiting.secrets.clear();
    assert!(
        matches!(summary(&desired, &waiting), Summary::Reconciling { message, .. } if message.contains("secret prod-b-secret"))
    );
    // Swarm rolled `front` back.
    let front = existing
        .services
        .iter_mut()
        .find(|s| s.spec.service_name.as_deref() == Some("prod_front"))
        .expect("front");
    let front = std::sync::Arc::make_mut(front);
    front.status = Some(SwarmServiceStatus {
        conditions: vec![
            condition(READY, "False", REASON_ROLLED_BACK),
            condition(STALLED, "True", REASON_ROLLED_BACK),
        ],
        ..Default::default()
    });
    assert_eq!(
        summary(&desired, &existing),
        Summary::Stalled {
            reason: REASON_ROLLED_BACK,
            message: "Swarm rolled back prod_front".into()
        }
    );
}

mod fuzz {
    use proptest::prelude::*;

    use super::compiled;

    /// Fragments of stack files, to make files that are nearly right as well as garbage.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("services:\n".to_string()),
            Just("  web:\n".to_string()),
            Just("    image: x\n".to_string()),
            Just("    ports: [\"80:80\", {target: 1}]\n".to_string()),
            Just("    deploy: {replicas: ${N}, resources: {limits: {memory: 1k}}}\n".to_string()),
            Just("    volumes: [\"a:/b:ro\", {type: tmpfs, target: /t}]\n".to_string()),
            Just("    networks: {a: {aliases: [x]}}\n".to_string()),
            Just("    secrets: [s, {source: s, mode: 0777}]\n".to_string()),
            Just("    healthcheck: {test: x, disable: true}\n".to_string()),
            Just("networks: {a: }\n".to_string()),
            Just("secrets: {s: {external: true}}\n".to_string()),
            Just("x-a: &a {b: *a}\n".to_string()),
            "[ -~\n]{0,40}",
        ]
    }

    proptest! {
        // STACK_FUZZ_CASES runs it longer than the test suite does.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("STACK_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4000),
            ..ProptestConfig::default()
        })]

        #[test]
        fn never_panics_on_garbage(text in "[ -~\n\t]{0,200}") {
            let _ = compiled(&text, &[("N", "2")]);
        }

        #[test]
        fn never_panics_on_near_files(parts in proptest::collection::vec(fragment(), 0..12)) {
            let _ = compiled(&parts.concat(), &[("N", "x")]);
        }
    }
}

#[test]
fn what_a_pass_keeps_of_a_stack_is_in_vectors_of_its_own_size() {
    let desired = children(&stack(), compiled(SHOP, &[]).expect("compiles").compiled);
    assert_eq!(desired.services.capacity(), desired.services.len());
    for svc in &desired.services {
        let spec = &svc.spec;
        assert_eq!(
            spec.networks.capacity(),
            spec.networks.len(),
            "{:?}",
            svc.metadata.name
        );
        assert_eq!(
            spec.secrets.capacity(),
            spec.secrets.len(),
            "{:?}",
            svc.metadata.name
        );
        for attached in &spec.networks {
            assert_eq!(
                attached.aliases.capacity(),
                attached.aliases.len(),
                "{}",
                attached.name
            );
        }
    }
}
