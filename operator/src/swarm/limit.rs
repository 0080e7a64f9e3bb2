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
    let wait = {
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * b.per_second).min(b.per_second);
        b.at = now;
        // Take the token now, even into debt: the wait below pays it back in order.
        b.tokens -= 1.0;
        (b.tokens < 0.0).then(|| Duration::from_secs_f64(-b.tokens / b.per_second))
    };
    if let Some(wait) = wait {
        crate::metrics::metrics().engine_throttled(wait);
        tokio::time::sleep(wait).await;
    }
}
