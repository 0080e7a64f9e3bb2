//! One cluster's Swarm objects, listed once per kind and shared by every reconcile for up to a
//! second, instead of reads per object per pass:
//! - services (all of them: networks, secrets and configs report every service that uses them),
//!   all tasks and the nodes, three calls;
//! - the managed networks, secrets and configs, one call each, filtered by the owner label.
//!
//! Each kind is listed only when a pass of that kind reads it. An object that changed since its
//! kind's listing (a swarm event named it, or we wrote it) is "dirty" and read directly until the
//! next listing, so nothing acts on what it has not seen.

use std::{
    collections::HashMap,
    ops::Range,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bollard::models::{Network, Service, Task};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::NodeFacts;

/// How long a listing serves reads.
const MAX_AGE: Duration = Duration::from_secs(1);
/// How long the event of one of our own writes is waited for before it no longer counts as ours.
const ECHO_WINDOW: Duration = Duration::from_secs(10);

/// The kinds listed apart, each with its own age and dirty names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Services,
    Networks,
    Secrets,
    Configs,
}

impl Part {
    /// The part an Engine event of `kind` (service, network, secret, config) concerns.
    pub fn of_event(kind: &str) -> Option<Part> {
        match kind {
            "service" => Some(Part::Services),
            "network" => Some(Part::Networks),
            "secret" => Some(Part::Secrets),
            "config" => Some(Part::Configs),
            _ => None,
        }
    }
}

/// A listing and the change count it started at.
pub struct Stamped<T> {
    started: u64,
    at: Instant,
    pub value: T,
}

struct Slot<T>(tokio::sync::Mutex<Option<Arc<Stamped<T>>>>);

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(tokio::sync::Mutex::new(None))
    }
}

/// A managed secret or config as listed: never its data.
#[derive(Clone, Debug, Default)]
pub struct DataObject {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

#[derive(Default)]
pub struct Snapshot {
    /// Counts changes; a listing remembers the count it started at.
    clock: AtomicU64,
    /// (kind, name or ID) → the clock at its last change.
    changed: Mutex<HashMap<(Part, String), u64>>,
    services: Slot<Listing>,
    networks: Slot<Vec<Network>>,
    secrets: Slot<Vec<DataObject>>,
    configs: Slot<Vec<DataObject>>,
    /// Our own writes whose swarm events are still to come: (kind, name) → (how many, when the
    /// last was made).
    echoes: Mutex<HashMap<(Part, String), (u32, Instant)>>,
    /// Woken whenever an echo arrives.
    echo_arrived: tokio::sync::Notify,
    /// Passes waiting in [`Snapshot::echoes_arrived`] now.
    waiting: std::sync::atomic::AtomicUsize,
}

/// At most this many passes wait for echoes at once: when more would, the swarm is behind, and
/// waiting would only hold the reconcile slots the other objects need.
const MAX_WAITING: usize = 4;

/// One listing of a cluster's services, tasks and nodes. Services and tasks are kept as the JSON
/// text the Engine sent (one string per call, each object a range of it), about a quarter of the
/// memory of bollard's models, and parsed when a pass asks for one: a pass reads one service of
/// thousands.
pub struct Listing {
    services_text: Box<str>,
    /// Name → the service's ID and where it is in `services_text`.
    services: HashMap<String, (String, Range<usize>)>,
    /// Service ID → name, so a read by ID costs what a read by name does.
    ids: HashMap<String, String>,
    tasks_text: Box<str>,
    /// Service ID → where its tasks, current and past, are in `tasks_text`.
    tasks: HashMap<String, Vec<Range<usize>>>,
    pub nodes: Vec<NodeFacts>,
}

/// What a listing indexes a service by.
#[derive(Deserialize)]
struct ServiceKeys {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "Spec")]
    spec: Option<NameOnly>,
}

#[derive(Deserialize)]
struct NameOnly {
    #[serde(rename = "Name")]
    name: Option<String>,
}

#[derive(Deserialize)]
struct TaskKeys {
    #[serde(rename = "ServiceID")]
    service_id: Option<String>,
}

/// A listed object that bollard's model cannot read: the caller reads it directly instead.
#[derive(Debug)]
pub struct Unreadable;

