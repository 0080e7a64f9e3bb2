//! The SwarmStack pass: its variables from ConfigMaps, the file compiled, the children it owns
//! applied (and those no longer in the file pruned), its status read from theirs. It talks only
//! to the Kubernetes API: the children's own controllers do the swarm's work.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{NamespaceResourceScope, api::core::v1::ConfigMap};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{
        controller::{Action, Config as ControllerConfig},
        events::EventType,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use swarm_operator_crds::{
    SwarmConfig, SwarmNetwork, SwarmSecret, SwarmService, SwarmStack,
    conditions::{
        READY, REASON_INVALID_SPEC, REASON_NAME_CONFLICT, REASON_PROGRESSING, REASON_ROLLED_BACK,
        REASON_RUNNING, REASON_SOURCE_MISSING, STALLED, TRUE,
    },
    stack::{StackServiceStatus, SwarmStackStatus},
};
use tracing::info;

use super::objects::{Children, STACK_LABEL, StackChild, children, owned_by};
use crate::{
    conditions::{Summary, conditions},
    context::Context,
    controller::{drive_with, observed, scoped_api, stored, touched, user_changes_controller},
    error::Error,
    status::apply_status,
};

/// How long a stack's pass waits for its children to stop reporting (each report pushes it back).
const CHILDREN_SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// Field manager of the children: a hand edit of a field the stack sets is taken back.
const FIELD_MANAGER: &str = "swarm-operator-stack";
/// Reason of a stack whose changes wait for spec.paused to be false.
pub const REASON_PAUSED: &str = "Paused";

/// The SwarmServices of a scope as the SwarmService controller's watch has them, for the stack
/// controller of the same scope: it reads its children from that store and wakes on their
/// changes from it, rather than watch and hold every child a second time (a stack of 1000
/// services would hold 2000). See [`share_services`].
pub struct StackServices {
    store: Store<SwarmService>,
    changed: futures::channel::mpsc::UnboundedReceiver<ObjectRef<SwarmStack>>,
    arrived: Arc<tokio::sync::Notify>,
}

/// The SwarmService controller's side of [`StackServices`]: the store its watch fills, and the
/// stacks to wake when it reports a service they own.
pub struct ServicesForStacks {
    /// The store the SwarmService controller's watch fills.
    pub writer: kube::runtime::reflector::store::Writer<SwarmService>,
    owners: futures::channel::mpsc::UnboundedSender<ObjectRef<SwarmStack>>,
    /// Told of every stack's service the store has taken in (see [`services_in_view`]).
    arrived: Arc<tokio::sync::Notify>,
}

impl ServicesForStacks {
    /// What the watch calls with every service it reports, once its store has it: wakes the
    /// stack that owns the service, if one does. The stack controller's wakes are unbounded but
    /// taken as they come (and the stack's pass is debounced); once it has stopped, they are dropped.
    pub fn touched(&self) -> impl Fn(&SwarmService) + Send + 'static {
        let owners = self.owners.clone();
        let arrived = self.arrived.clone();
        move |svc: &SwarmService| {
            let mut owned = false;
            for stack in stack_owners(svc) {
                owned = true;
                let _ = owners.unbounded_send(stack);
            }
            if owned {
                arrived.notify_waiters();
            }
        }
    }
}

/// A store of SwarmServices for the services' controller and the stacks' controller of one scope.
pub fn share_services() -> (ServicesForStacks, StackServices) {
    let (store, writer) = kube::runtime::reflector::store();
    let (owners, changed) = futures::channel::mpsc::unbounded();
    let arrived = Arc::new(tokio::sync::Notify::new());
    (
        ServicesForStacks {
            writer,
            owners,
            arrived: arrived.clone(),
        },
        StackServices {
            store,
            changed,
            arrived,
        },
    )
}

/// The stacks that own `svc` (as `owns` would wake them: by owner reference).
pub(super) fn stack_owners(svc: &SwarmService) -> impl Iterator<Item = ObjectRef<SwarmStack>> + '_ {
    let ns = svc.namespace();
    svc.owner_references()
        .iter()
        .filter(|o| o.kind == SwarmStack::kind(&()) && o.api_version == SwarmStack::api_version(&()))
        .map(move |o| {
            let stack = ObjectRef::new(&o.name);
            match &ns {
                Some(ns) => stack.within(ns),
                None => stack,
            }
        })
}

