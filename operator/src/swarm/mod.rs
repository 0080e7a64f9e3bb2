//! The one place that talks to the Docker Engine API. This file holds the connection to one
//! manager endpoint (version negotiation, TLS) and the wrapper every call goes through (the
//! --engine-qps bound, metrics, endpoint health); the calls themselves live per object kind in
//! `services.rs`, `networks.rs`, `data.rs` and `nodes.rs`, and errors in `error.rs`. Calls are by
//! object ID once known; names are resolved by exact match because the Engine also accepts ID
//! prefixes as names.

mod data;
mod error;
pub mod limit;
mod networks;
mod nodes;
mod raw;
mod services;
mod snapshot;
mod tls;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bollard::{Docker, models::Service};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

pub use data::DataKind;
pub use error::EngineError;
pub use limit::EngineCalls;
pub use nodes::{JoinTokens, NodeFacts, SwarmInfo};
pub use raw::BodyStream;
use raw::{RawClient, RawError, repair_keys};
pub use services::{LogOptions, allocated, allocation_shown};
use snapshot::{Listing, Stamped};
pub use snapshot::{Part, Snapshot};
pub use tls::TlsFiles;

/// Oldest Engine API this operator speaks: Debian bookworm's docker.io 20.10 (API 1.41).
pub const MIN_API_VERSION: (usize, usize) = (1, 41);

/// A connection to one Swarm manager endpoint.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// Reads that keep every key the Engine writes (see raw.rs).
    raw: RawClient,
    host: String,
    /// Cleared when a call finds the endpoint gone, no manager, or without quorum: the cluster's
    /// connection then moves to another endpoint.
    healthy: Arc<AtomicBool>,
    /// Woken when `healthy` is cleared: calls still waiting on this endpoint give up at once
    /// rather than at their timeout (a half-open connection answers nothing).
    failed: Arc<tokio::sync::Notify>,
    /// The cluster's shared listing of services, tasks and nodes, when it has one.
    snapshot: Option<Arc<Snapshot>>,
    /// The --engine-qps bound and the call counters, shared by every engine of the process.
    calls: Arc<EngineCalls>,
}

