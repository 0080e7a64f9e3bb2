//! One swarm's connection: its manager endpoints in order of preference, the TLS files, and the
//! endpoint in use. A call that finds the endpoint gone, not a manager, or without quorum marks it
//! unhealthy (see `Engine::call`); the next caller then probes the endpoints in order and moves
//! to the first that works. Nothing restarts and nothing is reconciled again because of the move:
//! the reconcile whose call failed retries, and its first step looks the object up by name.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tracing::{info, warn};

use crate::{
    cause::cause_chain,
    swarm::{Engine, EngineCalls, Snapshot, TlsFiles},
};

/// Longest a probe of one endpoint may take (connect, version, info, node list).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// After every endpoint failed, callers get that answer for this long instead of probing again,
/// so a thousand reconciles do not probe a dead swarm a thousand times.
const QUIET_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// No endpoint of the cluster can act for the swarm now.
#[derive(Debug, Clone, thiserror::Error)]
#[error("SwarmCluster {cluster} is unavailable: {message}")]
pub struct Unavailable {
    pub cluster: String,
    pub message: String,
}

pub struct Connection {
    name: String,
    endpoints: Vec<String>,
    tls: Option<TlsFiles>,
    active: Mutex<Option<Engine>>,
    /// Services, tasks and nodes listed once for all reconciles (see swarm/snapshot.rs).
    snapshot: Arc<Snapshot>,
    /// Held while probing; remembers when and why the last probe of every endpoint failed.
    selecting: tokio::sync::Mutex<Option<(Instant, String)>>,
    /// The swarm this cluster is (its ID), once known: a manager of another swarm is never used,
    /// whatever endpoint it answers on.
    swarm: Mutex<Option<String>>,
    calls: Arc<EngineCalls>,
}

impl Connection {
    /// `swarm`: the ID of the swarm this cluster is known to be, if any (from its status).
    pub fn new(
        name: &str,
        endpoints: Vec<String>,
        tls: Option<TlsFiles>,
        swarm: Option<String>,
        calls: Arc<EngineCalls>,
    ) -> Self {
        Connection {
            name: name.to_string(),
            endpoints,
            tls,
            active: Mutex::default(),
            snapshot: Arc::default(),
            selecting: tokio::sync::Mutex::default(),
            swarm: Mutex::new(swarm),
            calls,
        }
    }

    /// The ID of the swarm this cluster is, once a manager of it answered.
    pub fn swarm_id(&self) -> Option<String> {
        self.swarm.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether this connection was made from exactly these endpoints and TLS files.
    pub fn matches(&self, endpoints: &[String], tls: Option<&TlsFiles>) -> bool {
        self.endpoints == endpoints && self.tls.as_ref() == tls
    }

    /// A swarm event said `kind` object `name` changed (see [`Snapshot::event`]): whether it is
    /// news, not the echo of our own write.
    ///
    /// [`Snapshot::event`]: crate::swarm::Snapshot::event
    pub fn event(&self, kind: &str, name: &str) -> bool {
        crate::swarm::Part::of_event(kind).is_none_or(|part| self.snapshot.event(part, name))
    }

    /// Events may have been missed: the shared listing is made anew on the next read.
    pub async fn forget_listing(&self) {
        self.snapshot.reset().await;
    }

    fn current(&self) -> Option<Engine> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.as_ref().filter(|e| e.is_healthy()).cloned()
    }