/// Runs the SwarmStack controller until a shutdown signal. Besides its own resources, it wakes
/// on any change of the children it owns (a hand edit, a service's status) and of the ConfigMaps
/// a stack takes variables from.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>, concurrency: u16, services: StackServices) {
    let queue = ctx.queues.of::<SwarmStack>();
    let api = scoped_api::<SwarmStack>(ctx.client.clone(), namespace);
    let controller = user_changes_controller(api, queue.clone());
    let stacks = controller.store();
    let client = ctx.client.clone();
    let config = watcher::Config::default().labels(STACK_LABEL);
    // The children as the passes read them: kept by the watches that wake the stacks on their
    // changes, rather than listed four times per pass; the services in the services' store.
    let StackServices {
        store: services,
        changed: services_changed,
        arrived: services_arrived,
    } = services;
    let (networks, networks_changed) = stored(
        scoped_api::<SwarmNetwork>(client.clone(), namespace),
        config.clone(),
    );
    let (secrets, secrets_changed) = stored(
        scoped_api::<SwarmSecret>(client.clone(), namespace),
        config.clone(),
    );
    let (configs, configs_changed) = stored(scoped_api::<SwarmConfig>(client.clone(), namespace), config);
    let stores = ChildStores {
        services,
        services_arrived,
        networks,
        secrets,
        configs,
    };
    let controller = controller
        .reconcile_on(services_changed)
        .owns_stream(networks_changed)
        .owns_stream(secrets_changed)
        .owns_stream(configs_changed)
        // Names are all it needs of ConfigMaps: their metadata, not their (possibly large) data.
        .watches_stream(
            touched(
                scoped_api::<kube::core::PartialObjectMeta<ConfigMap>>(client, namespace),
                watcher::Config::default(),
            ),
            move |cm: kube::core::PartialObjectMeta<ConfigMap>| {
                let name = cm.name_any();
                queue.requested(
                    stacks
                        .state()
                        .into_iter()
                        .filter(|s| {
                            s.namespace() == cm.namespace()
                                && s.spec.values_from.iter().any(|v| v.config_map_ref.name == name)
                        })
                        .map(|s| ObjectRef::from_obj(s.as_ref())),
                )
            },
        );
    let checked = Checked::default();
    let reconcile = move |stack, ctx| reconcile(stack, ctx, stores.clone(), checked.clone());
    // While a deploy's children report one after another, one pass once they pause rather than
    // one (and a status write of every service's line) per report.
    let config = ControllerConfig::default()
        .concurrency(concurrency)
        .debounce(CHILDREN_SETTLE);
    drive_with(controller, reconcile, ctx, config).await;
}

/// The stacks' children of each kind, as their watches have them.
#[derive(Clone)]
struct ChildStores {
    services: Store<SwarmService>,
    services_arrived: Arc<tokio::sync::Notify>,
    networks: Store<SwarmNetwork>,
    secrets: Store<SwarmSecret>,
    configs: Store<SwarmConfig>,
}

/// How long the services a pass held back (see [`hold_new_services`]) count as checked by the
/// server's dry run: the pass that writes them, once what they use is Ready, comes within
/// seconds.
const CHECKED_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// By stack UID: the fingerprint of the new services (see [`new_services`]) of the last pass whose
/// dry run the server accepted. A pass with the same ones need not ask again: each pass while
/// they are held back, and the one that makes them.
#[derive(Clone)]
struct Checked(Arc<std::sync::Mutex<crate::expiring::Expiring<String, u64>>>);

impl Default for Checked {
    fn default() -> Self {
        Checked(Arc::new(std::sync::Mutex::new(crate::expiring::Expiring::new(
            CHECKED_FOR,
        ))))
    }
}

impl Checked {
    fn lock(&self) -> std::sync::MutexGuard<'_, crate::expiring::Expiring<String, u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn reconcile(
    stack: Arc<SwarmStack>,
    ctx: Arc<Context>,
    stores: ChildStores,
    checked: Checked,
) -> Result<Action, Error> {
    let name = stack.stack_name();
    let result = observed(&ctx, stack.as_ref(), &name, async {
        // As for every kind: not on a copy older than this process's last status write.
        match ctx.current(stack.clone()).await? {
            Some(stack) => pass(&stack, &ctx, &stores, &checked).await,
            None => Ok(Action::await_change()),
        }
    })
    .await;
    if result.is_ok() {
        ctx.succeeded(&ObjectRef::from_obj(stack.as_ref()));
    }
    result
}

