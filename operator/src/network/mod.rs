//! SwarmNetwork: one swarm-scoped overlay network. The pass (see `crate::pass`):
//!
//! ```text
//!  build.rs ─► plan.rs ─► apply.rs ─► status (here)        cleanup.rs on delete
//!  create      Create/    create once,  ID, driver, scope,   waits until no service
//!  request     Report/    report        users               uses it (plan::deletion)
//!  (pure)      Conflict
//! ```
//!
//! Swarm networks cannot be changed: the CRD refuses changes to their fields, so there is no update.

mod apply;
pub mod build;
mod cleanup;
pub mod plan;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::controller::Action;
use swarm_operator_crds::{SwarmNetwork, SwarmNetworkStatus};

use crate::{
    context::Context,
    controller::{scoped_api, user_changes_controller},
    error::Error,
    pass::{Outcome, Reconciled},
};

/// What the status reports of the Swarm network besides the conditions.
#[derive(Default)]
pub struct Facts {
    pub network_id: Option<String>,
    pub driver: Option<String>,
    pub scope: Option<String>,
    /// Services whose tasks join it.
    pub services: Vec<String>,
}

impl Reconciled for SwarmNetwork {
    type Status = SwarmNetworkStatus;
    type Facts = Facts;

    fn swarm_name(&self) -> String {
        self.network_name()
    }
    fn concerns(&self, kind: &str, name: &str) -> bool {
        kind == "network" && name == self.network_name()
    }
    fn status(&self) -> Option<&SwarmNetworkStatus> {
        self.status.as_ref()
    }
    fn facts_before(&self) -> Facts {
        let previous = self.status.clone().unwrap_or_default();
        Facts {
            network_id: previous.network_id,
            driver: previous.driver,
            scope: previous.scope,
            services: previous.services,
        }
    }
    fn status_with(&self, facts: Facts, conditions: Vec<Condition>) -> SwarmNetworkStatus {
        SwarmNetworkStatus {
            observed_generation: self.metadata.generation,
            conditions,
            // Set by the pass (see pass::write_status).
            swarm: None,
            network_name: Some(self.network_name()),
            network_id: facts.network_id,
            driver: facts.driver,
            scope: facts.scope,
            services: facts.services,
        }
    }
    async fn converge(&self, ctx: &Context) -> Result<Outcome<Facts>, Error> {
        apply::converge(self, ctx).await
    }
    async fn cleanup(&self, ctx: &Context) -> Result<Action, Error> {
        cleanup::cleanup(self, ctx).await
    }
}

/// Runs the SwarmNetwork controller until a shutdown signal, over one namespace or all.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>, concurrency: u16) {
    let api = scoped_api::<SwarmNetwork>(ctx.client.clone(), namespace);
    let controller = user_changes_controller(api, ctx.queues.of::<SwarmNetwork>());
    crate::pass::run(controller, ctx, concurrency).await;
}