    /// The engine of a working manager: the current one while it stays healthy, else the first
    /// endpoint, in order of preference, that answers as a manager of a swarm with quorum.
    pub async fn engine(&self) -> Result<Engine, Unavailable> {
        if let Some(engine) = self.current() {
            return Ok(engine);
        }
        let mut last_failure = self.selecting.lock().await;
        // Someone else may have found one while we waited for the lock.
        if let Some(engine) = self.current() {
            return Ok(engine);
        }
        if let Some((at, message)) = last_failure.as_ref()
            && at.elapsed() < QUIET_AFTER_FAILURE
        {
            return Err(self.unavailable(message.clone()));
        }
        let previous = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|e| e.host().to_string());
        // All at once, so endpoints that hang cost one probe timeout, not one each; the first in
        // order of preference that works wins.
        let probes = self
            .endpoints
            .iter()
            .map(|e| probe(e, self.tls.as_ref(), self.calls.clone()));
        let mut failures = Vec::new();
        for (endpoint, result) in self.endpoints.iter().zip(futures::future::join_all(probes).await) {
            let result =
                result.and_then(|(engine, swarm)| self.same_swarm(swarm.as_deref()).map(|()| engine));
            match result {
                Ok(engine) => {
                    if previous.as_deref() != Some(endpoint) {
                        info!(cluster = %self.name, endpoint, ?previous, api = %engine.api_version(), "using manager endpoint");
                        if previous.is_some() {
                            self.calls.metrics.failover(&self.name);
                        }
                    }
                    let engine = engine.with_snapshot(self.snapshot.clone());
                    *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(engine.clone());
                    *last_failure = None;
                    return Ok(engine);
                }
                Err(why) => failures.push(format!("{endpoint}: {why}")),
            }
        }
        let message = failures.join("; ");
        warn!(cluster = %self.name, %message, "no manager endpoint works");
        *last_failure = Some((Instant::now(), message.clone()));
        Err(self.unavailable(message))
    }

    /// Whether a manager of swarm `found` may serve this cluster: the first swarm seen is the
    /// cluster's, and a failover never moves to another one.
    fn same_swarm(&self, found: Option<&str>) -> Result<(), String> {
        let mut swarm = self.swarm.lock().unwrap_or_else(|p| p.into_inner());
        match (swarm.as_deref(), found) {
            (Some(ours), Some(theirs)) if ours != theirs => Err(format!(
                "a manager of another swarm ({theirs}), not of this cluster's ({ours}); never used"
            )),
            (None, Some(theirs)) => {
                *swarm = Some(theirs.to_string());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn unavailable(&self, message: String) -> Unavailable {
        Unavailable {
            cluster: self.name.clone(),
            message,
        }
    }
}

/// Connects to `endpoint` and checks it can act for the swarm: part of one, a manager, and its
/// swarm has a leader (listing nodes fails without quorum). Returns the engine and its swarm's ID.
async fn probe(
    endpoint: &str,
    tls: Option<&TlsFiles>,
    calls: Arc<EngineCalls>,
) -> Result<(Engine, Option<String>), String> {
    let attempt = async {
        let engine = Engine::connect(endpoint, tls, calls)
            .await
            .map_err(|e| cause_chain(&e))?;
        let info = engine.swarm_info().await.map_err(|e| e.engine_message())?;
        if let Some(why) = info.not_a_manager() {
            return Err(why);
        }
        engine.nodes().await.map_err(|e| e.engine_message())?;
        Ok((engine, info.swarm_id))
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(swarm: Option<&str>) -> Connection {
        let calls = EngineCalls::new(
            0,
            Arc::new(crate::metrics::Metrics::new()),
            crate::leader::Leadership::always(),
        );
        Connection::new("c", vec![], None, swarm.map(str::to_string), calls)
    }

    #[test]
    fn the_first_swarm_seen_is_the_clusters_and_another_is_never_used() {
        let fresh = connection(None);
        assert_eq!(fresh.same_swarm(Some("swarm-a")), Ok(()));
        assert!(
            fresh
                .same_swarm(Some("swarm-b"))
                .unwrap_err()
                .contains("another swarm (swarm-b)")
        );
        assert_eq!(fresh.same_swarm(Some("swarm-a")), Ok(()));
        let known = connection(Some("swarm-b"));
        assert!(
            known.same_swarm(Some("swarm-a")).is_err(),
            "known from status before any probe"
        );
    }
}