async fn pass(
    stack: &SwarmStack,
    ctx: &Context,
    stores: &ChildStores,
    checked: &Checked,
) -> Result<Action, Error> {
    if stack.metadata.deletion_timestamp.is_some() {
        // Kubernetes' garbage collector removes the children; their controllers the swarm's objects.
        return Ok(Action::await_change());
    }
    let ns = stack.namespace().unwrap_or_default();
    let new_generation =
        stack.status.as_ref().and_then(|s| s.observed_generation) != stack.metadata.generation;
    // Dereference.
    let variables = match variables(stack, ctx, &ns).await? {
        Ok(v) => v,
        Err(missing) => {
            let summary = Summary::Reconciling {
                reason: REASON_SOURCE_MISSING,
                message: format!("ConfigMap {missing} (spec.valuesFrom) does not exist yet"),
            };
            write_status(stack, ctx, &summary, None, &Children::default()).await?;
            return Err(Error::Waiting {
                object: crate::context::resource_name(stack),
                message: format!("ConfigMap {missing} does not exist"),
            });
        }
    };
    // Compile.
    let input = super::Input {
        stack: &stack.stack_name(),
        compose: &stack.spec.compose,
        variables: &variables,
        sources: &stack.spec.sources,
        cluster_ref: stack.spec.cluster_ref.as_ref(),
    };
    let output = match super::compile(&input) {
        Ok(o) => o,
        Err(e) => {
            let refusal = Refusal {
                reason: REASON_INVALID_SPEC,
                message: e.to_string(),
            };
            return refuse(stack, ctx, new_generation, refusal).await;
        }
    };
    // As the CLI warns at every deploy: once per generation, and when they change otherwise.
    let ignored_before = stack.status.as_ref().map(|s| &s.ignored);
    if !output.ignored.is_empty() && (new_generation || ignored_before != Some(&output.ignored)) {
        let note = format!("Ignoring unsupported options: {}", output.ignored.join(", "));
        ctx.publish(stack, EventType::Warning, "IgnoredKeys", "Compile", note)
            .await;
    }
    let super::Output {
        compiled,
        ignored,
        unset,
    } = output;
    let desired = children(stack, compiled);
    let report = Report {
        desired: &desired,
        ignored: &ignored,
        unset: &unset,
    };
    // Plan and apply.
    let existing = owned_children(stack, stores).await;
    let mut plan = plan(&desired, &existing, stack.spec.prune.unwrap_or(true));
    let held = hold_new_services(&mut plan, &desired, &existing);
    if stack.spec.paused {
        let pending = plan.create.len() + plan.apply.len() + plan.prune.len();
        let summary = if pending == 0 {
            summary(&desired, &existing)
        } else {
            Summary::Stalled {
                reason: REASON_PAUSED,
                message: format!("spec.paused: {pending} change(s) of the file wait until it is false"),
            }
        };
        write_status(stack, ctx, &summary, Some(&report), &existing).await?;
        return Ok(crate::queue::requeue(ctx.settings.resync_interval));
    }
    if let Err(refused) = apply(ctx, stack, &plan, &held, checked).await? {
        return refuse(stack, ctx, new_generation, refused).await;
    }
    let created: Vec<String> = plan
        .create
        .iter()
        .filter(|c| matches!(c, Change::Service(_)))
        .map(Change::name)
        .collect();
    services_in_view(stores, &ns, created, IN_VIEW_WITHIN).await;
    // Status, from the children as the watches have them (those just applied have not reported
    // yet: their changes wake the stack again).
    let existing = if plan.is_empty() {
        existing
    } else {
        owned_children(stack, stores).await
    };
    let summary = summary(&desired, &existing);
    write_status(stack, ctx, &summary, Some(&report), &existing).await?;
    Ok(crate::queue::requeue(ctx.settings.resync_interval))
}

/// How long a pass that created services waits for the watch to show them.
const IN_VIEW_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits, at most `within`, until the services' store has every service in `names` (of
/// namespace `ns`): a pass that created them ends with them in view, so the next one, woken by
/// their reports, does not find the last few missing and create them again (each refused as
/// taken, read and applied, dry run and real: six requests instead of none; 9 of a stack of
/// 200). Its status then counts them too.
async fn services_in_view(
    stores: &ChildStores,
    ns: &str,
    mut names: Vec<String>,
    within: std::time::Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // Listening before looking, so that a service taken in between is not missed.
        let arrived = stores.services_arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        names.retain(|n| stores.services.get(&ObjectRef::new(n).within(ns)).is_none());
        if names.is_empty() || tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return;
        }
    }
}

/// Why a stack cannot be deployed as it is: its reason (InvalidSpec, NameConflict) and message.
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// A file (or a child) that cannot be deployed: Stalled with the refusal's reason, and one Warning
/// for each refusal (a new generation, or a ConfigMap's change that brings another one).
async fn refuse(
    stack: &SwarmStack,
    ctx: &Context,
    new_generation: bool,
    Refusal { reason, message }: Refusal,
) -> Result<Action, Error> {
    let said_already = stack
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|c| c.type_ == STALLED && c.status == TRUE && c.message == message);
    if new_generation || !said_already {
        ctx.publish(stack, EventType::Warning, reason, "Compile", message.clone())
            .await;
    }
    let summary = Summary::Stalled { reason, message };
    write_status(stack, ctx, &summary, None, &Children::default()).await?;
    Ok(Action::await_change())
}

