//! Queue depth. kube-runtime's scheduler keeps the reconcile requests it holds to itself, so this
//! module keeps a mirror of it per kind: every way a pass is asked for goes through here (the
//! kind's own watch, the Swarm event triggers, the `.watches()` mappers, the requeue a pass or the
//! error policy returns), and a pass that starts takes its object out.
//!
//! The mirror follows the scheduler's rules: one entry per object, due at the earliest time any
//! request asked for; a request for an object whose pass is running waits for that pass to end and
//! stays counted meanwhile. An entry whose object left the store before its pass started is dropped
//! when the controller reports the object not found.
//!
//! `reconcile_queue_depth{kind}` counts the entries that are due: passes waiting for a free slot
//! (`--concurrency`) or for the object's running pass. `reconcile_queue_scheduled{kind}` counts the
//! ones due later (requeues: resync, progress checks, backoff).

use std::{
    cell::Cell,
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::{
    Resource,
    runtime::{controller::Action, reflector::ObjectRef},
};

type Key = (Option<String>, String);

/// The requests one kind's controller holds, as far as this process asked for them.
#[derive(Default)]
pub struct Queue {
    due: Mutex<HashMap<Key, Instant>>,
    /// When this kind's last pass started.
    last_start: Mutex<Option<Instant>>,
}

impl Queue {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Instant>> {
        self.due.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pass of the object is asked for `after` from now; the earliest request wins.
    pub fn wanted(&self, namespace: Option<&str>, name: &str, after: Duration) {
        let at = Instant::now() + after;
        self.entries()
            .entry((namespace.map(str::to_string), name.to_string()))
            .and_modify(|due| *due = (*due).min(at))
            .or_insert(at);
    }

    /// The object's pass started (or its object is gone): it has left the queue.
    pub fn left(&self, namespace: Option<&str>, name: &str) {
        self.entries()
            .remove(&(namespace.map(str::to_string), name.to_string()));
    }

    /// How long the longest-waiting request has been due at `now`, if any is, and how long ago
    /// the last pass started (None: never).
    fn waiting(&self, now: Instant) -> (Option<Duration>, Option<Duration>) {
        let overdue = self
            .entries()
            .values()
            .filter(|at| **at <= now)
            .map(|at| now - *at)
            .max();
        let since_start = self
            .last_start
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|at| now.saturating_duration_since(at));
        (overdue, since_start)
    }

    /// (due now, due later).
    pub fn depth(&self) -> (usize, usize) {
        let now = Instant::now();
        let entries = self.entries();
        let due = entries.values().filter(|at| **at <= now).count();
        (due, entries.len() - due)
    }
}

/// Every kind's queue, by kind.
#[derive(Default)]
pub struct Queues(Mutex<HashMap<String, Arc<Queue>>>);

impl Queues {
    /// The queue of kind `K`.
    pub fn of<K: Resource<DynamicType = ()>>(&self) -> Arc<Queue> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(K::kind(&()).to_string())
            .or_default()
            .clone()
    }

    /// Whether the controllers are wedged at `now`: a kind has had a request due for longer than
    /// `limit` while none of its passes started for as long. A backlog keeps passes starting and is
    /// not a wedge; all passes stuck (a deadlock, a call that never returns) is. What /healthz says.
    pub fn wedged(&self, now: Instant, limit: Duration) -> Option<String> {
        let queues: Vec<(String, Arc<Queue>)> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(kind, q)| (kind.clone(), q.clone()))
            .collect();
        queues.into_iter().find_map(|(kind, q)| match q.waiting(now) {
            (Some(overdue), since_start) if overdue > limit && since_start.is_none_or(|s| s > limit) => {
                Some(format!(
                    "wedged: a {kind} pass has been due for {}s and none has started for as long",
                    overdue.as_secs()
                ))
            }
            _ => None,
        })
    }

    /// Every kind's (due now, due later), for the metrics.
    pub fn depths(&self) -> Vec<(String, usize, usize)> {
        let queues: Vec<(String, Arc<Queue>)> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(kind, q)| (kind.clone(), q.clone()))
            .collect();
        queues
            .into_iter()
            .map(|(kind, q)| {
                let (due, later) = q.depth();
                (kind, due, later)
            })
            .collect()
    }
}

