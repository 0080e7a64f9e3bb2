//! The one place that talks to the Docker Engine API: connection and version negotiation, every call
//! the reconcilers make, and retries on "update out of sequence". Calls are by object ID once known;
//! names are resolved by exact match because the Engine also accepts ID prefixes as names.

mod raw;

use std::collections::HashMap;

use bollard::{
    Docker,
    auth::DockerCredentials,
    models::{Service, ServiceSpec, Task},
    query_parameters::{ListServicesOptions, ListTasksOptions, UpdateServiceOptions},
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{debug, warn};

use raw::{RawClient, RawError, repair_keys};

use crate::metrics::metrics;
/// Swarm secrets and configs are handled alike; this says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    Secret,
    Config,
}

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

    /// 400: the Engine rejected the spec itself; retrying the same spec cannot succeed.
    pub fn is_invalid_spec(&self) -> bool {
        self.status() == Some(400)
    }
}

/// A connection to one Swarm manager.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// Reads that keep every key the Engine writes (see raw.rs); None where only bollard can connect.
    raw: Option<RawClient>,
    host: String,
}

const UPDATE_RETRIES: usize = 5;

impl Engine {
    /// Connects to `host` (`unix:///var/run/docker.sock`, `tcp://host:2375`, or DOCKER_HOST when None)
    /// and negotiates the API version down to what the Engine speaks.
    pub async fn connect(host: Option<&str>) -> Result<Self, EngineError> {
        let host = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let connect_err = |source| EngineError::Connect {
            host: host.clone(),
            source,
        };
        let docker = Docker::connect_with_host(&host).map_err(connect_err)?;
        let docker = docker.negotiate_version().await.map_err(connect_err)?;
        let version = docker.client_version();
        if (version.major_version, version.minor_version) < MIN_API_VERSION {
            return Err(EngineError::TooOld {
                host,
                version: version.to_string(),
            });
        }
        debug!(%host, api = %version, "connected to the Docker Engine");
        Ok(Engine {
            docker,
            raw: RawClient::for_host(&host),
            host,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// The service named exactly `name`, if any.
    pub async fn find_service(&self, name: &str) -> Result<Option<Service>, EngineError> {
        let services = self.list_services("name", name).await?;
        Ok(services
            .into_iter()
            .find(|s| s.spec.as_ref().and_then(|s| s.name.as_deref()) == Some(name)))
    }

    /// Services carrying `label` (`key` or `key=value`), e.g. the owner label.
    pub async fn services_with_label(&self, label: &str) -> Result<Vec<Service>, EngineError> {
        self.list_services("label", label).await
    }

    async fn list_services(&self, filter: &str, value: &str) -> Result<Vec<Service>, EngineError> {
        let filters = HashMap::from([(filter.to_string(), vec![value.to_string()])]);
        if self.raw.is_some() {
            let query = percent_encode(&serde_json::json!(filters).to_string());
            return self
                .read("list services", value, &format!("/services?filters={query}"))
                .await;
        }
        self.docker
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                status: None,
            }))
            .await
            .map_err(|e| EngineError::call("list services", value, e))
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
        let raw = self
            .raw
            .as_ref()
            .ok_or_else(|| err(None, "no raw reader for this host".into()))?;
        let version = self.docker.client_version();
        let got = raw
            .get(
                &format!("{}.{}", version.major_version, version.minor_version),
                path,
            )
            .await;
        metrics().engine_call(operation, false, got.is_ok());
        let mut value = got.map_err(|RawError { status, message }| err(status, message))?;
        match &mut value {
            Value::Array(items) => items.iter_mut().for_each(repair_keys),
            other => repair_keys(other),
        }
        serde_json::from_value(value).map_err(|e| err(None, format!("unexpected answer: {e}")))
    }