/// The file's variables: valuesFrom ConfigMaps in order, then spec.variables. The name of a
/// missing ConfigMap instead.
async fn variables(
    stack: &SwarmStack,
    ctx: &Context,
    ns: &str,
) -> Result<Result<BTreeMap<String, String>, String>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let mut out = BTreeMap::new();
    for source in &stack.spec.values_from {
        let name = &source.config_map_ref.name;
        let cm = api.get_opt(name).await.map_err(|source| Error::Kube {
            operation: "get ConfigMap",
            object: name.clone(),
            source,
        })?;
        let Some(cm) = cm else {
            return Ok(Err(name.clone()));
        };
        out.extend(cm.data.unwrap_or_default());
    }
    out.extend(stack.spec.variables.clone());
    Ok(Ok(out))
}

/// The children of `stack` in `store`: labelled with its name and owned by it (a child with the
/// label but another owner is not one).
fn owned<K: Resource<DynamicType = ()> + Clone>(stack: &SwarmStack, store: &Store<K>) -> Vec<Arc<K>> {
    let (ns, name) = (stack.namespace(), stack.name_any());
    let uid = stack.metadata.uid.clone().unwrap_or_default();
    let mut children: Vec<Arc<K>> = store
        .state()
        .into_iter()
        .filter(|c| {
            c.meta().namespace == ns
                && c.meta().labels.as_ref().and_then(|l| l.get(STACK_LABEL)) == Some(&name)
                && owned_by(c.as_ref(), &uid)
        })
        .collect();
    children.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    children
}

/// The children the stack owns now, once the watches have listed them.
async fn owned_children(stack: &SwarmStack, stores: &ChildStores) -> Children {
    // Ready at once but for the first passes after a start.
    let _ = stores.services.wait_until_ready().await;
    let _ = stores.networks.wait_until_ready().await;
    let _ = stores.secrets.wait_until_ready().await;
    let _ = stores.configs.wait_until_ready().await;
    Children {
        services: owned(stack, &stores.services),
        networks: owned(stack, &stores.networks),
        secrets: owned(stack, &stores.secrets),
        configs: owned(stack, &stores.configs),
    }
}

/// A child to apply or delete.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Service(Arc<SwarmService>),
    Network(Arc<SwarmNetwork>),
    Secret(Arc<SwarmSecret>),
    Config(Arc<SwarmConfig>),
}

impl Change {
    fn name(&self) -> String {
        match self {
            Change::Service(o) => o.name_any(),
            Change::Network(o) => o.name_any(),
            Change::Secret(o) => o.name_any(),
            Change::Config(o) => o.name_any(),
        }
    }
}

/// What to create (not there: created, never taken over if someone else's has the name), what to
/// apply (the stack's, different from what it wants, including a hand edit) and what to prune
/// (the stack's, no longer in the file).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<Change>,
    pub apply: Vec<Change>,
    pub prune: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.apply.is_empty() && self.prune.is_empty()
    }
}

/// Pure: compares the children the file makes with those that exist.
pub fn plan(desired: &Children, existing: &Children, prune: bool) -> Plan {
    fn kind<K: StackChild>(
        desired: &Children,
        existing: &Children,
        wrap: fn(Arc<K>) -> Change,
        prune: bool,
        out: &mut Plan,
    ) {
        let (desired, existing) = (K::of(desired), K::of(existing));
        let current_by_name = by_name(existing);
        for d in desired {
            let current = d.meta().name.as_deref().and_then(|n| current_by_name.get(n));
            let labelled = |e: &K| {
                let have = e.meta().labels.as_ref();
                d.meta()
                    .labels
                    .iter()
                    .flatten()
                    .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
            };
            match current {
                None => out.create.push(wrap(d.clone())),
                Some(e) if !(d.same_spec(e) && labelled(e)) => out.apply.push(wrap(d.clone())),
                Some(_) => {}
            }
        }
        if prune {
            let desired_by_name = by_name(desired);
            for e in existing {
                if !e
                    .meta()
                    .name
                    .as_deref()
                    .is_some_and(|n| desired_by_name.contains_key(n))
                {
                    out.prune.push(wrap(e.clone()));
                }
            }
        }
    }
    let mut out = Plan::default();
    kind(desired, existing, Change::Network, prune, &mut out);
    kind(desired, existing, Change::Secret, prune, &mut out);
    kind(desired, existing, Change::Config, prune, &mut out);
    kind(desired, existing, Change::Service, prune, &mut out);
    out
}

