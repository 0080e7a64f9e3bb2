//! Leader election on a `coordination.k8s.io` Lease, by client-go's leaderelection rules:
//!
//! - A standby judges the lease expired by **its own clock**: `leaseDurationSeconds` after the
//!   moment it last saw the lease's record change, never by comparing the holder's `renewTime`
//!   with its own wall clock (the two clocks need not agree).
//! - The holder renews every `retry` period; each attempt has a deadline. It may act only until
//!   `renew_deadline` (two thirds of the lease) after the start of its last successful renewal, by
//!   the monotonic clock, which keeps running while the process is frozen (SIGSTOP). A standby
//!   cannot take over before a full lease after it saw that renewal, so the holder has stopped
//!   first.
//! - Writes carry the resourceVersion read, so two candidates cannot both win.
//!
//! [`Leadership`] is what the writers consult: every Engine write (`swarm::Engine::call`) and every
//! Kubernetes write of the controllers (the [`WriteGate`] layer of their client) is refused once
//! it says no, even before the renewal loop notices, e.g. in the instant a frozen process resumes.
//!
//! `kube-lease-manager` was considered and not taken: it judges expiry by `renewTime +
//! leaseDurationSeconds` against the local wall clock, and takes an orphaned lease with patches
//! that carry no resourceVersion.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{PostParams, WatchParams},
};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// Whether this replica may write now.
pub struct Leadership {
    origin: Instant,
    /// Nanoseconds after `origin` until which this replica may write; 0: not at all.
    until: AtomicU64,
}

impl Leadership {
    /// A replica that leads only while its lease is renewed.
    pub fn elected() -> Arc<Self> {
        Arc::new(Leadership {
            origin: Instant::now(),
            until: AtomicU64::new(0),
        })
    }

    /// A replica that runs without leader election: it always leads.
    pub fn always() -> Arc<Self> {
        Arc::new(Leadership {
            origin: Instant::now(),
            until: AtomicU64::new(u64::MAX),
        })
    }

    /// True while this replica may act.
    pub fn holds(&self) -> bool {
        let until = self.until.load(Ordering::SeqCst);
        until != 0 && (self.origin.elapsed().as_nanos() as u64) < until
    }

    fn grant_until(&self, deadline: Instant) {
        let nanos = deadline.saturating_duration_since(self.origin).as_nanos() as u64;
        self.until.store(nanos.max(1), Ordering::SeqCst);
    }

    fn revoke(&self) {
        self.until.store(0, Ordering::SeqCst);
    }
}

/// The periods of the protocol, derived from the lease duration as client-go's defaults are
/// (15 s lease, 10 s renew deadline, 2 s retry).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub lease: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl Timing {
    pub fn from_lease(lease: Duration) -> Self {
        Timing {
            lease,
            renew_deadline: lease * 2 / 3,
            retry: (lease * 2 / 15).max(Duration::from_millis(100)),
        }
    }
}

/// What a candidate concludes from the lease as read.
#[derive(Debug, PartialEq)]
enum Judgement {
    Ours,
    HeldByOther,
    /// Nobody holds it, or its holder has not renewed it for a lease by our clock.
    Free,
}

/// The pure rule: `seen_since` is when this replica first saw the record as it is now.
fn judge(
    spec: &LeaseSpec,
    identity: &str,
    seen_since: Instant,
    now: Instant,
    default: Duration,
) -> Judgement {
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Judgement::Ours;
    }
    if holder.is_empty() {
        return Judgement::Free;
    }
    let lease = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(default);
    if now.saturating_duration_since(seen_since) >= lease {
        Judgement::Free
    } else {
        Judgement::HeldByOther
    }
}

pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    leadership: Arc<Leadership>,
    /// Where `leader` is shown: 1 while this replica holds the lease.
    metrics: Arc<Metrics>,
    /// The lease's record as last read, and since when (our clock) it has been so.
    observed: Mutex<Option<(LeaseSpec, Instant)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lost the leader lease {0}: not renewed within the renew deadline")]
    Lost(String),
}

