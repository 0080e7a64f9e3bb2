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
    runtime::{controller::Action, reflector::ObjectRef, watcher},
};
use swarm_operator_crds::{SwarmConfig, SwarmNetwork, SwarmSecret, SwarmService, SwarmServiceStatus};

use crate::{
    context::Context,
    controller::{scoped_api, touched, user_changes_controller},
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

/// Runs the SwarmService controller until a shutdown signal, over one namespace or all. Besides
/// its own resources and their Swarm services' events, it wakes the services that refer to a
/// SwarmNetwork, SwarmSecret, SwarmConfig, pull Secret, or Secret or ConfigMap its environment
/// reads, when that changes (a new version, Ready at last, credentials or values created or changed).
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>, concurrency: u16) {
    let queue = ctx.queues.of::<SwarmService>();
    let api = scoped_api::<SwarmService>(ctx.client.clone(), namespace);
    let controller = user_changes_controller(api, queue.clone());
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
    let controller = controller
        .watches_stream(
            touched(
                scoped_api::<SwarmSecret>(client.clone(), namespace),
                watcher::Config::default(),
            ),
            move |o: SwarmSecret| {
                let name = o.name_any();
                by_secret(o.namespace(), &|svc| {
                    svc.spec.secrets.iter().any(|r| r.name == name)
                })
            },
        )
        .watches_stream(
            touched(
                scoped_api::<SwarmConfig>(client.clone(), namespace),
                watcher::Config::default(),
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
                scoped_api::<PartialObjectMeta<ConfigMap>>(client.clone(), namespace),
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
            touched(
                scoped_api::<SwarmNetwork>(client, namespace),
                watcher::Config::default(),
            ),
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
