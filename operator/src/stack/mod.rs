//! SwarmStack: a stack file as `docker stack deploy` takes it, compiled into the kinds that exist
//! (issue 14). What is here so far: the file's variable interpolation and its units, by the CLI's rules.

pub mod interpolate;
pub mod units;