/// Pure: keeps new services back until the stack's networks, secrets and configs are Ready, as
/// `docker stack deploy` makes those first. A service made before what it uses exists would wait
/// for it, reporting so (one status write more per service), and pass again once it does. Their
/// Ready wakes the stack, which makes the services then. Changes to existing services go at once.
/// Returns those held.
pub fn hold_new_services(plan: &mut Plan, desired: &Children, existing: &Children) -> Vec<Change> {
    fn ready<K: StackChild>(desired: &Children, existing: &Children) -> bool {
        let existing = by_name(K::of(existing));
        K::of(desired).iter().all(|d| {
            d.meta()
                .name
                .as_deref()
                .and_then(|n| existing.get(n))
                .filter(|e| e.same_spec(d))
                .and_then(|e| ready_of(e.as_ref(), e.conditions()))
                .is_some_and(|r| r.0)
        })
    }
    let uses_ready = ready::<SwarmNetwork>(desired, existing)
        && ready::<SwarmSecret>(desired, existing)
        && ready::<SwarmConfig>(desired, existing);
    if uses_ready {
        return Vec::new();
    }
    let (held, rest) = std::mem::take(&mut plan.create)
        .into_iter()
        .partition(|c| matches!(c, Change::Service(_)));
    plan.create = rest;
    held
}

/// Pure: what tells `services` apart from others (their names and everything written of them).
pub fn fingerprint<'a>(services: impl Iterator<Item = &'a Change>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    for change in services {
        if let Change::Service(s) = change {
            serde_json::to_string(s.as_ref())
                .unwrap_or_default()
                .hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// The new services of a pass: those `plan` creates and those `held` back.
fn new_services<'a>(plan: &'a Plan, held: &'a [Change]) -> impl Iterator<Item = &'a Change> + Clone {
    plan.create
        .iter()
        .filter(|c| matches!(c, Change::Service(_)))
        .chain(held)
}

/// Pure: what the server's dry run checks before `plan` is written: all of it, and the new
/// services `held` back (a file whose service cannot be made makes no network for it either),
/// but not the new services if an earlier pass had the same ones checked (`checked_before`:
/// their fingerprint then), as the pass that makes them after holding them back. With the
/// fingerprint of this pass's new services, None when it has none.
pub fn to_check(plan: &Plan, held: &[Change], checked_before: Option<u64>) -> (Plan, Option<u64>) {
    let services = new_services(plan, held);
    let now = services
        .clone()
        .next()
        .is_some()
        .then(|| fingerprint(services.clone()));
    let seen = now.is_some() && checked_before == now;
    let others = plan.create.iter().filter(|c| !matches!(c, Change::Service(_)));
    let check = Plan {
        create: others.chain(services.filter(|_| !seen)).cloned().collect(),
        apply: plan.apply.clone(),
        prune: Vec::new(),
    };
    (check, now)
}

/// Applies and prunes. A child the API server refuses (its validation rules) is the file's
/// fault: its message, naming the child, instead of an error to retry.
async fn apply(
    ctx: &Context,
    stack: &SwarmStack,
    plan: &Plan,
    held: &[Change],
    checked: &Checked,
) -> Result<Result<(), Refusal>, Error> {
    let ns = &stack.namespace().unwrap_or_default();
    // Every write on the server's dry run first: a child it refuses leaves the others as they
    // were, so a bad change is never half applied.
    let uid = stack.metadata.uid.clone().unwrap_or_default();
    let checked_before = checked.lock().get(&uid).copied();
    let (check, new_services_now) = to_check(plan, held, checked_before);
    if let Err(refused) = write_all(ctx, stack, &check, true).await? {
        return Ok(Err(refused));
    }
    if let Some(now) = new_services_now {
        checked.lock().insert(uid, now);
    }
    if let Err(refused) = write_all(ctx, stack, plan, false).await? {
        return Ok(Err(refused));
    }
    for change in &plan.prune {
        let name = change.name();
        let result = match change {
            Change::Service(_) => delete_one::<SwarmService>(ctx, ns, &name).await,
            Change::Network(_) => delete_one::<SwarmNetwork>(ctx, ns, &name).await,
            Change::Secret(_) => delete_one::<SwarmSecret>(ctx, ns, &name).await,
            Change::Config(_) => delete_one::<SwarmConfig>(ctx, ns, &name).await,
        };
        result.map_err(|source| Error::Kube {
            operation: "prune stack child",
            object: name.clone(),
            source,
        })?;
        info!(child = %name, kind = kind_of(change), "pruned: no longer in the stack file");
    }
    Ok(Ok(()))
}

/// Children written at once: enough to keep the API server busy, few enough to leave it to others.
/// A stack went no faster with 32 on two cores. (Over HTTP/1.1 each write in flight held a
/// connection of its own, about 80 KB; over HTTP/2 they are streams of one, see `api_client`.)
const WRITES_AT_ONCE: usize = 16;

/// Creates and applies the plan's children, on the server's dry run or for real, many at once:
/// networks, secrets and configs first, then the services that use them. The first refusal in the
/// plan's order is the one reported.
async fn write_all(
    ctx: &Context,
    stack: &SwarmStack,
    plan: &Plan,
    dry_run: bool,
) -> Result<Result<(), Refusal>, Error> {
    use futures::{StreamExt, stream};
    // Owned items (an Arc's clone each): a closure over borrowed ones is not general enough for
    // the runtime.
    let creates = plan.create.iter().map(|c| (c.clone(), true));
    let (services, others): (Vec<_>, Vec<_>) = creates
        .chain(plan.apply.iter().map(|c| (c.clone(), false)))
        .partition(|(c, _)| matches!(c, Change::Service(_)));
    for wave in [others, services] {
        // Each write's future made as it starts, not all of them first: a waiting future is as
        // large as a running one (about 11 KiB), 11 MiB for a stack of 1000 services.
        let writes = stream::iter(wave).map(|(change, create)| async move {
            let result = write_one(ctx, stack, &change, create, dry_run).await;
            (change, create, result)
        });
        let results: Vec<_> = writes.buffered(WRITES_AT_ONCE).collect().await;
        for (change, create, result) in results {
            let child = format!("{} {}", kind_of(&change), change.name());
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.code == 409 && create => {
                    return Ok(Err(Refusal {
                        reason: REASON_NAME_CONFLICT,
                        message: format!(
                            "{child} exists and is not this stack's: rename it, or the object in the file"
                        ),
                    }));
                }
                Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
                    return Ok(Err(Refusal {
                        reason: REASON_INVALID_SPEC,
                        message: format!("{child}: {}", s.message),
                    }));
                }
                Err(source) => {
                    return Err(Error::Kube {
                        operation: "apply stack child",
                        object: change.name(),
                        source,
                    });
                }
            }
        }
    }
    Ok(Ok(()))
}

