//! swarm-operator: reconciles swarmoperator.io resources into Docker Swarm objects.
//!
//! ```text
//!  SwarmService (Kubernetes) --reconcile--> service::build  --> swarm::Engine --> Swarm service
//!        ^                                  service::diff          |            (owner labels)
//!        +------ status (conditions) <----- service::tasks <-------+ tasks
//! ```

pub mod cluster;
pub mod conditions;
pub mod context;
pub mod data;
pub mod error;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod network;
pub mod queue;
pub mod service;
pub mod status;
pub mod swarm;
pub mod units;

pub use context::{Context, Settings};
pub use error::Error;
