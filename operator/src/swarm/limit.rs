//! A bound on Engine API calls per second for the whole process (`--engine-qps`), as a token
//! bucket: bursts up to one second's worth, then calls wait their turn. Managers serve every
//! client of the swarm; a resync of thousands of resources must not crowd them out.

use std::{
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

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

static BUCKET: OnceLock<Mutex<Bucket>> = OnceLock::new();

/// Sets the bound; 0 leaves calls unbounded. Takes effect once, at start-up.
pub fn set_calls_per_second(per_second: u32) {
    if per_second > 0 {
        let per_second = f64::from(per_second);
        let _ = BUCKET.set(Mutex::new(Bucket {
            per_second,
            tokens: per_second,
            at: Instant::now(),
        }));
    }
}

/// Waits until one more call fits in the bound.
pub async fn acquire() {
    let Some(bucket) = BUCKET.get() else { return };
    let wait = bucket
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take(Instant::now());
    if let Some(wait) = wait {
        crate::metrics::metrics().engine_throttled(wait);
        tokio::time::sleep(wait).await;
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