impl Queue {
    /// Counts trigger requests `refs` as queued now, and hands them on to the controller.
    pub fn requested<K: Resource<DynamicType = ()>>(
        &self,
        refs: impl IntoIterator<Item = ObjectRef<K>>,
    ) -> Vec<ObjectRef<K>> {
        refs.into_iter()
            .inspect(|r| self.wanted(r.namespace.as_deref(), &r.name, Duration::ZERO))
            .collect()
    }

    /// Counts the object of a watch stream item, which the kind's own watch hands to the
    /// controller, as queued now.
    pub fn watched<K: Resource, E>(&self, item: &Result<K, E>) {
        if let Ok(obj) = item {
            let (namespace, name) = key_of(obj);
            self.wanted(namespace, name, Duration::ZERO);
        }
    }

    /// Drops the entry of an object the controller could not find when its turn came.
    pub fn not_found<E, Q>(&self, result: &Result<impl Sized, kube::runtime::controller::Error<E, Q>>) {
        if let Err(kube::runtime::controller::Error::ObjectNotFound(obj)) = result {
            self.left(obj.namespace.as_deref(), &obj.name);
        }
    }

    /// Runs the pass of `obj`: takes it out of the queue when it starts and puts back the requeue
    /// it returns.
    pub async fn pass<K, F, E>(&self, obj: &K, pass: F) -> Result<Action, E>
    where
        K: Resource,
        F: Future<Output = Result<Action, E>>,
    {
        let (namespace, name) = key_of(obj);
        self.left(namespace, name);
        *self.last_start.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let (result, next) = NEXT
            .scope(Cell::new(None), async {
                let result = pass.await;
                (result, NEXT.with(Cell::get))
            })
            .await;
        if let (Ok(action), Some(after)) = (&result, next)
            && *action != Action::await_change()
        {
            self.wanted(namespace, name, after);
        }
        result
    }

    /// Counts the requeue the error policy returns for `obj`.
    pub fn retry<K: Resource>(&self, obj: &K, after: Duration) -> Action {
        let (namespace, name) = key_of(obj);
        self.wanted(namespace, name, after);
        Action::requeue(after)
    }
}