/// Longest a single Engine call may take before the endpoint counts as not answering.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine {
    /// Connects to `host` (`unix:///var/run/docker.sock`, `tcp://host:2376`), over mutual TLS when
    /// `tls` is given, and negotiates the API version down to what the Engine speaks.
    pub async fn connect(
        host: &str,
        tls: Option<&TlsFiles>,
        calls: Arc<EngineCalls>,
    ) -> Result<Self, EngineError> {
        let host = host.to_string();
        let connect_err = |source| EngineError::Connect {
            host: host.clone(),
            source,
        };
        let connector = match tls {
            Some(files) if host.starts_with("tcp://") => {
                Some(files.connector().map_err(|message| EngineError::Tls {
                    host: host.clone(),
                    message,
                })?)
            }
            _ => None,
        };
        let docker = match &connector {
            Some(connector) => https_docker(&host, connector.clone()).map_err(connect_err)?,
            None => Docker::connect_with_host(&host).map_err(connect_err)?,
        }
        .with_timeout(CALL_TIMEOUT);
        let raw = RawClient::new(&host, connector).ok_or_else(|| EngineError::Tls {
            host: host.clone(),
            message: "unsupported endpoint: use unix:///path or tcp://host:port".into(),
        })?;
        let docker = match docker.negotiate_version().await {
            Ok(docker) => docker,
            Err(source) => {
                // The HTTP client's words for a refused client certificate are vague; ask TLS.
                let addr = host.trim_start_matches("tcp://").trim_end_matches('/');
                if let Some(files) = tls.filter(|_| host.starts_with("tcp://"))
                    && let Some(message) = files.diagnose(addr).await
                {
                    return Err(EngineError::Tls { host, message });
                }
                return Err(connect_err(source));
            }
        };
        let version = docker.client_version();
        if (version.major_version, version.minor_version) < MIN_API_VERSION {
            return Err(EngineError::TooOld {
                host,
                version: version.to_string(),
            });
        }
        debug!(%host, api = %version, tls = tls.is_some(), "connected to the Docker Engine");
        Ok(Engine {
            docker,
            raw,
            host,
            healthy: Arc::new(AtomicBool::new(true)),
            failed: Arc::new(tokio::sync::Notify::new()),
            snapshot: None,
            calls,
        })
    }

    /// Reads of services, tasks and nodes go through `snapshot`, shared by the cluster.
    pub fn with_snapshot(mut self, snapshot: Arc<Snapshot>) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// The cluster's shared listing of services, tasks and nodes, and whether it saw service `key`
    /// (name or ID) as it is now.
    pub(super) async fn shared_listing(
        &self,
        key: &str,
    ) -> Result<Option<Arc<Stamped<Listing>>>, EngineError> {
        let Some(snapshot) = &self.snapshot else {
            return Ok(None);
        };
        let listing = snapshot
            .services(|| async {
                let services = self.read_text("list services", "", "/services").await?;
                let tasks = self.read_text("list tasks", "", "/tasks").await?;
                let nodes = self.nodes().await?.iter().map(NodeFacts::of).collect();
                Listing::new(services, tasks, nodes).map_err(|e| unexpected("list services", "", e))
            })
            .await?;
        let found = listing.value.names(key);
        let (name, id) = (found.map(|f| f.0), found.map(|f| f.1));
        let keys: Vec<&str> = [Some(key), name, id].into_iter().flatten().collect();
        Ok(snapshot
            .is_current(Part::Services, &listing, &keys)
            .then_some(listing))
    }

    /// Names of the services whose spec satisfies `uses`, sorted: from the shared listing (up to
    /// a second old) for status, or `exact`ly as they are now before a removal. Only the names
    /// are copied out of the listing.
    pub(super) async fn service_names_where(
        &self,
        exact: bool,
        uses: impl Fn(&bollard::models::ServiceSpec) -> bool,
    ) -> Result<Vec<String>, EngineError> {
        let name_if_used = |s: &Service| {
            s.spec
                .as_ref()
                .filter(|spec| uses(spec))
                .and_then(|spec| spec.name.clone())
        };
        let listing = if exact {
            None
        } else {
            self.shared_listing("").await?
        };
        // One service parsed at a time: all of a listing's at once were 2 MB for 1000 services,
        // for the few names kept. A service bollard cannot read sends us to the Engine instead.
        let listed = listing.and_then(|l| {
            let mut names = Vec::new();
            for service in l.value.all_services() {
                names.extend(name_if_used(&service.ok()?));
            }
            Some(names)
        });
        let mut names: Vec<String> = match listed {
            Some(names) => names,
            None => self
                .all_services()
                .await?
                .iter()
                .filter_map(name_if_used)
                .collect(),
        };
        names.sort();
        Ok(names)
    }

    /// Runs our own write `call` to the `part` object `name`, whose swarm event is then known as
    /// its echo and wakes nothing: the pass that wrote has seen the result.
    pub(super) async fn own_write<T>(
        &self,
        part: Part,
        name: &str,
        call: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        self.own_write_echoed(part, name, 1, call).await
    }

    /// Removes our `part` object `id`, named `name` (as its swarm event will name it), with the
    /// Engine `call` named `operation`: its event is our own echo, and one already gone counts as
    /// removed.
    pub(super) async fn own_removal(
        &self,
        part: Part,
        operation: &'static str,
        id: &str,
        name: &str,
        call: impl Future<Output = Result<(), bollard::errors::Error>>,
    ) -> Result<(), EngineError> {
        self.bypass_listing(part, &[id, name]);
        let remove = self.call(operation, id, true, call);
        gone_is_fine(self.own_write(part, name, remove).await)
    }

    /// [`own_write`](Self::own_write) of a write the swarm answers with `events` events.
    pub(super) async fn own_write_echoed<T>(
        &self,
        part: Part,
        name: &str,
        events: u32,
        call: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let Some(snapshot) = &self.snapshot else {
            return call.await;
        };
        snapshot.expect_echo(part, name, events);
        let result = call.await;
        if result.is_err() {
            snapshot.cancel_echo(part, name, events);
        }
        result
    }

    /// Our own write to the `part` object named (or with ID) `keys`: later reads of it bypass the
    /// shared listing.
    pub(super) fn bypass_listing(&self, part: Part, keys: &[&str]) {
        if let Some(snapshot) = &self.snapshot {
            keys.iter().for_each(|k| snapshot.changed(part, k));
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// False once a call found this endpoint unusable (see [`EngineError::endpoint_failed`]).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Makes one bollard call within the --engine-qps bound, counts it in the metrics and notes an
    /// endpoint failure; every Engine call but the raw reads (`read`) goes through here.
    pub(super) async fn call<T>(
        &self,
        operation: &'static str,
        object: &str,
        write: bool,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EngineError> {
        self.calls.admit().await;
        if write && !self.calls.leadership.holds() {
            self.calls.metrics.write_refused("engine");
            return Err(EngineError::NotLeader {
                operation,
                object: object.to_string(),
            });
        }
        // A write is awaited to its end (or timeout): given up half-way, nobody would know
        // whether it happened. A read is given up as soon as its endpoint is found failed.
        let result = if write {
            Box::pin(call).await
        } else {
            let Some(result) = self.unless_failed(call).await else {
                self.calls.metrics.engine_call(operation, write, false);
                return Err(EngineError::abandoned(operation, object));
            };
            result
        };
        self.calls.metrics.engine_call(operation, write, result.is_ok());
        result.map_err(|e| self.endpoint_checked(EngineError::call(operation, object, e)))
    }

    /// The read `call`, unless this endpoint is found failed first (by another call, or the event
    /// stream's check): then None.
    async fn unless_failed<T>(&self, call: impl Future<Output = T>) -> Option<T> {
        let failed = self.failed.notified();
        if !self.is_healthy() {
            return None;
        }
        // Boxed: bollard's futures are large, and every pass nests many of them.
        let call = Box::pin(call);
        tokio::select! {
            result = call => Some(result),
            () = failed => None,
        }
    }

    /// This endpoint is not to be used until the connection has probed the endpoints again.
    pub fn set_failed(&self) {
        self.healthy.store(false, Ordering::Relaxed);
        self.failed.notify_waiters();
    }

    pub(super) fn endpoint_checked(&self, err: EngineError) -> EngineError {
        if err.endpoint_failed() && self.healthy.swap(false, Ordering::Relaxed) {
            self.failed.notify_waiters();
            warn!(endpoint = %self.host, error = %err, "endpoint failed; the next call looks for another manager");
        }
        err
    }

    /// GETs `path` and parses it into bollard's types after repairing the keys they misspell.
    pub(super) async fn read<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        object: &str,
        path: &str,
    ) -> Result<T, EngineError> {
        let body = self.read_body(operation, object, path).await?;
        serde_json::from_slice(&body).map_err(|e| unexpected(operation, object, e))
    }

    /// The Engine's answer to `path`, as JSON text (keys repaired), not parsed.
    pub(super) async fn read_text(
        &self,
        operation: &'static str,
        object: &str,
        path: &str,
    ) -> Result<String, EngineError> {
        let body = self.read_body(operation, object, path).await?;
        String::from_utf8(body).map_err(|e| unexpected(operation, object, e))
    }

    async fn read_body(
        &self,
        operation: &'static str,
        object: &str,
        path: &str,
    ) -> Result<Vec<u8>, EngineError> {
        let err = |status, message| EngineError::Read {
            operation,
            object: object.to_string(),
            status,
            message,
        };
        self.calls.admit().await;
        let version = self.docker.client_version();
        let version = format!("{}.{}", version.major_version, version.minor_version);
        let get = self.raw.get(&version, path);
        let Some(got) = self.unless_failed(get).await else {
            self.calls.metrics.engine_call(operation, false, false);
            return Err(EngineError::abandoned(operation, object));
        };
        self.calls.metrics.engine_call(operation, false, got.is_ok());
        let mut body =
            got.map_err(|RawError { status, message }| self.endpoint_checked(err(status, message)))?;
        repair_keys(&mut body);
        Ok(body)
    }
}

/// bollard over a hyper client that speaks mutual TLS with `connector`.
fn https_docker(
    host: &str,
    connector: hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
) -> Result<Docker, bollard::errors::Error> {
    let client = Arc::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector),
    );
    let addr = host.trim_start_matches("tcp://").trim_end_matches('/');
    Docker::connect_with_custom_transport(
        move |request: bollard::BollardRequest| {
            let client = Arc::clone(&client);
            Box::pin(async move {
                client
                    .request(request)
                    .await
                    .map_err(bollard::errors::Error::from)
            })
        },
        Some(format!("https://{addr}")),
        CALL_TIMEOUT.as_secs(),
        bollard::API_DEFAULT_VERSION,
    )
}

/// A remove that finds the object already gone has done its job.
fn gone_is_fine(result: Result<(), EngineError>) -> Result<(), EngineError> {
    match result {
        Err(err) if err.is_not_found() => Ok(()),
        other => other,
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(super) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An answer the Engine gave (200) that is not what `operation` expects.
fn unexpected(operation: &'static str, object: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Read {
        operation,
        object: object.to_string(),
        status: Some(200),
        message: format!("unexpected answer: {e}"),
    }
}