impl LeaderElection {
    /// `client` must not carry the [`WriteGate`]: the lease is written while not yet leading.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
        leadership: Arc<Leadership>,
        metrics: Arc<Metrics>,
    ) -> Self {
        LeaderElection {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            leadership,
            metrics,
            observed: Mutex::new(None),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut waiting_logged = false;
        loop {
            let start = Instant::now();
            match self.attempt(self.timing.renew_deadline).await {
                Ok(Attempt::Held) => {
                    self.leadership.grant_until(start + self.timing.renew_deadline);
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    self.metrics.set_leader(true);
                    return;
                }
                Ok(Attempt::HeldByOther) if !waiting_logged => {
                    info!(lease = %self.name, "another replica leads; standing by");
                    waiting_logged = true;
                }
                Ok(Attempt::HeldByOther | Attempt::Raced) => {}
                Err(e) => warn!(lease = %self.name, error = %e, "leader election"),
            }
            // Wake early when the Lease changes (released or deleted), else retry on the period.
            let _ = tokio::time::timeout(self.timing.retry, self.lease_changes()).await;
        }
    }

    /// Renews the lease until this replica may no longer act: a renewal failed or timed out for
    /// the renew deadline, another replica holds the lease, or the process was frozen past it.
    /// Then the caller must stop acting (writes are refused already).
    pub async fn hold(&self) -> LeaseError {
        loop {
            tokio::time::sleep(self.timing.retry).await;
            if !self.leadership.holds() {
                warn!(lease = %self.name, "the renew deadline passed without a renewal");
                break;
            }
            let start = Instant::now();
            let remaining = self.remaining();
            match self.attempt(remaining).await {
                Ok(Attempt::Held) => self.leadership.grant_until(start + self.timing.renew_deadline),
                Ok(Attempt::HeldByOther) => {
                    warn!(lease = %self.name, "another replica holds the leader lease");
                    break;
                }
                Ok(Attempt::Raced) => {
                    warn!(lease = %self.name, "the renewal lost a race (the Lease changed or went); retrying")
                }
                Err(e) => warn!(lease = %self.name, error = %e, "could not renew the leader lease"),
            }
        }
        self.leadership.revoke();
        self.metrics.set_leader(false);
        LeaseError::Lost(self.name.clone())
    }

    /// Time left before the renew deadline of the last successful renewal.
    fn remaining(&self) -> Duration {
        let until = self.leadership.until.load(Ordering::SeqCst);
        let now = self.leadership.origin.elapsed().as_nanos() as u64;
        Duration::from_nanos(until.saturating_sub(now))
    }

    /// Gives the lease up on a clean shutdown, so a standby takes over at once rather than after
    /// the lease runs out.
    pub async fn release(&self) {
        self.leadership.revoke();
        self.metrics.set_leader(false);
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => info!(lease = %self.name, "released the leader lease"),
            Err(e) => warn!(lease = %self.name, error = %e, "could not release the leader lease"),
        }
    }

    async fn lease_changes(&self) {
        let params = WatchParams::default().fields(&format!("metadata.name={}", self.name));
        if let Ok(stream) = self.api.watch(&params, "0").await {
            use futures::StreamExt;
            let mut stream = Box::pin(stream);
            let _ = stream.next().await;
            let _ = stream.next().await;
        }
    }

    /// One round of the protocol within `deadline`: true when this replica holds the lease
    /// afterwards.
    async fn attempt(&self, deadline: Duration) -> Result<Attempt, String> {
        match tokio::time::timeout(deadline, self.try_acquire_or_renew()).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {deadline:?}")),
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let seconds = self.timing.lease.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            let created = conflict_is_false(self.api.create(&PostParams::default(), &lease).await)?;
            return Ok(self.observe_written(created));
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let seen_since = self.observe(spec);
        match judge(
            spec,
            &self.identity,
            seen_since,
            Instant::now(),
            self.timing.lease,
        ) {
            Judgement::HeldByOther => {
                debug!(holder = ?spec.holder_identity, "lease held");
                return Ok(Attempt::HeldByOther);
            }
            Judgement::Free => {
                info!(previous = ?spec.holder_identity, "taking over the leader lease");
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.holder_identity = Some(self.identity.clone());
            }
            Judgement::Ours => {}
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(seconds);
        // The resourceVersion read makes this a compare-and-swap.
        let written = conflict_is_false(self.api.replace(&self.name, &PostParams::default(), &lease).await)?;
        Ok(self.observe_written(written))
    }

    /// Notes the record as read; returns since when it has been so by our clock.
    fn observe(&self, spec: &LeaseSpec) -> Instant {
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        match observed.as_ref() {
            Some((seen, since)) if seen == spec => *since,
            _ => {
                let now = Instant::now();
                *observed = Some((spec.clone(), now));
                now
            }
        }
    }

    fn observe_written(&self, written: Option<Lease>) -> Attempt {
        let Some(spec) = written.and_then(|l| l.spec) else {
            return Attempt::Raced;
        };
        *self.observed.lock().unwrap_or_else(|e| e.into_inner()) = Some((spec, Instant::now()));
        Attempt::Held
    }
}

/// What one try at the lease found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// This replica holds it (acquired or renewed).
    Held,
    /// The record names another holder whose lease has not expired.
    HeldByOther,
    /// The write lost a race (409: the record changed or went since it was read). That proves
    /// nobody else holds it: a holder retries until its renew deadline, as client-go does, instead
    /// of stepping down at once (a Lease deleted with its namespace would otherwise stop the
    /// leader before it finishes the finalizers that let the namespace go).
    Raced,
}

