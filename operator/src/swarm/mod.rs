//! The one place that talks to the Docker Engine API: connection and version negotiation, every call
//! the reconcilers make, and retries on "update out of sequence". Calls are by object ID once known;
//! names are resolved by exact match because the Engine also accepts ID prefixes as names.

pub mod limit;
mod raw;
mod snapshot;
mod tls;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bollard::{
    Docker,
    auth::DockerCredentials,
    models::{Service, ServiceSpec, Task},
    query_parameters::UpdateServiceOptions,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{debug, warn};

use raw::{RawClient, RawError, repair_keys};
use snapshot::{DataObject, Listing, Stamped};
pub use snapshot::{Part, Snapshot};
pub use tls::TlsFiles;

use crate::metrics::metrics;
/// Swarm secrets and configs are handled alike; this says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    Secret,
    Config,
}

impl DataKind {
    fn part(self) -> Part {
        match self {
            DataKind::Secret => Part::Secrets,
            DataKind::Config => Part::Configs,
        }
    }
}

/// What managers that cannot act for the swarm answer (Engine 20.10 wording).
const NOT_A_WORKING_MANAGER: [&str; 4] = [
    "not a swarm manager",
    "does not have a leader",
    "not part of a swarm",
    "rpc error: code = Unavailable",
];

/// Oldest Engine API this operator speaks: Debian bookworm's docker.io 20.10 (API 1.41).
pub const MIN_API_VERSION: (usize, usize) = (1, 41);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot connect to the Docker Engine at {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the Docker Engine at {host} speaks API {version}, older than the 1.41 this operator needs")]
    TooOld { host: String, version: String },
    #[error("TLS for {host}: {message}")]
    Tls { host: String, message: String },
    #[error("Engine API {operation} {object}: {message}")]
    Read {
        operation: &'static str,
        object: String,
        status: Option<u16>,
        message: String,
    },
    #[error("Engine API {operation} {object}: {source}")]
    Call {
        operation: &'static str,
        object: String,
        #[source]
        source: bollard::errors::Error,
    },
}

impl EngineError {
    fn call(operation: &'static str, object: &str, source: bollard::errors::Error) -> Self {
        EngineError::Call {
            operation,
            object: object.to_string(),
            source,
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            EngineError::Read { status, .. } => *status,
            EngineError::Call {
                source: bollard::errors::Error::DockerResponseServerError { status_code, .. },
                ..
            } => Some(*status_code),
            _ => None,
        }
    }

