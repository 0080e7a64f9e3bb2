//! The SwarmService controller: `observe -> build -> compare -> apply -> update_status`.
//! Only `reconcile.rs` touches the network; `build`, `diff` and `tasks` are pure.

pub mod build;
pub mod diff;
mod reconcile;
pub mod registry_auth;
pub mod report;
pub mod tasks;

pub use reconcile::{reconcile, run};