impl Listing {
    /// Indexes the Engine's answers to `/services` and `/tasks` (JSON arrays).
    pub fn new(services: String, tasks: String, nodes: Vec<NodeFacts>) -> Result<Self, serde_json::Error> {
        let (services_text, tasks_text) = (services.into_boxed_str(), tasks.into_boxed_str());
        let range = |text: &str, item: &RawValue| {
            let start = item.get().as_ptr() as usize - text.as_ptr() as usize;
            start..start + item.get().len()
        };
        let mut by_service: HashMap<String, Vec<Range<usize>>> = HashMap::new();
        for task in serde_json::from_str::<Vec<&RawValue>>(&tasks_text)? {
            if let Ok(TaskKeys { service_id: Some(id) }) = serde_json::from_str(task.get()) {
                by_service.entry(id).or_default().push(range(&tasks_text, task));
            }
        }
        let listed = serde_json::from_str::<Vec<&RawValue>>(&services_text)?;
        let mut names = HashMap::with_capacity(listed.len());
        let mut ids = HashMap::with_capacity(listed.len());
        for service in listed {
            let Ok(keys) = serde_json::from_str::<ServiceKeys>(service.get()) else {
                continue;
            };
            let Some(name) = keys.spec.and_then(|s| s.name) else {
                continue;
            };
            let id = keys.id.unwrap_or_default();
            ids.insert(id.clone(), name.clone());
            names.insert(name, (id, range(&services_text, service)));
        }
        Ok(Listing {
            services: names,
            ids,
            tasks: by_service,
            nodes,
            services_text,
            tasks_text,
        })
    }

    /// The service named `name`, if listed.
    pub fn service(&self, name: &str) -> Option<Result<Service, Unreadable>> {
        self.services
            .get(name)
            .map(|(_, at)| parse(&self.services_text[at.clone()]))
    }

    pub fn service_by_id(&self, id: &str) -> Option<Result<Service, Unreadable>> {
        self.service(self.ids.get(id)?)
    }

    /// The name and ID of the service named, or with ID, `key`.
    pub fn names(&self, key: &str) -> Option<(&str, &str)> {
        if let Some((name, (id, _))) = self.services.get_key_value(key) {
            return Some((name.as_str(), id.as_str()));
        }
        let (id, name) = self.ids.get_key_value(key)?;
        Some((name.as_str(), id.as_str()))
    }

