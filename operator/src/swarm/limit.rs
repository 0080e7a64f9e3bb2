//! A bound on Engine API calls per second for the whole process (`--engine-qps`), as a token
//! bucket: bursts up to one second's worth, then calls wait their turn. Managers serve every
//! client of the swarm; a resync of thousands of resources must not crowd them out.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::metrics::Metrics;

struct Bucket {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token at `now`, even into debt; returns how long the caller must wait to pay it
    /// back, which keeps callers in order.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.per_second);
        self.at = now;
        self.tokens -= 1.0;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.per_second))
    }
}

/// The bound itself; `None` when calls are unbounded (`--engine-qps 0`).
pub struct RateLimit(Option<Mutex<Bucket>>);

impl RateLimit {
    /// At most `per_second` calls a second, in bursts of up to one second's worth; 0 for no bound.
    pub fn new(per_second: u32) -> Self {
        RateLimit((per_second > 0).then(|| {
            let per_second = f64::from(per_second);
            Mutex::new(Bucket {
                per_second,
                tokens: per_second,
                at: Instant::now(),
            })
        }))
    }

    /// How long the next call has to wait to fit in the bound (taking its place in line).
    fn wait(&self) -> Option<Duration> {
        let bucket = self.0.as_ref()?;
        bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(Instant::now())
    }
}

/// What every Engine call of the process goes through: the bound, and the counters it is seen by.
pub struct EngineCalls {
    pub limit: RateLimit,
    pub metrics: Arc<Metrics>,
    /// Writes go only while this says so.
    pub leadership: Arc<crate::leader::Leadership>,
}

impl EngineCalls {
    pub fn new(
        per_second: u32,
        metrics: Arc<Metrics>,
        leadership: Arc<crate::leader::Leadership>,
    ) -> Arc<Self> {
        Arc::new(EngineCalls {
            limit: RateLimit::new(per_second),
            metrics,
            leadership,
        })
    }

    /// Waits until one more call fits in the bound.
    pub async fn admit(&self) {
        if let Some(wait) = self.limit.wait() {
            self.metrics.engine_throttled(wait);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_then_calls_wait_their_turn() {
        let start = Instant::now();
        let mut bucket = Bucket {
            per_second: 10.0,
            tokens: 10.0,
            at: start,
        };
        for _ in 0..10 {
            assert_eq!(bucket.take(start), None, "the first second's worth goes at once");
        }
        let waits: Vec<Duration> = (0..3).filter_map(|_| bucket.take(start)).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [100, 200, 300],
            "each further call waits one more tenth of a second"
        );
        // A second later the debt is paid and the bucket holds 7 tokens again.
        let later = start + Duration::from_secs(1);
        assert_eq!(bucket.take(later), None);
        assert_eq!(bucket.tokens, 6.0);
    }
}