/// Writes one child. A create that finds the name taken by a child of this very stack (one the
/// watch had not shown yet) applies it instead.
async fn write_one(
    ctx: &Context,
    stack: &SwarmStack,
    change: &Change,
    create: bool,
    dry_run: bool,
) -> Result<(), kube::Error> {
    let ns = &stack.namespace().unwrap_or_default();
    let uid = stack.metadata.uid.clone().unwrap_or_default();
    match change {
        Change::Service(o) => write_child(ctx, ns, &uid, o.as_ref(), create, dry_run).await,
        Change::Network(o) => write_child(ctx, ns, &uid, o.as_ref(), create, dry_run).await,
        Change::Secret(o) => write_child(ctx, ns, &uid, o.as_ref(), create, dry_run).await,
        Change::Config(o) => write_child(ctx, ns, &uid, o.as_ref(), create, dry_run).await,
    }
}

async fn write_child<K>(
    ctx: &Context,
    ns: &str,
    uid: &str,
    obj: &K,
    create: bool,
    dry_run: bool,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    match apply_one(ctx, ns, obj, create, dry_run).await {
        Err(kube::Error::Api(s)) if s.code == 409 && create => {
            let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
            match api.get_opt(&obj.name_any()).await? {
                Some(existing) if owned_by(&existing, uid) => apply_one(ctx, ns, obj, false, dry_run).await,
                _ => Err(kube::Error::Api(s)),
            }
        }
        other => other,
    }
}

fn kind_of(change: &Change) -> &'static str {
    match change {
        Change::Service(_) => "SwarmService",
        Change::Network(_) => "SwarmNetwork",
        Change::Secret(_) => "SwarmSecret",
        Change::Config(_) => "SwarmConfig",
    }
}

/// Creates `obj` (`create`: failing if the name is taken) or applies it (server-side apply,
/// forced: the stack's fields are the stack's).
async fn apply_one<K>(
    ctx: &Context,
    ns: &str,
    obj: &K,
    create: bool,
    dry_run: bool,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    // The child as compiled: its kind and version are serialized with it, and it has no status.
    // The object the server answers with is not read (see `crate::write`).
    if create {
        let params = kube::api::PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            dry_run,
        };
        return crate::write::create(&api, &params, obj).await;
    }
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    crate::write::patch(&api, &obj.name_any(), None, &params, &Patch::Apply(obj)).await
}

async fn delete_one<K>(ctx: &Context, ns: &str, name: &str) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether a child is Ready, its reason (its Stalled one when stalled) and its message.
type Readiness = (bool, String, String);

