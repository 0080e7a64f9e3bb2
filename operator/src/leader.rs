//! Leader election on a `coordination.k8s.io` Lease, as client-go's leaderelection does it: the
//! holder renews the Lease every `renew_every`; a candidate takes it over once `renewTime +
//! leaseDurationSeconds` has passed. Writes carry the resourceVersion read, so two candidates
//! cannot both win. Only the holder runs controllers; one that cannot renew before its lease runs
//! out stops, so two replicas never act at once.

use std::time::Duration;

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

pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// Where `leader` is shown: 1 while this replica holds the lease.
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lost the leader lease {0}: not renewed within its duration")]
    Lost(String),
}

impl LeaderElection {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        LeaderElection {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration,
            metrics,
        }
    }

    fn renew_every(&self) -> Duration {
        self.lease_duration / 3
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut waiting_logged = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    self.metrics.set_leader(true);
                    return;
                }
                Ok(false) if !waiting_logged => {
                    info!(lease = %self.name, "another replica leads; standing by");
                    waiting_logged = true;
                }
                Ok(false) => {}
                Err(e) => warn!(lease = %self.name, error = %e, "leader election"),
            }
            // Wake early when the Lease changes (released or deleted), else retry on the renew period.
            let _ = tokio::time::timeout(self.renew_every(), self.lease_changes()).await;
        }
    }

    /// Renews the lease until a renewal fails for longer than the lease lasts; then returns, and the
    /// caller must stop acting.
    pub async fn hold(&self) -> LeaseError {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_every()).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => break,
                Err(e) => warn!(lease = %self.name, error = %e, "could not renew the leader lease"),
            }
            if last_renewed.elapsed() >= self.lease_duration {
                break;
            }
        }
        self.metrics.set_leader(false);
        LeaseError::Lost(self.name.clone())
    }

    /// Gives the lease up on a clean shutdown, so a standby takes over at once rather than after
    /// the lease runs out.
    pub async fn release(&self) {
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

    /// One round of the protocol: true when this replica holds the lease afterwards.
    async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = self.lease_duration.as_secs().max(1) as i32;
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
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let expires = spec.renew_time.as_ref().map(|t| t.0).and_then(|renewed| {
            let duration = spec.lease_duration_seconds.unwrap_or(seconds);
            renewed
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(duration.into()))
                .ok()
        });
        let held_by_other = !ours
            && spec.holder_identity.as_deref().is_some_and(|h| !h.is_empty())
            && expires.is_some_and(|e| e > now);
        if held_by_other {
            debug!(holder = ?spec.holder_identity, "lease held");
            return Ok(false);
        }
        if !ours {
            info!(previous = ?spec.holder_identity, "taking over the expired leader lease");
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(seconds);
        // The resourceVersion read makes this a compare-and-swap.
        conflict_is_false(self.api.replace(&self.name, &PostParams::default(), &lease).await)
    }
}

fn conflict_is_false(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
