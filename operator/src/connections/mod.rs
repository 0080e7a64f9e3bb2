//! How every kind reaches its swarm: the connection per SwarmCluster (endpoints in order, failover,
//! TLS), the registry that picks it by `clusterRef`, and the swarm event stream of each cluster.
//!
//! ```text
//!  SwarmService ─┐ clusterRef (or "default")
//!  SwarmNetwork ─┼──────────────► Clusters ──► Connection ──► Engine (active endpoint)
//!  SwarmSecret  ─┤                  │ store of        │ endpoints in order,
//!  SwarmConfig  ─┘                  │ SwarmClusters   │ failover on unhealthy calls
//!                                   └─ fallback: the --docker-host engine when no "default" exists
//! ```
//!
//! The SwarmCluster controller (`crate::cluster`) reports on these connections; it does not own them.

mod connection;
mod events;
mod registry;

pub use connection::{Connection, Unavailable};
pub use events::{Hub, SwarmEvent, follow_all, hub, triggers};
pub use registry::Clusters;
