//! One cluster's managed services, all their tasks and its nodes, listed together (three calls)
//! and shared by every reconcile for up to a second, instead of four reads per service per pass.
//! A service that changed since the listing (a swarm event named it, or we wrote it) is "dirty"
//! and read directly until the next listing, so nothing acts on what it has not seen.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bollard::models::{Service, Task};

/// How long a listing serves reads.
const MAX_AGE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Snapshot {
    /// Counts changes; a listing remembers the count it started at.
    clock: AtomicU64,
    /// Service name → the clock at its last change.
    changed: Mutex<HashMap<String, u64>>,
    listing: tokio::sync::Mutex<Option<Arc<Listing>>>,
}

pub struct Listing {
    started: u64,
    at: Instant,
    pub services: HashMap<String, Service>,
    /// Service ID → its tasks, current and past.
    pub tasks: HashMap<String, Vec<Task>>,
    /// Node ID → hostname.
    pub nodes: HashMap<String, String>,
}

impl Listing {
    pub fn new(services: Vec<Service>, tasks: Vec<Task>, nodes: HashMap<String, String>) -> Self {
        let mut by_service: HashMap<String, Vec<Task>> = HashMap::new();
        for task in tasks {
            if let Some(id) = task.service_id.clone() {
                by_service.entry(id).or_default().push(task);
            }
        }
        Listing {
            started: 0,
            at: Instant::now(),
            services: services
                .into_iter()
                .filter_map(|s| Some((s.spec.as_ref()?.name.clone()?, s)))
                .collect(),
            tasks: by_service,
            nodes,
        }
    }

    pub fn service_by_id(&self, id: &str) -> Option<&Service> {
        self.services.values().find(|s| s.id.as_deref() == Some(id))
    }
}

impl Snapshot {
    /// Service `name` changed (an event, or our own write).
    pub fn changed(&self, name: &str) {
        let now = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), now);
    }

    /// Whether `listing` saw the service named `name` (or with ID `name`) as it is now.
    pub fn is_current(&self, listing: &Listing, name: &str) -> bool {
        let id = listing.services.get(name).and_then(|s| s.id.clone());
        let changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        [Some(name.to_string()), id]
            .into_iter()
            .flatten()
            .all(|key| changed.get(&key).is_none_or(|at| *at <= listing.started))
    }

    /// Everything may have changed (events were missed): the next read lists anew.
    pub async fn reset(&self) {
        *self.listing.lock().await = None;
    }

    /// The listing, made anew by `list` when older than a second. Concurrent callers share one.
    pub async fn listing<F, Fut, E>(&self, list: F) -> Result<Arc<Listing>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Listing, E>>,
    {
        let mut guard = self.listing.lock().await;
        if let Some(listing) = guard.as_ref()
            && listing.at.elapsed() < MAX_AGE
        {
            return Ok(listing.clone());
        }
        let started = self.clock.load(Ordering::SeqCst);
        let mut listing = list().await?;
        listing.started = started;
        listing.at = Instant::now();
        let listing = Arc::new(listing);
        *guard = Some(listing.clone());
        // Changes the new listing has seen need no direct reads any more.
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, at| *at > started);
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> Service {
        serde_json::from_value(serde_json::json!({"ID": format!("id-{name}"), "Spec": {"Name": name}}))
            .unwrap()
    }

    #[tokio::test]
    async fn a_change_after_the_listing_makes_that_service_dirty_until_the_next() {
        let snapshot = Snapshot::default();
        let list = || async {
            Ok::<_, ()>(Listing::new(
                vec![service("a"), service("b")],
                vec![],
                HashMap::new(),
            ))
        };
        let first = snapshot.listing(list).await.unwrap();
        assert!(snapshot.is_current(&first, "a"));
        snapshot.changed("a");
        assert!(!snapshot.is_current(&first, "a"), "changed after the listing");
        assert!(snapshot.is_current(&first, "b"));
        // Within a second the same listing is served; a new one sees the change.
        let again = snapshot.listing(list).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        *snapshot.listing.lock().await = None;
        let fresh = snapshot.listing(list).await.unwrap();
        assert!(snapshot.is_current(&fresh, "a"));
        assert_eq!(
            fresh.service_by_id("id-b").and_then(|s| s.spec.clone()?.name),
            Some("b".into())
        );
    }
}
