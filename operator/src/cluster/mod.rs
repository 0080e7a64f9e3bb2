//! The SwarmCluster controller: reports how each swarm is reached and how healthy it is (Ready,
//! QuorumAtRisk, `docker node ls`), and keeps its join tokens in a Secret when asked. The
//! connections themselves live in `crate::connections`.

mod health;
mod join_tokens;
mod reconcile;

pub use reconcile::{controller, run, watched};
