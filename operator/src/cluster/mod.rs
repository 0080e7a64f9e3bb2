//! SwarmClusters: how each swarm is reached and how healthy it is.
//!
//! ```text
//!  SwarmService ─┐ clusterRef (or "default")
//!  SwarmNetwork ─┼──────────────► Clusters ──► Connection ──► Engine (active endpoint)
//!  SwarmSecret  ─┤                  │ store of        │ endpoints in order,
//!  SwarmConfig  ─┘                  │ SwarmClusters   │ failover on unhealthy calls
//!                                   └─ fallback: the --docker-host engine when no "default" exists
//! ```

mod connection;
mod events;
mod health;
mod reconcile;
mod registry;

pub use connection::{Connection, Unavailable};
pub use events::{Hub, SwarmEvent, follow_all, hub, triggers};
pub use reconcile::{controller, run};
pub use registry::Clusters;