    /// The message the Engine itself gave, for conditions users read.
    pub fn engine_message(&self) -> String {
        match self {
            EngineError::Read { message, .. } => message.clone(),
            EngineError::Call {
                source: bollard::errors::Error::DockerResponseServerError { message, .. },
                ..
            } => message.clone(),
            other => other.to_string(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 409: a name already taken (create) or a stale version index (update).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    pub fn is_out_of_sequence(&self) -> bool {
        self.engine_message().contains("update out of sequence")
    }

    /// The endpoint itself is the problem, not the request: it does not answer (connection refused,
    /// timeout, TLS handshake), is no manager, or is a manager of a swarm without quorum. Another
    /// manager may do.
    pub fn endpoint_failed(&self) -> bool {
        use bollard::errors::Error as B;
        match self {
            EngineError::Connect { .. } | EngineError::TooOld { .. } | EngineError::Tls { .. } => true,
            EngineError::Read { status: None, .. } => true,
            EngineError::Call {
                source: B::JsonDataError { .. } | B::JsonSerdeError { .. },
                ..
            } => false,
            EngineError::Call {
                source: B::DockerResponseServerError { .. },
                ..
            }
            | EngineError::Read { .. } => {
                let message = self.engine_message();
                self.status() == Some(503) || NOT_A_WORKING_MANAGER.iter().any(|m| message.contains(m))
            }
            EngineError::Call { .. } => true,
        }
    }

    /// 400: the Engine rejected the spec itself; retrying the same spec cannot succeed.
    pub fn is_invalid_spec(&self) -> bool {
        self.status() == Some(400)
    }
}

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
    /// The cluster's shared listing of services, tasks and nodes, when it has one.
    snapshot: Option<Arc<Snapshot>>,
}

const UPDATE_RETRIES: usize = 5;
/// Longest a single Engine call may take before the endpoint counts as not answering.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine {
    /// Connects to `host` (`unix:///var/run/docker.sock`, `tcp://host:2376`), over mutual TLS when
    /// `tls` is given, and negotiates the API version down to what the Engine speaks.
    pub async fn connect(host: &str, tls: Option<&TlsFiles>) -> Result<Self, EngineError> {
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
            snapshot: None,
        })
    }

    /// Reads of services, tasks and nodes go through `snapshot`, shared by the cluster.
    pub fn with_snapshot(mut self, snapshot: Arc<Snapshot>) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// The cluster's shared listing of services, tasks and nodes, and whether it saw service `key`
    /// (name or ID) as it is now.
    async fn listed(&self, key: &str) -> Result<Option<Arc<Stamped<Listing>>>, EngineError> {
        let Some(snapshot) = &self.snapshot else {
            return Ok(None);
        };
        let listing = snapshot
            .services(|| async {
                let services = self.all_services().await?;
                let tasks: Vec<Task> = self.read("list tasks", "", "/tasks").await?;
                let nodes = hostnames(self.nodes().await?);
                Ok::<_, EngineError>(Listing::new(services, tasks, nodes))
            })
            .await?;
        let found = listing
            .value
            .services
            .get(key)
            .or_else(|| listing.value.service_by_id(key));
        let name = found.and_then(|s| s.spec.as_ref()?.name.as_deref());
        let id = found.and_then(|s| s.id.as_deref());
        let keys: Vec<&str> = [Some(key), name, id].into_iter().flatten().collect();
        Ok(snapshot
            .is_current(Part::Services, &listing, &keys)
            .then_some(listing))
    }

    /// The shared listing of services when there is one, however recent, or a fresh list of all.
    async fn services_for_users(&self, exact: bool) -> Result<Vec<Service>, EngineError> {
        if !exact && let Some(listing) = self.listed("").await? {
            return Ok(listing.value.services.values().cloned().collect());
        }
        self.all_services().await
    }

    /// Runs our own write `call` to the `part` object `name`, whose swarm event is then known as
    /// its echo and wakes nothing: the pass that wrote has seen the result.
    async fn echoed<T>(
        &self,
        part: Part,
        name: &str,
        call: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let Some(snapshot) = &self.snapshot else {
            return call.await;
        };
        snapshot.expect_echo(part, name);
        let result = call.await;
        if result.is_err() {
            snapshot.cancel_echo(part, name);
        }
        result
    }

    /// Our own write to the `part` object named (or with ID) `keys`: later reads of it bypass the
    /// shared listing.
    fn wrote(&self, part: Part, keys: &[&str]) {
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
    async fn call<T>(
        &self,
        operation: &'static str,
        object: &str,
        write: bool,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EngineError> {
        limit::acquire().await;
        let result = call.await;
        metrics().engine_call(operation, write, result.is_ok());
        result.map_err(|e| self.noted(EngineError::call(operation, object, e)))
    }

    fn noted(&self, err: EngineError) -> EngineError {
        if err.endpoint_failed() && self.healthy.swap(false, Ordering::Relaxed) {
            warn!(endpoint = %self.host, error = %err, "endpoint failed; the next call looks for another manager");
        }
        err
    }

    /// What `docker info` says of this node's part in the swarm.
    pub async fn swarm_info(&self) -> Result<SwarmInfo, EngineError> {
        let info: Value = self.read("info", "", "/info").await?;
        let swarm = &info["Swarm"];
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        Ok(SwarmInfo {
            node_id: text(&swarm["NodeID"]),
            local_node_state: text(&swarm["LocalNodeState"]).unwrap_or_default(),
            control_available: swarm["ControlAvailable"].as_bool().unwrap_or(false),
            swarm_id: text(&swarm["Cluster"]["ID"]),
            error: text(&swarm["Error"]),
        })
    }

    /// Every node of the swarm (`docker node ls`). Fails on a manager without quorum.
    pub async fn nodes(&self) -> Result<Vec<bollard::models::Node>, EngineError> {
        self.read("list nodes", "", "/nodes").await
    }

    /// Swarm events as they happen (`docker events --filter scope=swarm` for services, networks,
    /// secrets, configs and nodes), as (type, name). An error ends the stream and, when the endpoint
    /// is gone, marks it unhealthy.
    pub fn swarm_events(
        &self,
    ) -> impl futures::Stream<Item = Result<(String, String), EngineError>> + Send + '_ {
        use futures::StreamExt;
        let types = ["service", "network", "secret", "config", "node"];
        let filters = HashMap::from([
            ("type".to_string(), types.map(String::from).to_vec()),
            ("scope".to_string(), vec!["swarm".to_string()]),
        ]);
        let options = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        self.docker.events(Some(options)).map(move |event| {
            metrics().engine_event(event.is_ok());
            let event = event.map_err(|e| self.noted(EngineError::call("events", "swarm", e)))?;
            let kind = event.typ.map(|t| t.to_string()).unwrap_or_default();
            let name = event
                .actor
                .and_then(|a| a.attributes)
                .and_then(|mut a| a.remove("name"))
                .unwrap_or_default();
            Ok((kind, name))
        })
    }

    /// The service named exactly `name`, if any.
    pub async fn find_service(&self, name: &str) -> Result<Option<Service>, EngineError> {
        if let Some(listing) = self.listed(name).await?
            && let Some(service) = listing.value.services.get(name)
        {
            return Ok(Some(service.clone()));
        }
        // Not a managed service we have seen: ask by name (new, or someone else's).
        let services = self.list_services("name", name).await?;
        Ok(services
            .into_iter()
            .find(|s| s.spec.as_ref().and_then(|s| s.name.as_deref()) == Some(name)))
    }

    async fn list_services(&self, filter: &str, value: &str) -> Result<Vec<Service>, EngineError> {
        let filters = HashMap::from([(filter.to_string(), vec![value.to_string()])]);
        let query = percent_encode(&serde_json::json!(filters).to_string());
        self.read("list services", value, &format!("/services?filters={query}"))
            .await
    }

    /// GETs `path` and parses it into bollard's types after repairing the keys they misspell.
    async fn read<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        object: &str,
        path: &str,
    ) -> Result<T, EngineError> {
        let err = |status, message| EngineError::Read {
            operation,
            object: object.to_string(),
            status,
            message,
        };
        limit::acquire().await;
        let version = self.docker.client_version();
        let got = self
            .raw
            .get(
                &format!("{}.{}", version.major_version, version.minor_version),
                path,
            )
            .await;
        metrics().engine_call(operation, false, got.is_ok());
        let mut body = got.map_err(|RawError { status, message }| self.noted(err(status, message)))?;
        repair_keys(&mut body);
        serde_json::from_slice(&body).map_err(|e| err(Some(200), format!("unexpected answer: {e}")))
    }

    /// Creates the service and returns its ID.
    pub async fn create_service(
        &self,
        spec: ServiceSpec,
        credentials: Option<DockerCredentials>,
    ) -> Result<String, EngineError> {
        let name = spec.name.clone().unwrap_or_default();
        self.wrote(Part::Services, &[&name]);
        let create = self.docker.create_service(spec, credentials);
        let created = self
            .echoed(
                Part::Services,
                &name,
                self.call("create service", &name, true, create),
            )
            .await?;
        log_warnings(&name, created.warnings.as_deref());
        Ok(created.id.unwrap_or_default())
    }

    /// Replaces the service's spec. On "update out of sequence" (someone else wrote in between) it
    /// reads the fresh version index and tries again: the spec given is the whole desired state.
    pub async fn update_service(
        &self,
        id: &str,
        mut version: u64,
        spec: ServiceSpec,
        credentials: Option<DockerCredentials>,
    ) -> Result<(), EngineError> {
        let mut attempt = 0;
        loop {
            let options = UpdateServiceOptions {
                version: version as i32,
                ..Default::default()
            };
            self.wrote(Part::Services, &[id, spec.name.as_deref().unwrap_or_default()]);
            let update = self
                .docker
                .update_service(id, spec.clone(), options, credentials.clone());
            let update = self.call("update service", id, true, update);
            let name = spec.name.as_deref().unwrap_or_default();
            match self.echoed(Part::Services, name, update).await {
                Ok(response) => {
                    log_warnings(id, response.warnings.as_deref());
                    return Ok(());
                }
                Err(err) => {
                    attempt += 1;
                    if !err.is_out_of_sequence() || attempt >= UPDATE_RETRIES {
                        return Err(err);
                    }
                    debug!(
                        service = id,
                        attempt, "update out of sequence, retrying with a fresh version"
                    );
                    version = self
                        .inspect_service_directly(id)
                        .await?
                        .version
                        .and_then(|v| v.index)
                        .unwrap_or(0);
                }
            }
        }
    }

    pub async fn inspect_service(&self, id: &str) -> Result<Service, EngineError> {
        if let Some(listing) = self.listed(id).await?
            && let Some(service) = listing.value.service_by_id(id)
        {
            return Ok(service.clone());
        }
        self.inspect_service_directly(id).await
    }

    async fn inspect_service_directly(&self, id: &str) -> Result<Service, EngineError> {
        self.read(
            "inspect service",
            id,
            &format!("/services/{}", percent_encode(id)),
        )
        .await
    }

    /// Removes the service; one that is already gone counts as removed.
    pub async fn remove_service(&self, id: &str) -> Result<(), EngineError> {
        self.wrote(Part::Services, &[id]);
        gone_is_fine(
            self.call("remove service", id, true, self.docker.delete_service(id))
                .await,
        )
    }

    /// ID of the swarm-scoped network named exactly `name` (the name filter also matches prefixes).
    pub async fn network_id(&self, name: &str) -> Result<Option<String>, EngineError> {
        Ok(self.find_network(name).await?.and_then(|n| n.id))
    }

    /// The swarm-scoped network named exactly `name`, if any. A managed network comes from the
    /// cluster's shared listing of them when that saw it as it is.
    pub async fn find_network(&self, name: &str) -> Result<Option<bollard::models::Network>, EngineError> {
        let is_it = |n: &bollard::models::Network| {
            n.name.as_deref() == Some(name) && n.scope.as_deref() == Some("swarm")
        };
        if let Some(snapshot) = &self.snapshot {
            let listing = snapshot
                .networks(|| self.list_networks("label", crate::labels::OWNER_UID))
                .await?;
            if let Some(found) = listing.value.iter().find(|n| is_it(n))
                && snapshot.is_current(
                    Part::Networks,
                    &listing,
                    &[name, found.id.as_deref().unwrap_or_default()],
                )
            {
                return Ok(Some(found.clone()));
            }
        }
        // Not a managed network the listing saw as it is: ask by name (new, or someone else's).
        Ok(self.list_networks("name", name).await?.into_iter().find(is_it))
    }

    async fn list_networks(
        &self,
        filter: &str,
        value: &str,
    ) -> Result<Vec<bollard::models::Network>, EngineError> {
        let filters = HashMap::from([(filter.to_string(), vec![value.to_string()])]);
        let list = self
            .docker
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(filters),
            }));
        self.call("list networks", value, false, list).await
    }

    /// Creates the network and returns its ID.
    pub async fn create_network(
        &self,
        request: bollard::models::NetworkCreateRequest,
    ) -> Result<String, EngineError> {
        let name = request.name.clone();
        self.wrote(Part::Networks, &[&name]);
        let create = self.docker.create_network(request);
        let create = self.call("create network", &name, true, create);
        Ok(self.echoed(Part::Networks, &name, create).await?.id)
    }

    /// Removes the network; one already gone counts as removed.
    pub async fn remove_network(&self, id: &str) -> Result<(), EngineError> {
        self.wrote(Part::Networks, &[id]);
        gone_is_fine(
            self.call("remove network", id, true, self.docker.remove_network(id))
                .await,
        )
    }

    /// Names of the services whose tasks join network `network_id`, sorted: from the shared
    /// listing (up to a second old) for status, or `exact`ly as they are now before a removal.
    pub async fn services_on_network(
        &self,
        network_id: &str,
        exact: bool,
    ) -> Result<Vec<String>, EngineError> {
        let all = self.services_for_users(exact).await?;
        let mut names: Vec<String> = all
            .into_iter()
            .filter_map(|s| s.spec)
            .filter(|spec| {
                let attached = spec.task_template.as_ref().and_then(|t| t.networks.as_ref());
                attached.is_some_and(|n| n.iter().any(|a| a.target.as_deref() == Some(network_id)))
            })
            .filter_map(|spec| spec.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// The secrets or configs of the owner with UID `owner`, as (ID, name): from the cluster's
    /// shared listing of managed ones when that saw them as they are.
    pub async fn owned_data(
        &self,
        kind: DataKind,
        owner: &str,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let owner_key = format!("owner:{owner}");
        if let Some(snapshot) = &self.snapshot {
            let part = kind.part();
            let listing = snapshot
                .data(part, || self.list_data(kind, crate::labels::OWNER_UID))
                .await?;
            let owned: Vec<&DataObject> = listing
                .value
                .iter()
                .filter(|o| o.labels.get(crate::labels::OWNER_UID).map(String::as_str) == Some(owner))
                .collect();
            let mut keys: Vec<&str> = vec![&owner_key];
            keys.extend(owned.iter().flat_map(|o| [o.id.as_str(), o.name.as_str()]));
            if snapshot.is_current(part, &listing, &keys) {
                return Ok(owned
                    .into_iter()
                    .map(|o| (o.id.clone(), o.name.clone()))
                    .collect());
            }
        }
        let label = format!("{}={owner}", crate::labels::OWNER_UID);
        Ok(self
            .list_data(kind, &label)
            .await?
            .into_iter()
            .map(|o| (o.id, o.name))
            .collect())
    }

    /// Swarm secrets or configs carrying `label` (`key` or `key=value`).
    async fn list_data(&self, kind: DataKind, label: &str) -> Result<Vec<DataObject>, EngineError> {
        type Listed = (Option<String>, Option<String>, Option<HashMap<String, String>>);
        let filters = Some(HashMap::from([("label".to_string(), vec![label.to_string()])]));
        let found: Vec<Listed> = match kind {
            DataKind::Secret => {
                let options = bollard::query_parameters::ListSecretsOptions { filters };
                self.call(
                    "list secrets",
                    label,
                    false,
                    self.docker.list_secrets(Some(options)),
                )
                .await?
                .into_iter()
                .map(|s| {
                    let spec = s.spec.unwrap_or_default();
                    (s.id, spec.name, spec.labels)
                })
                .collect()
            }
            DataKind::Config => {
                let options = bollard::query_parameters::ListConfigsOptions { filters };
                self.call(
                    "list configs",
                    label,
                    false,
                    self.docker.list_configs(Some(options)),
                )
                .await?
                .into_iter()
                .map(|s| {
                    let spec = s.spec.unwrap_or_default();
                    (s.id, spec.name, spec.labels)
                })
                .collect()
            }
        };
        Ok(found
            .into_iter()
            .filter_map(|(id, name, labels)| {
                Some(DataObject {
                    id: id?,
                    name: name?,
                    labels: labels.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Creates a secret or config holding `data`; returns its ID. The data goes only into the request.
    pub async fn create_data(
        &self,
        kind: DataKind,
        name: &str,
        data: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<String, EngineError> {
        use base64::Engine as _;
        let owner = labels
            .get(crate::labels::OWNER_UID)
            .map(|uid| format!("owner:{uid}"));
        self.wrote(kind.part(), &[name, owner.as_deref().unwrap_or_default()]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        match kind {
            DataKind::Secret => {
                let spec = bollard::models::SecretSpec {
                    name: Some(name.to_string()),
                    labels: Some(labels),
                    data: Some(encoded),
                    ..Default::default()
                };
                let create = self.call("create secret", name, true, self.docker.create_secret(spec));
                Ok(self.echoed(Part::Secrets, name, create).await?.id)
            }
            DataKind::Config => {
                let spec = bollard::models::ConfigSpec {
                    name: Some(name.to_string()),
                    labels: Some(labels),
                    data: Some(encoded),
                    ..Default::default()
                };
                let create = self.call("create config", name, true, self.docker.create_config(spec));
                Ok(self.echoed(Part::Configs, name, create).await?.id)
            }
        }
    }

    /// Removes a secret or config; one already gone counts as removed.
    pub async fn remove_data(&self, kind: DataKind, id: &str) -> Result<(), EngineError> {
        self.wrote(kind.part(), &[id]);
        let removed = match kind {
            DataKind::Secret => {
                self.call("remove secret", id, true, self.docker.delete_secret(id))
                    .await
            }
            DataKind::Config => {
                self.call("remove config", id, true, self.docker.delete_config(id))
                    .await
            }
        };
        gone_is_fine(removed)
    }

    /// Names of the services whose containers use secret or config `id`, sorted: from the shared
    /// listing (up to a second old) for status, or `exact`ly as they are now before a removal.
    pub async fn services_using_data(
        &self,
        kind: DataKind,
        id: &str,
        exact: bool,
    ) -> Result<Vec<String>, EngineError> {
        let all = self.services_for_users(exact).await?;
        let mut names: Vec<String> = all
            .into_iter()
            .filter_map(|s| s.spec)
            .filter(|spec| {
                let c = spec
                    .task_template
                    .as_ref()
                    .and_then(|t| t.container_spec.as_ref());
                match kind {
                    DataKind::Secret => c
                        .and_then(|c| c.secrets.as_ref())
                        .is_some_and(|v| v.iter().any(|s| s.secret_id.as_deref() == Some(id))),
                    DataKind::Config => c
                        .and_then(|c| c.configs.as_ref())
                        .is_some_and(|v| v.iter().any(|s| s.config_id.as_deref() == Some(id))),
                }
            })
            .filter_map(|spec| spec.name)
            .collect();
        names.sort();
        Ok(names)
    }

    async fn all_services(&self) -> Result<Vec<Service>, EngineError> {
        self.read("list services", "", "/services").await
    }

    /// Hostname of every node by node ID, for `docker service ps`-style task lists.
    pub async fn node_hostnames(&self) -> Result<HashMap<String, String>, EngineError> {
        match self.listed("").await? {
            Some(listing) => Ok(listing.value.nodes.clone()),
            None => Ok(hostnames(self.nodes().await?)),
        }
    }

    /// Every task of the service, current and past (Swarm keeps a few per slot).
    pub async fn service_tasks(&self, service_id: &str) -> Result<Vec<Task>, EngineError> {
        if let Some(listing) = self.listed(service_id).await?
            && listing.value.service_by_id(service_id).is_some()
        {
            return Ok(listing.value.tasks.get(service_id).cloned().unwrap_or_default());
        }
        let filters = HashMap::from([("service".to_string(), vec![service_id.to_string()])]);
        let query = percent_encode(&serde_json::json!(filters).to_string());
        self.read("list tasks", service_id, &format!("/tasks?filters={query}"))
            .await
    }
}

fn hostnames(nodes: Vec<bollard::models::Node>) -> HashMap<String, String> {
    nodes
        .into_iter()
        .filter_map(|n| Some((n.id?, n.description?.hostname?)))
        .collect()
}

/// What `docker info` reports of the node's swarm membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwarmInfo {
    pub node_id: Option<String>,
    /// inactive, pending, active, error or locked.
    pub local_node_state: String,
    /// True on a manager.
    pub control_available: bool,
    pub swarm_id: Option<String>,
    pub error: Option<String>,
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
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn log_warnings(object: &str, warnings: Option<&[String]>) {
    for warning in warnings.unwrap_or_default() {
        warn!(swarm_object = object, "Engine warning: {warning}");
    }
}
