//! swarm-operator: reconciles swarmoperator.io resources into Docker Swarm objects. See
//! `docs/architecture.md` for the picture; in short:
//!
//! ```text
//!  SwarmService ─┐                               ┌─ service/  dereference → build → plan → apply → status
//!  SwarmNetwork ─┼─ controller (watch, queue) ─► pass (finalizer, failure, Stalled once) ─┼─ network/
//!  SwarmSecret  ─┤                               └─ data/
//!  SwarmConfig  ─┘                                        │ Engine calls
//!  SwarmCluster ── cluster/ (health)      connections/ ──► swarm::Engine ──► Docker Engine API
//!  SwarmNode ───── node/ (discovery, docker node update)
//! ```

pub mod api_client;
pub mod cause;
pub mod cluster;
pub mod conditions;
pub mod connections;
pub mod context;
pub mod controller;
pub mod data;
pub mod error;
pub mod expiring;
pub mod labels;
pub mod leader;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod node;
pub mod pass;
pub mod queue;
pub mod recorder;
pub mod service;
pub mod stack;
pub mod status;
pub mod swarm;
pub mod write;

pub use context::{Context, Settings};
pub use error::Error;
