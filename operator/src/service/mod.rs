//! SwarmService: one Swarm service, as `docker service create` would make it. The pass reads as
//! the pipeline every kind follows (see `crate::pass`):
//!
//! ```text
//!  dereference.rs ─► build.rs ─► plan.rs ─► apply.rs ─► status.rs        cleanup.rs on delete
//!  networks, data    ServiceSpec  Create/     Engine      conditions from
//!  versions, pull    (pure)       Converge/   writes,     tasks.rs + report.rs
//!  credentials                    Conflict    events      (pure)
//!                                 (pure; diff.rs compares)
//! ```

mod apply;
pub mod build;
mod cleanup;
mod dereference;
pub mod diff;
pub mod env;
mod history;
pub mod placement;
pub mod plan;
pub mod registry_auth;
pub mod report;
mod status;
pub mod tasks;

use std::sync::Arc;

use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        controller::Action,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use std::hash::{Hash, Hasher};

use swarm_operator_crds::{
    SwarmConfig, SwarmNetwork, SwarmSecret, SwarmService, SwarmServiceStatus, VersionedStatus,
};

use crate::{
    context::Context,
    controller::{scoped_api, stored, touched, user_changes_controller_sharing},
    error::Error,
    pass::{Outcome, Reconciled},
};

impl Reconciled for SwarmService {
    type Status = SwarmServiceStatus;
    type Facts = status::Facts;

    fn swarm_name(&self) -> String {
        self.service_name()
    }
    fn concerns(&self, kind: &str, name: &str) -> bool {
        kind == "service" && name == self.service_name()
    }
    fn status(&self) -> Option<&SwarmServiceStatus> {
        self.status.as_ref()
    }
    fn facts_before(&self) -> status::Facts {
        status::Facts::before(self)
    }
    fn status_with(&self, facts: status::Facts, conditions: Vec<Condition>) -> SwarmServiceStatus {
        status::status(self, facts, conditions)
    }
    async fn converge(&self, ctx: &Context) -> Result<Outcome<status::Facts>, Error> {
        apply::converge(self, ctx).await
    }
    async fn cleanup(&self, ctx: &Context) -> Result<Action, Error> {
        cleanup::cleanup(self, ctx).await
    }
}

/// What of a SwarmNetwork its services depend on: its spec, deletion, readiness and Swarm ID.
/// Not the services its status lists, which change as each of them joins: a deploy of N
/// services on one network would otherwise wake all of them N times.
fn network_in_use(net: &SwarmNetwork) -> Option<u64> {
    let status = net.status.as_ref();
    let id = status.and_then(|s| s.network_id.as_deref());
    Some(dependency_hash(net, status.map(|s| s.conditions.as_slice()), &id))
}

/// What of a SwarmSecret or SwarmConfig its services depend on: its spec, deletion, readiness
/// and versions (not the services each version lists).
fn versions_in_use<K: kube::Resource>(obj: &K, status: Option<&VersionedStatus>) -> Option<u64> {
    let versions: Vec<(&str, &str)> = status
        .iter()
        .flat_map(|s| &s.versions)
        .map(|v| (v.swarm_name.as_str(), v.swarm_id.as_str()))
        .collect();
    Some(dependency_hash(
        obj,
        status.map(|s| s.conditions.as_slice()),
        &versions,
    ))
}

fn dependency_hash<K: kube::Resource>(obj: &K, conditions: Option<&[Condition]>, what: &impl Hash) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    obj.meta().generation.hash(&mut hasher);
    obj.meta().deletion_timestamp.is_some().hash(&mut hasher);
    let ready = conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == swarm_operator_crds::conditions::READY)
        .map(|c| (c.status.as_str(), c.observed_generation));
    ready.hash(&mut hasher);
    what.hash(&mut hasher);
    hasher.finish()
}

/// The SwarmNetworks, SwarmSecrets and SwarmConfigs of a scope, kept by the watches that wake
/// the services using them. A pass reads what its service refers to here: a GET for each, each
/// pass, would cost the API server as much as the service's own status write, and a network's
/// status grows with the services on it.
#[derive(Clone)]
pub struct DependencyStores {
    pub networks: Store<SwarmNetwork>,
    pub secrets: Store<SwarmSecret>,
    pub configs: Store<SwarmConfig>,
}