fn conflict_is_false(result: Result<Lease, kube::Error>) -> Result<Option<Lease>, kube::Error> {
    match result {
        Ok(lease) => Ok(Some(lease)),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Refused because this replica may not act (see [`Leadership`]).
#[derive(Debug, thiserror::Error)]
#[error("not the leader: the write was not sent")]
pub struct NotLeader;

/// A layer for the controllers' Kubernetes client: requests that change something (any method
/// but GET/HEAD) are sent only while [`Leadership::holds`], and counted.
#[derive(Clone)]
pub struct WriteGate {
    leadership: Arc<Leadership>,
    metrics: Arc<Metrics>,
}

impl WriteGate {
    pub fn new(leadership: Arc<Leadership>, metrics: Arc<Metrics>) -> Self {
        WriteGate { leadership, metrics }
    }
}

impl<S> tower::Layer<S> for WriteGate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            inner,
            gate: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    gate: WriteGate,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<http::Request<B>> for Gated<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method().clone();
        let write = !matches!(method, http::Method::GET | http::Method::HEAD);
        if write {
            if !self.gate.leadership.holds() {
                self.gate.metrics.write_refused("kubernetes");
                return Box::pin(futures::future::ready(Err(NotLeader.into())));
            }
            self.gate.metrics.kubernetes_write(method.as_str());
        }
        let sent = self.inner.call(request);
        Box::pin(async move { sent.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(seconds),
            // A holder whose clock runs an hour ahead: its timestamps must not matter.
            renew_time: Some(MicroTime(
                Timestamp::now()
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(3600))
                    .unwrap(),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn a_standby_judges_expiry_by_its_own_clock_from_when_it_saw_the_record() {
        let seen = Instant::now();
        let lease = held_by("a", 15);
        let default = Duration::from_secs(15);
        assert_eq!(
            judge(&lease, "b", seen, seen + Duration::from_secs(14), default),
            Judgement::HeldByOther
        );
        // Expired a lease after it was seen, whatever renewTime (an hour ahead) says.
        assert_eq!(
            judge(&lease, "b", seen, seen + Duration::from_secs(15), default),
            Judgement::Free
        );
        assert_eq!(
            judge(&lease, "a", seen, seen + Duration::from_secs(60), default),
            Judgement::Ours
        );
        let released = LeaseSpec::default();
        assert_eq!(judge(&released, "b", seen, seen, default), Judgement::Free);
    }

    #[test]
    fn the_holder_stops_before_a_standby_may_take_over() {
        let timing = Timing::from_lease(Duration::from_secs(15));
        assert_eq!(timing.renew_deadline, Duration::from_secs(10));
        assert_eq!(timing.retry, Duration::from_secs(2));
        assert!(timing.renew_deadline < timing.lease);
        let short = Timing::from_lease(Duration::from_secs(3));
        assert!(short.retry < short.renew_deadline && short.renew_deadline < short.lease);
    }

    /// Stands in for the API server: counts what reaches it.
    #[derive(Clone, Default)]
    struct Counting(Arc<AtomicU64>);

    impl tower::Service<http::Request<()>> for Counting {
        type Response = ();
        type Error = BoxError;
        type Future = futures::future::Ready<Result<(), BoxError>>;

        fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            self.0.fetch_add(1, Ordering::SeqCst);
            futures::future::ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn kubernetes_writes_go_only_while_leading_reads_always() {
        use tower::{Layer, Service};
        let (leadership, metrics) = (Leadership::elected(), Arc::new(Metrics::new()));
        let sent = Counting::default();
        let mut gated = WriteGate::new(leadership.clone(), metrics.clone()).layer(sent.clone());
        let request = |method: http::Method| http::Request::builder().method(method).body(()).unwrap();
        assert!(gated.call(request(http::Method::GET)).await.is_ok());
        let refused = gated.call(request(http::Method::PATCH)).await.unwrap_err();
        assert!(refused.is::<NotLeader>(), "{refused}");
        assert_eq!(sent.0.load(Ordering::SeqCst), 1, "only the read was sent");
        leadership.grant_until(Instant::now() + Duration::from_secs(60));
        assert!(gated.call(request(http::Method::PATCH)).await.is_ok());
        assert_eq!(sent.0.load(Ordering::SeqCst), 2);
        let text = metrics.render(&crate::queue::Queues::default());
        assert!(
            text.contains(r#"swarm_operator_kubernetes_writes_total{method="PATCH"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"swarm_operator_writes_refused_total{to="kubernetes"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn leadership_lapses_at_its_deadline_and_on_revoke() {
        let leadership = Leadership::elected();
        assert!(!leadership.holds(), "not before it is granted");
        leadership.grant_until(Instant::now() + Duration::from_secs(60));
        assert!(leadership.holds());
        leadership.grant_until(Instant::now());
        assert!(!leadership.holds(), "a deadline in the past");
        leadership.grant_until(Instant::now() + Duration::from_secs(60));
        leadership.revoke();
        assert!(!leadership.holds());
        assert!(Leadership::always().holds());
    }
}