/// A child's Ready condition, when it speaks of its current generation.
fn ready_of<K: Resource>(
    obj: &K,
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<Readiness> {
    let ready = conditions.iter().find(|c| c.type_ == READY)?;
    if ready.observed_generation.is_some() && ready.observed_generation != obj.meta().generation {
        return None;
    }
    let stalled = conditions.iter().any(|c| c.type_ == STALLED && c.status == TRUE);
    let reason = if stalled {
        conditions
            .iter()
            .find(|c| c.type_ == STALLED)
            .map(|c| c.reason.clone())
            .unwrap_or_default()
    } else {
        ready.reason.clone()
    };
    Some((ready.status == TRUE, reason, ready.message.clone()))
}

/// Children of one kind by name: the lookups of a pass cost one hash each, not a scan of the
/// stack (a stack of 1000 compared names a million times per pass, each a copy of both).
fn by_name<K: Resource>(children: &[Arc<K>]) -> std::collections::HashMap<&str, &Arc<K>> {
    children
        .iter()
        .filter_map(|c| Some((c.meta().name.as_deref()?, c)))
        .collect()
}

/// One line per service of the file, from its SwarmService.
pub fn service_lines(desired: &Children, existing: &Children) -> Vec<StackServiceStatus> {
    let existing = by_name(&existing.services);
    desired
        .services
        .iter()
        .map(|d| {
            let name = d
                .labels()
                .get(super::objects::IN_FILE_LABEL)
                .cloned()
                .unwrap_or_else(|| d.name_any());
            let current = d.meta().name.as_deref().and_then(|n| existing.get(n));
            let status = current.and_then(|c| c.status.as_ref());
            let conditions = status.map(|s| &s.conditions[..]).unwrap_or_default();
            let ready = current.and_then(|c| ready_of(c.as_ref(), conditions));
            let is_ready = ready.as_ref().is_some_and(|r| r.0) && current.is_some_and(|c| c.spec == d.spec);
            StackServiceStatus {
                name,
                service_name: d.service_name(),
                desired: status.and_then(|s| s.desired_replicas),
                running: status.and_then(|s| s.replicas),
                ready: is_ready,
                reason: ready.as_ref().map(|r| r.1.clone()),
                message: ready.filter(|r| !r.0).map(|r| r.2).filter(|m| !m.is_empty()),
            }
        })
        .collect()
}

/// Pure: what the stack as a whole says. A service Swarm rolled back stalls the stack naming
/// it; any child stalled stalls it; Ready when every child is.
pub fn summary(desired: &Children, existing: &Children) -> Summary {
    let lines = service_lines(desired, existing);
    let rolled_back: Vec<&str> = lines
        .iter()
        .filter(|l| l.reason.as_deref() == Some(REASON_ROLLED_BACK))
        .map(|l| l.service_name.as_str())
        .collect();
    if !rolled_back.is_empty() {
        return Summary::Stalled {
            reason: REASON_ROLLED_BACK,
            message: format!("Swarm rolled back {}", rolled_back.join(", ")),
        };
    }
    let mut tally = Tally::default();
    tally.each::<SwarmService>(desired, existing);
    tally.each::<SwarmNetwork>(desired, existing);
    tally.each::<SwarmSecret>(desired, existing);
    tally.each::<SwarmConfig>(desired, existing);
    let Tally { stalled, waiting } = tally;
    if let Some((_, reason)) = stalled.first() {
        let reason = known_reason(reason);
        return Summary::Stalled {
            reason,
            message: stalled
                .iter()
                .map(|(m, _)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        };
    }
    if waiting.is_empty() {
        return Summary::Ready {
            reason: REASON_RUNNING,
            message: format!("all {} services are ready", desired.services.len()),
        };
    }
    Summary::Reconciling {
        reason: REASON_PROGRESSING,
        message: format!("waiting for {}", waiting.join(", ")),
    }
}

/// The children that are not Ready: stalled ones (message, reason) apart from those still coming.
#[derive(Default)]
struct Tally {
    stalled: Vec<(String, String)>,
    waiting: Vec<String>,
}

impl Tally {
    fn each<K: StackChild>(&mut self, desired: &Children, existing: &Children) {
        let existing = by_name(K::of(existing));
        for d in K::of(desired) {
            let current = d.meta().name.as_deref().and_then(|n| existing.get(n));
            let conditions = current.map(|c| c.conditions()).unwrap_or_default();
            // A child not yet at the spec the stack wants is not ready, whatever it says.
            let ready = current
                .filter(|c| c.same_spec(d))
                .and_then(|c| ready_of(c.as_ref(), conditions));
            let (what, name) = (K::WHAT, d.shown_name());
            match ready {
                Some((true, ..)) => {}
                Some((false, reason, message)) if is_stalled(conditions) => {
                    self.stalled.push((format!("{what} {name}: {message}"), reason))
                }
                _ => self.waiting.push(format!("{what} {name}")),
            }
        }
    }
}

/// A child's Stalled reason as one of the named reasons (a condition's reason is the stack's too).
fn known_reason(reason: &str) -> &'static str {
    use swarm_operator_crds::conditions::*;
    [
        REASON_NAME_CONFLICT,
        REASON_NOT_PERMITTED,
        REASON_JOB_FAILED,
        REASON_NO_ELIGIBLE_NODE,
        REASON_TASKS_FAILING,
        REASON_ROLLED_BACK,
        REASON_UPDATE_PAUSED,
        REASON_WAITING_FOR_DEPENDENCY,
        REASON_ENGINE_ERROR,
        REASON_CLUSTER_UNAVAILABLE,
        REASON_SOURCE_MISSING,
    ]
    .into_iter()
    .find(|r| *r == reason)
    .unwrap_or(REASON_INVALID_SPEC)
}

fn is_stalled(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions.iter().any(|c| c.type_ == STALLED && c.status == TRUE)
}

/// What a pass that compiled the file reports in the status: the children it wants, the keys
/// ignored and the variables unset.
struct Report<'a> {
    desired: &'a Children,
    ignored: &'a [String],
    unset: &'a [String],
}

