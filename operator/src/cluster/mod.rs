//! The SwarmCluster controller: reports how each swarm is reached and how healthy it is (Ready,
//! QuorumAtRisk, `docker node ls`). The connections themselves live in `crate::connections`.

mod health;
mod reconcile;

pub use reconcile::{controller, run};