/// Runs the SwarmService controller until a shutdown signal, over one namespace or all. Besides
/// its own resources and their Swarm services' events, it wakes the services that refer to a
/// SwarmNetwork, SwarmSecret, SwarmConfig, pull Secret, or Secret or ConfigMap its environment
/// reads, when that changes (a new version, Ready at last, credentials or values created or changed).
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    concurrency: u16,
    stacks: crate::stack::controller::ServicesForStacks,
) {
    let queue = ctx.queues.of::<SwarmService>();
    let api = scoped_api::<SwarmService>(ctx.client.clone(), namespace);
    let stack_children = stacks.touched();
    let controller = user_changes_controller_sharing(api, queue.clone(), stacks.writer, stack_children);
    let services = controller.store();
    // Services in `ns` for which `refers` holds: woken when the object they refer to changes.
    let users = move |ns: Option<String>, refers: &dyn Fn(&SwarmService) -> bool| {
        queue.requested(
            services
                .state()
                .into_iter()
                .filter(|svc| svc.namespace() == ns && refers(svc))
                .map(|svc| ObjectRef::from_obj(svc.as_ref())),
        )
    };
    let (by_secret, by_config, by_network, by_secret_data, by_config_map) =
        (users.clone(), users.clone(), users.clone(), users.clone(), users);
    let client = ctx.client.clone();
    let (secrets, secrets_changed) = stored(
        scoped_api::<SwarmSecret>(client.clone(), namespace),
        watcher::Config::default(),
    );
    let (configs, configs_changed) = stored(
        scoped_api::<SwarmConfig>(client.clone(), namespace),
        watcher::Config::default(),
    );
    let (networks, networks_changed) = stored(
        scoped_api::<SwarmNetwork>(client.clone(), namespace),
        watcher::Config::default(),
    );
    let stores = DependencyStores {
        networks,
        secrets,
        configs,
    };
    ctx.serve_service_dependencies(namespace, stores);
    let controller = controller
        .watches_stream(
            secrets_changed.predicate_filter(
                |o: &SwarmSecret| versions_in_use(o, o.status.as_ref()),
                Default::default(),
            ),
            move |o: SwarmSecret| {
                let name = o.name_any();
                by_secret(o.namespace(), &|svc| {
                    svc.spec.secrets.iter().any(|r| r.name == name)
                })
            },
        )
        .watches_stream(
            configs_changed.predicate_filter(
                |o: &SwarmConfig| versions_in_use(o, o.status.as_ref()),
                Default::default(),
            ),
            move |o: SwarmConfig| {
                let name = o.name_any();
                by_config(o.namespace(), &|svc| {
                    svc.spec.configs.iter().any(|r| r.name == name)
                })
            },
        )
        // Creating or fixing the Secret an imagePullSecret names sends the credentials at once;
        // a Secret or ConfigMap the environment reads rolls the service when it changes.
        .watches_stream(
            // Metadata only: values are read when a service needs them, never held.
            touched(
                scoped_api::<PartialObjectMeta<Secret>>(client.clone(), namespace),
                watcher::Config::default(),
            ),
            move |s: PartialObjectMeta<Secret>| {
                let name = s.name_any();
                by_secret_data(s.namespace(), &|svc| {
                    svc.spec.image_pull_secrets.iter().any(|r| r.name == name)
                        || env::reads(svc, env::SourceKind::Secret, &name)
                })
            },
        )
        .watches_stream(
            touched(
                scoped_api::<PartialObjectMeta<ConfigMap>>(client, namespace),
                watcher::Config::default(),
            ),
            move |m: PartialObjectMeta<ConfigMap>| {
                let name = m.name_any();
                by_config_map(m.namespace(), &|svc| {
                    env::reads(svc, env::SourceKind::ConfigMap, &name)
                })
            },
        )
        .watches_stream(
            networks_changed.predicate_filter(network_in_use, Default::default()),
            move |net: SwarmNetwork| {
                let name = net.name_any();
                by_network(net.namespace(), &|svc| {
                    svc.spec
                        .networks
                        .iter()
                        .any(|n| n.external != Some(true) && n.name == name)
                })
            },
        );
    crate::pass::run(controller, ctx, concurrency).await;
}