    /// Every listed service.
    pub fn all_services(&self) -> impl Iterator<Item = Result<Service, Unreadable>> + '_ {
        self.services
            .values()
            .map(|(_, at)| parse(&self.services_text[at.clone()]))
    }

    /// The tasks of the service with ID `id`.
    pub fn tasks_of(&self, id: &str) -> Result<Vec<Task>, Unreadable> {
        self.tasks
            .get(id)
            .map(|tasks| {
                tasks
                    .iter()
                    .map(|at| parse(&self.tasks_text[at.clone()]))
                    .collect()
            })
            .unwrap_or(Ok(Vec::new()))
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Unreadable> {
    serde_json::from_str(text).map_err(|_| Unreadable)
}

impl Snapshot {
    /// The `part` object named (or with ID) `key` changed: an event, or our own write.
    pub fn changed(&self, part: Part, key: &str) {
        let now = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((part, key.to_string()), now);
    }

    /// Whether `listing` of `part` saw every object named by `keys` (names or IDs) as it is now.
    pub fn is_current<T>(&self, part: Part, listing: &Stamped<T>, keys: &[&str]) -> bool {
        let changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().all(|key| {
            changed
                .get(&(part, key.to_string()))
                .is_none_or(|at| *at <= listing.started)
        })
    }

    /// We are about to write the `part` object `name`: its next `events` swarm events will be our
    /// own echo.
    pub fn expect_echo(&self, part: Part, name: &str, events: u32) {
        let mut echoes = self.echoes.lock().unwrap_or_else(|p| p.into_inner());
        let entry = echoes
            .entry((part, name.to_string()))
            .or_insert((0, Instant::now()));
        *entry = (entry.0 + events, Instant::now());
    }

    /// The write failed: no event is coming (or, if it went through after all, one pass too many).
    /// Whether all `events` were still expected: if not, some of them came already, as echoes.
    pub fn cancel_echo(&self, part: Part, name: &str, events: u32) -> bool {
        let mut echoes = self.echoes.lock().unwrap_or_else(|p| p.into_inner());
        let key = (part, name.to_string());
        let Some(entry) = echoes.get_mut(&key) else {
            return events == 0;
        };
        let expected = entry.0;
        entry.0 = expected.saturating_sub(events);
        if entry.0 == 0 {
            echoes.remove(&key);
        }
        expected >= events
    }

    /// A swarm event about the `part` object `name`: whether it is news, not the echo of our own
    /// write. Either way listings that started before it are stale for that object: the
    /// allocator's write after a create comes as such an echo, with what the create's own
    /// inspection may not have shown.
    pub fn event(&self, part: Part, name: &str) -> bool {
        self.changed(part, name);
        !self.is_echo(part, name)
    }

    /// Waits, at most `within`, until every echo expected for the `part` object `name` has
    /// arrived: whether they all did. False at once when [`MAX_WAITING`] passes wait already.
    pub async fn echoes_arrived(&self, part: Part, name: &str, within: Duration) -> bool {
        /// Counts one waiting pass for as long as it lives (a pass may be dropped mid-wait).
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let waiting = Waiting(&self.waiting);
        if waiting.0.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            return false;
        }
        self.wait_for_echoes(part, name, within).await
    }

    async fn wait_for_echoes(&self, part: Part, name: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let key = (part, name.to_string());
        loop {
            // Listening before looking, so that an echo in between is not missed.
            let arrived = self.echo_arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let expected = {
                let echoes = self.echoes.lock().unwrap_or_else(|p| p.into_inner());
                echoes
                    .get(&key)
                    .is_some_and(|(n, at)| *n > 0 && at.elapsed() < ECHO_WINDOW)
            };
            if !expected {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return false;
            }
        }
    }

    /// Whether an event about the `part` object `name` is the echo of our own write, which the
    /// pass that wrote it has already seen. Each write answers for one event, for a while: a
    /// change someone else makes at the same time brings an event of its own.
    pub fn is_echo(&self, part: Part, name: &str) -> bool {
        let mut echoes = self.echoes.lock().unwrap_or_else(|p| p.into_inner());
        echoes.retain(|_, (_, at)| at.elapsed() < ECHO_WINDOW);
        let key = (part, name.to_string());
        let echo = match echoes.get_mut(&key) {
            Some(entry) => {
                entry.0 -= 1;
                if entry.0 == 0 {
                    echoes.remove(&key);
                }
                true
            }
            None => false,
        };
        if echo {
            self.echo_arrived.notify_waiters();
        }
        echo
    }

    /// Everything may have changed (events were missed): the next reads list anew.
    pub async fn reset(&self) {
        self.echoes.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.services.0.lock().await = None;
        *self.networks.0.lock().await = None;
        *self.secrets.0.lock().await = None;
        *self.configs.0.lock().await = None;
    }

    /// Services, tasks and nodes, listed anew by `list` when older than a second.
    pub async fn services<F, Fut, E>(&self, list: F) -> Result<Arc<Stamped<Listing>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Listing, E>>,
    {
        self.fresh(&self.services, Part::Services, list).await
    }

    pub async fn networks<F, Fut, E>(&self, list: F) -> Result<Arc<Stamped<Vec<Network>>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Network>, E>>,
    {
        self.fresh(&self.networks, Part::Networks, list).await
    }

    /// The managed secrets (`part` Secrets) or configs (Configs).
    pub async fn data<F, Fut, E>(&self, part: Part, list: F) -> Result<Arc<Stamped<Vec<DataObject>>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<DataObject>, E>>,
    {
        let slot = if part == Part::Secrets {
            &self.secrets
        } else {
            &self.configs
        };
        self.fresh(slot, part, list).await
    }

    /// The listing in `slot`, made anew by `list` when older than a second. Concurrent callers
    /// share one.
    async fn fresh<T, F, Fut, E>(&self, slot: &Slot<T>, part: Part, list: F) -> Result<Arc<Stamped<T>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut guard = slot.0.lock().await;
        if let Some(listing) = guard.as_ref()
            && listing.at.elapsed() < MAX_AGE
        {
            return Ok(listing.clone());
        }
        let started = self.clock.load(Ordering::SeqCst);
        let value = list().await?;
        let listing = Arc::new(Stamped {
            started,
            at: Instant::now(),
            value,
        });
        *guard = Some(listing.clone());
        // Changes the new listing has seen need no direct reads any more.
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(p, _), at| *p != part || *at > started);
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(names: &[&str]) -> String {
        let listed: Vec<_> = names
            .iter()
            .map(|name| serde_json::json!({"ID": format!("id-{name}"), "Spec": {"Name": name}}))
            .collect();
        serde_json::to_string(&listed).unwrap()
    }

    #[tokio::test]
    async fn a_change_after_the_listing_makes_that_object_dirty_until_the_next() {
        let snapshot = Snapshot::default();
        let list = || async {
            let tasks = r#"[{"ID": "t1", "ServiceID": "id-b"}, {"ID": "t0"}]"#.to_string();
            Ok::<_, ()>(Listing::new(services(&["a", "b"]), tasks, vec![]).unwrap())
        };
        let first = snapshot.services(list).await.unwrap();
        assert!(snapshot.is_current(Part::Services, &first, &["a"]));
        snapshot.changed(Part::Services, "a");
        assert!(
            !snapshot.is_current(Part::Services, &first, &["a"]),
            "changed after the listing"
        );
        assert!(snapshot.is_current(Part::Services, &first, &["b"]));
        assert!(!snapshot.is_current(Part::Services, &first, &["b", "a"]));
        // Within a second the same listing is served; a new one sees the change.
        let again = snapshot.services(list).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        *snapshot.services.0.lock().await = None;
        let fresh = snapshot.services(list).await.unwrap();
        assert!(snapshot.is_current(Part::Services, &fresh, &["a"]));
        assert_eq!(
            fresh.value.service_by_id("id-b").and_then(|s| s.ok()?.spec?.name),
            Some("b".into())
        );
        assert_eq!(fresh.value.names("id-a"), Some(("a", "id-a")));
        assert_eq!(fresh.value.names("b"), Some(("b", "id-b")));
        assert_eq!(fresh.value.names("c"), None);
        let tasks = fresh.value.tasks_of("id-b").unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].id.as_deref(), Some("t1"));
        assert!(fresh.value.tasks_of("id-a").unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_echo_makes_older_listings_stale_for_its_object() {
        let snapshot = Snapshot::default();
        let list = || async { Ok::<_, ()>(Listing::new(services(&["api"]), "[]".into(), vec![]).unwrap()) };
        snapshot.expect_echo(Part::Services, "api", 2);
        let listing = snapshot.services(list).await.unwrap();
        assert!(!snapshot.event(Part::Services, "api"), "the create's echo");
        assert!(
            !snapshot.event(Part::Services, "api"),
            "the allocator's, as an echo"
        );
        assert!(
            !snapshot.is_current(Part::Services, &listing, &["api"]),
            "a listing from before the allocator's write does not show its addresses"
        );
        assert!(snapshot.event(Part::Services, "api"), "then news");
    }

    #[tokio::test]
    async fn a_wait_for_the_echoes_ends_when_the_last_arrives_or_at_its_bound() {
        let snapshot = Arc::new(Snapshot::default());
        let within = Duration::from_secs(5);
        assert!(
            snapshot.echoes_arrived(Part::Services, "api", within).await,
            "none expected"
        );
        snapshot.expect_echo(Part::Services, "api", 2);
        assert!(!snapshot.event(Part::Services, "api"), "the create's echo");
        let waiting = {
            let snapshot = snapshot.clone();
            tokio::spawn(async move { snapshot.echoes_arrived(Part::Services, "api", within).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the allocator's echo is still to come");
        assert!(!snapshot.event(Part::Services, "api"), "the allocator's echo");
        assert!(waiting.await.unwrap());
        snapshot.expect_echo(Part::Services, "slow", 2);
        assert!(
            !snapshot
                .echoes_arrived(Part::Services, "slow", Duration::from_millis(20))
                .await,
            "not within its bound"
        );
        // Past MAX_WAITING waiting passes, the next does not wait.
        let waiters: Vec<_> = (0..MAX_WAITING)
            .map(|_| {
                let snapshot = snapshot.clone();
                tokio::spawn(async move { snapshot.echoes_arrived(Part::Services, "slow", within).await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(snapshot.waiting.load(Ordering::SeqCst), MAX_WAITING);
        let started = std::time::Instant::now();
        assert!(!snapshot.echoes_arrived(Part::Services, "slow", within).await);
        assert!(started.elapsed() < within, "it did not wait");
        assert!(!snapshot.event(Part::Services, "slow"));
        assert!(!snapshot.event(Part::Services, "slow"));
        for waiter in waiters {
            assert!(waiter.await.unwrap());
        }
        assert_eq!(snapshot.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn each_own_write_answers_for_one_event() {
        let snapshot = Snapshot::default();
        assert!(!snapshot.is_echo(Part::Services, "web"), "nothing written");
        snapshot.expect_echo(Part::Services, "web", 1);
        snapshot.expect_echo(Part::Services, "web", 1);
        assert!(!snapshot.is_echo(Part::Networks, "web"), "another kind");
        assert!(snapshot.is_echo(Part::Services, "web"));
        assert!(snapshot.is_echo(Part::Services, "web"));
        assert!(
            !snapshot.is_echo(Part::Services, "web"),
            "a third event is someone else's"
        );
        snapshot.expect_echo(Part::Services, "db", 2);
        snapshot.cancel_echo(Part::Services, "db", 2);
        assert!(
            !snapshot.is_echo(Part::Services, "db"),
            "a failed write brings no echo"
        );
        snapshot.expect_echo(Part::Services, "api", 2);
        assert!(snapshot.is_echo(Part::Services, "api"), "the create");
        assert!(snapshot.is_echo(Part::Services, "api"), "the allocator's update");
        assert!(!snapshot.is_echo(Part::Services, "api"), "then someone else's");
        // Cancelling tells whether the event was still to come.
        snapshot.expect_echo(Part::Services, "vip", 2);
        assert!(snapshot.is_echo(Part::Services, "vip"), "the create");
        assert!(
            snapshot.cancel_echo(Part::Services, "vip", 1),
            "the update still to come"
        );
        assert!(!snapshot.is_echo(Part::Services, "vip"), "so it is news");
        snapshot.expect_echo(Part::Services, "late", 2);
        assert!(snapshot.is_echo(Part::Services, "late"));
        assert!(snapshot.is_echo(Part::Services, "late"));
        assert!(
            !snapshot.cancel_echo(Part::Services, "late", 1),
            "the update came already, as an echo"
        );
    }

    #[tokio::test]
    async fn kinds_are_listed_and_made_dirty_apart() {
        let snapshot = Snapshot::default();
        let secret = |name: &str| DataObject {
            id: format!("id-{name}"),
            name: name.into(),
            labels: HashMap::new(),
        };
        let secrets = snapshot
            .data(Part::Secrets, || async { Ok::<_, ()>(vec![secret("db-1")]) })
            .await
            .unwrap();
        snapshot.changed(Part::Configs, "db-1");
        assert!(
            snapshot.is_current(Part::Secrets, &secrets, &["db-1"]),
            "a config of the same name is another object"
        );
        // A new listing of configs forgets only configs' changes.
        snapshot.changed(Part::Secrets, "db-1");
        snapshot
            .data(Part::Configs, || async { Ok::<_, ()>(vec![]) })
            .await
            .unwrap();
        assert!(!snapshot.is_current(Part::Secrets, &secrets, &["db-1"]));
        let again = snapshot
            .data(Part::Secrets, || async { Ok::<_, ()>(vec![]) })
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&secrets, &again), "still within its second");
        snapshot.reset().await;
        let fresh = snapshot
            .data(Part::Secrets, || async { Ok::<_, ()>(vec![]) })
            .await
            .unwrap();
        assert!(fresh.value.is_empty());
        assert!(snapshot.is_current(Part::Secrets, &fresh, &["db-1"]));
    }
}