    /// Creates the service and returns its ID.
    pub async fn create_service(
        &self,
        spec: ServiceSpec,
        credentials: Option<DockerCredentials>,
    ) -> Result<String, EngineError> {
        let name = spec.name.clone().unwrap_or_default();
        let created = self
            .docker
            .create_service(spec, credentials)
            .await
            .tally("create service", true)
            .map_err(|e| EngineError::call("create service", &name, e))?;
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
            match self
                .docker
                .update_service(id, spec.clone(), options, credentials.clone())
                .await
                .tally("update service", true)
            {
                Ok(response) => {
                    log_warnings(id, response.warnings.as_deref());
                    return Ok(());
                }
                Err(e) => {
                    let err = EngineError::call("update service", id, e);
                    attempt += 1;
                    if !err.is_out_of_sequence() || attempt >= UPDATE_RETRIES {
                        return Err(err);
                    }
                    debug!(
                        service = id,
                        attempt, "update out of sequence, retrying with a fresh version"
                    );
                    version = self
                        .inspect_service(id)
                        .await?
                        .version
                        .and_then(|v| v.index)
                        .unwrap_or(0);
                }
            }
        }
    }

    pub async fn inspect_service(&self, id: &str) -> Result<Service, EngineError> {
        if self.raw.is_some() {
            return self
                .read(
                    "inspect service",
                    id,
                    &format!("/services/{}", percent_encode(id)),
                )
                .await;
        }
        self.docker
            .inspect_service(id, None)
            .await
            .map_err(|e| EngineError::call("inspect service", id, e))
    }

    /// Removes the service; one that is already gone counts as removed.
    pub async fn remove_service(&self, id: &str) -> Result<(), EngineError> {
        match self.docker.delete_service(id).await.tally("remove service", true) {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = EngineError::call("remove service", id, e);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// ID of the swarm-scoped network named exactly `name` (the name filter also matches prefixes).
    pub async fn network_id(&self, name: &str) -> Result<Option<String>, EngineError> {
        Ok(self.find_network(name).await?.and_then(|n| n.id))
    }

    /// The swarm-scoped network named exactly `name`, if any.
    pub async fn find_network(&self, name: &str) -> Result<Option<bollard::models::Network>, EngineError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let networks = self
            .docker
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .tally("list networks", false)
            .map_err(|e| EngineError::call("list networks", name, e))?;
        Ok(networks
            .into_iter()
            .find(|n| n.name.as_deref() == Some(name) && n.scope.as_deref() == Some("swarm")))
    }

    /// Creates the network and returns its ID.
    pub async fn create_network(
        &self,
        request: bollard::models::NetworkCreateRequest,
    ) -> Result<String, EngineError> {
        let name = request.name.clone();
        let created = self
            .docker
            .create_network(request)
            .await
            .tally("create network", true)
            .map_err(|e| EngineError::call("create network", &name, e))?;
        Ok(created.id)
    }

    /// Removes the network; one already gone counts as removed.
    pub async fn remove_network(&self, id: &str) -> Result<(), EngineError> {
        match self.docker.remove_network(id).await.tally("remove network", true) {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = EngineError::call("remove network", id, e);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// Names of the services whose tasks join network `network_id`, sorted.
    pub async fn services_on_network(&self, network_id: &str) -> Result<Vec<String>, EngineError> {
        let all = self.all_services().await?;
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

    /// Swarm secrets or configs carrying `label` (`key=value`), as (ID, name).
    pub async fn list_data(&self, kind: DataKind, label: &str) -> Result<Vec<(String, String)>, EngineError> {
        let filters = Some(HashMap::from([("label".to_string(), vec![label.to_string()])]));
        let found: Vec<(Option<String>, Option<String>)> = match kind {
            DataKind::Secret => self
                .docker
                .list_secrets(Some(bollard::query_parameters::ListSecretsOptions { filters }))
                .await
                .tally("list secrets", false)
                .map_err(|e| EngineError::call("list secrets", label, e))?
                .into_iter()
                .map(|s| (s.id, s.spec.and_then(|s| s.name)))
                .collect(),
            DataKind::Config => self
                .docker
                .list_configs(Some(bollard::query_parameters::ListConfigsOptions { filters }))
                .await
                .tally("list configs", false)
                .map_err(|e| EngineError::call("list configs", label, e))?
                .into_iter()
                .map(|s| (s.id, s.spec.and_then(|s| s.name)))
                .collect(),
        };
        Ok(found
            .into_iter()
            .filter_map(|(id, name)| Some((id?, name?)))
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
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        let created = match kind {
            DataKind::Secret => self.docker.create_secret(bollard::models::SecretSpec {
                name: Some(name.to_string()),
                labels: Some(labels),
                data: Some(encoded),
                ..Default::default()
            }),
            DataKind::Config => {
                return self
                    .docker
                    .create_config(bollard::models::ConfigSpec {
                        name: Some(name.to_string()),
                        labels: Some(labels),
                        data: Some(encoded),
                        ..Default::default()
                    })
                    .await
                    .tally("create config", true)
                    .map(|r| r.id)
                    .map_err(|e| EngineError::call("create config", name, e));
            }
        };
        created
            .await
            .tally("create secret", true)
            .map(|r| r.id)
            .map_err(|e| EngineError::call("create secret", name, e))
    }

    /// Removes a secret or config; one already gone counts as removed.
    pub async fn remove_data(&self, kind: DataKind, id: &str) -> Result<(), EngineError> {
        let result = match kind {
            DataKind::Secret => self.docker.delete_secret(id).await.tally("remove secret", true),
            DataKind::Config => self.docker.delete_config(id).await.tally("remove config", true),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = EngineError::call("remove secret/config", id, e);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// Names of the services whose containers use secret or config `id`, sorted.
    pub async fn services_using_data(&self, kind: DataKind, id: &str) -> Result<Vec<String>, EngineError> {
        let all = self.all_services().await?;
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
        if self.raw.is_some() {
            return self.read("list services", "", "/services").await;
        }
        self.docker
            .list_services(None)
            .await
            .map_err(|e| EngineError::call("list services", "", e))
    }

    /// Hostname of every node by node ID, for `docker service ps`-style task lists.
    pub async fn node_hostnames(&self) -> Result<HashMap<String, String>, EngineError> {
        let nodes: Vec<bollard::models::Node> = if self.raw.is_some() {
            self.read("list nodes", "", "/nodes").await?
        } else {
            self.docker
                .list_nodes(None)
                .await
                .map_err(|e| EngineError::call("list nodes", "", e))?
        };
        Ok(nodes
            .into_iter()
            .filter_map(|n| Some((n.id?, n.description?.hostname?)))
            .collect())
    }

    /// Every task of the service, current and past (Swarm keeps a few per slot).
    pub async fn service_tasks(&self, service_id: &str) -> Result<Vec<Task>, EngineError> {
        let filters = HashMap::from([("service".to_string(), vec![service_id.to_string()])]);
        if self.raw.is_some() {
            let query = percent_encode(&serde_json::json!(filters).to_string());
            return self
                .read("list tasks", service_id, &format!("/tasks?filters={query}"))
                .await;
        }
        self.docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| EngineError::call("list tasks", service_id, e))
    }
}

/// Counts an Engine API call in the operator's metrics, passing its result through.
trait Tally {
    fn tally(self, operation: &'static str, write: bool) -> Self;
}

impl<T, E> Tally for Result<T, E> {
    fn tally(self, operation: &'static str, write: bool) -> Self {
        metrics().engine_call(operation, write, self.is_ok());
        self
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