/// An object's namespace and name, as the queue keys it.
fn key_of<K: Resource>(obj: &K) -> (Option<&str>, &str) {
    let meta = obj.meta();
    (
        meta.namespace.as_deref(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

tokio::task_local! {
    /// The requeue the running pass asked for, so its end can count it.
    static NEXT: Cell<Option<Duration>>;
}

/// `Action::requeue(after)`, remembered for the queue mirror: passes ask for requeues only
/// through this. A resync-long wait ends on the next multiple of itself (see [`aligned`]).
pub fn requeue(after: Duration) -> Action {
    let after = aligned(after, std::time::SystemTime::now());
    let _ = NEXT.try_with(|next| next.set(Some(after)));
    Action::requeue(after)
}

/// Waits shorter than this (progress checks, retries) are kept as asked.
const ALIGN_FROM: Duration = Duration::from_secs(20);

/// Pure: how long from `now` until the next multiple of `after` (since the Unix epoch), for waits
/// of `ALIGN_FROM` or more. The resyncs of converged objects then come together, once per
/// interval, and share one listing of the swarm instead of one a second spread over the
/// interval: the Engine reads at rest do not grow with the number of objects. No object waits
/// longer than it asked.
pub fn aligned(after: Duration, now: std::time::SystemTime) -> Duration {
    let period = after.as_millis();
    if after < ALIGN_FROM || period == 0 {
        return after;
    }
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let until = period - since_epoch % period;
    Duration::from_millis(u64::try_from(until).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resync_waits_end_on_a_common_grid_and_never_later_than_asked() {
        let at = |ms: u64| std::time::UNIX_EPOCH + Duration::from_millis(ms);
        let minute = Duration::from_secs(60);
        assert_eq!(
            aligned(minute, at(120_000)),
            minute,
            "on the grid: a whole interval"
        );
        assert_eq!(aligned(minute, at(125_000)), Duration::from_secs(55));
        assert_eq!(aligned(minute, at(179_999)), Duration::from_millis(1));
        // Two objects converged at different times resync together.
        assert_eq!(
            at(125_000) + aligned(minute, at(125_000)),
            at(170_500) + aligned(minute, at(170_500))
        );
        let progress = Duration::from_secs(2);
        assert_eq!(aligned(progress, at(125_321)), progress, "short waits as asked");
    }

    #[test]
    fn one_entry_per_object_due_at_the_earliest_request() {
        let q = Queue::default();
        q.wanted(Some("ns"), "a", Duration::from_secs(60));
        assert_eq!(q.depth(), (0, 1), "a requeue is scheduled, not due");
        q.wanted(Some("ns"), "a", Duration::ZERO);
        q.wanted(Some("ns"), "a", Duration::from_secs(60));
        assert_eq!(
            q.depth(),
            (1, 0),
            "a trigger makes it due; a later requeue does not delay it"
        );
        q.wanted(Some("other"), "a", Duration::ZERO);
        q.wanted(None, "b", Duration::ZERO);
        assert_eq!(q.depth(), (3, 0));
        q.left(Some("ns"), "a");
        q.left(Some("ns"), "a");
        assert_eq!(q.depth(), (2, 0));
    }

    #[tokio::test]
    async fn a_pass_leaves_the_queue_and_puts_back_its_requeue() {
        let queues = Queues::default();
        let queue = queues.of::<swarm_operator_crds::SwarmNetwork>();
        let obj = swarm_operator_crds::SwarmNetwork::new("queue-unit-test", Default::default());
        queue.watched(&Ok::<_, ()>(obj.clone()));
        assert_eq!(queue.depth(), (1, 0));
        let out = queue
            .pass(&obj, async {
                assert_eq!(
                    queues.of::<swarm_operator_crds::SwarmNetwork>().depth(),
                    (0, 0),
                    "left when it starts"
                );
                Ok::<_, ()>(requeue(Duration::from_secs(5)))
            })
            .await;
        assert_eq!(out, Ok(Action::requeue(Duration::from_secs(5))));
        assert_eq!(queue.depth(), (0, 1), "its requeue is scheduled");
        let _ = queue
            .pass(&obj, async { Ok::<_, ()>(Action::await_change()) })
            .await;
        assert_eq!(queue.depth(), (0, 0), "await_change schedules nothing");
    }

    #[tokio::test]
    async fn wedged_only_when_work_waits_and_no_pass_starts() {
        let limit = Duration::from_secs(180);
        let queues = Queues::default();
        let queue = queues.of::<swarm_operator_crds::SwarmNetwork>();
        let now = Instant::now();
        assert_eq!(
            queues.wedged(now + 2 * limit, limit),
            None,
            "nothing waits: alive"
        );
        queue.wanted(Some("ns"), "a", Duration::ZERO);
        assert_eq!(
            queues.wedged(now + limit / 2, limit),
            None,
            "due for a while: alive"
        );
        let wedged = queues.wedged(now + 2 * limit, limit).expect("wedged");
        assert!(wedged.contains("SwarmNetwork"), "{wedged}");
        // A backlog: passes keep starting while others wait.
        let obj = swarm_operator_crds::SwarmNetwork::new("b", Default::default());
        let _ = queue
            .pass(&obj, async { Ok::<_, ()>(Action::await_change()) })
            .await;
        let started = Instant::now();
        assert_eq!(
            queues.wedged(started + limit / 2, limit),
            None,
            "a pass just started: alive"
        );
        assert!(
            queues.wedged(started + 2 * limit, limit).is_some(),
            "none since: wedged"
        );
    }
}