async fn write_status(
    stack: &SwarmStack,
    ctx: &Context,
    summary: &Summary,
    report: Option<&Report<'_>>,
    existing: &Children,
) -> Result<(), Error> {
    let previous = stack.status.clone().unwrap_or_default();
    let lines = report.map(|r| service_lines(r.desired, existing));
    let status = SwarmStackStatus {
        observed_generation: stack.metadata.generation,
        conditions: conditions(&previous.conditions, stack.metadata.generation, summary),
        stack_name: Some(stack.stack_name()),
        service_count: lines.as_ref().map(|l| l.len() as i32).or(previous.service_count),
        ready_services: lines
            .as_ref()
            .map(|l| format!("{}/{}", l.iter().filter(|x| x.ready).count(), l.len()))
            .or(previous.ready_services.clone()),
        services: lines.unwrap_or(previous.services.clone()),
        ignored: report
            .map(|r| r.ignored.to_vec())
            .unwrap_or(previous.ignored.clone()),
        unset_variables: report
            .map(|r| r.unset.to_vec())
            .unwrap_or(previous.unset_variables.clone()),
    };
    let api: Api<SwarmStack> = Api::namespaced(ctx.client.clone(), &stack.namespace().unwrap_or_default());
    apply_status(ctx, &api, stack, stack.status.as_ref(), &status).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube::runtime::{reflector, watcher::Event};
    use tokio::time::{Instant, sleep};

    use super::*;

    fn stores() -> (ChildStores, reflector::store::Writer<SwarmService>) {
        let (services, writer) = reflector::store();
        let stores = ChildStores {
            services,
            services_arrived: Arc::new(tokio::sync::Notify::new()),
            networks: reflector::store().0,
            secrets: reflector::store().0,
            configs: reflector::store().0,
        };
        (stores, writer)
    }

    fn service(name: &str) -> SwarmService {
        let mut svc = SwarmService::new(name, Default::default());
        svc.metadata.namespace = Some("team".into());
        svc
    }

    // The clock is paused: time moves only when every task waits, so the durations are exact.
    #[tokio::test(start_paused = true)]
    async fn a_pass_that_created_services_ends_once_the_watch_shows_them_or_at_the_limit() {
        let (stores, mut writer) = stores();
        let names = || vec!["a".to_string(), "b".to_string()];
        let limit = Duration::from_secs(2);

        // Neither arrives: the wait ends at its limit.
        let start = Instant::now();
        services_in_view(&stores, "team", names(), limit).await;
        assert_eq!(start.elapsed(), limit);

        // Both arrive, one after the other: the wait ends with the second.
        let arrived = stores.services_arrived.clone();
        let start = Instant::now();
        let waiting = tokio::spawn(async move {
            services_in_view(&stores, "team", names(), limit).await;
            start.elapsed()
        });
        for name in ["a", "b"] {
            sleep(Duration::from_millis(100)).await;
            writer.apply_watcher_event(&Event::Apply(service(name)));
            arrived.notify_waiters();
        }
        assert_eq!(waiting.await.unwrap(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn services_already_in_view_or_of_another_namespace_are_not_waited_for_or_found() {
        let (stores, mut writer) = stores();
        writer.apply_watcher_event(&Event::Apply(service("a")));
        let start = Instant::now();
        services_in_view(&stores, "team", vec!["a".into()], Duration::from_secs(2)).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // The same name in another namespace is another service: waited for until the limit.
        services_in_view(&stores, "other", vec!["a".into()], Duration::from_secs(2)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
