//! Swarm services and their tasks: find by exact name, create, update (retrying "update out of
//! sequence"), inspect, remove. Reads come from the cluster's shared listing when it is current.

use std::collections::HashMap;

use bollard::{
    auth::DockerCredentials,
    models::{EndpointSpecModeEnum, Service, ServiceSpec, Task},
    query_parameters::UpdateServiceOptions,
};
use tracing::{debug, warn};

use super::{Engine, EngineError, Part, percent_encode};

/// Tries of an update that keeps meeting "update out of sequence".
const UPDATE_RETRIES: usize = 5;

impl Engine {
    /// The service named exactly `name`, if any.
    pub async fn find_service(&self, name: &str) -> Result<Option<Service>, EngineError> {
        if let Some(listing) = self.shared_listing(name).await? {
            // The listing holds every service, and none named `name` changed since it began (an
            // event or our own write would have said so): what it lacks does not exist.
            match listing.value.service(name) {
                None => return Ok(None),
                Some(Ok(service)) => return Ok(Some(service)),
                Some(Err(_)) => {}
            }
        }
        // Changed since the listing: ask by name.
        let services = self.list_services("name", name).await?;
        Ok(services
            .into_iter()
            .find(|s| s.spec.as_ref().and_then(|s| s.name.as_deref()) == Some(name)))
    }

    pub(super) async fn list_services(&self, filter: &str, value: &str) -> Result<Vec<Service>, EngineError> {
        let filters = HashMap::from([(filter.to_string(), vec![value.to_string()])]);
        let query = percent_encode(&serde_json::json!(filters).to_string());
        self.read("list services", value, &format!("/services?filters={query}"))
            .await
    }

    /// Creates the service and returns its ID.
    pub async fn create_service(
        &self,
        spec: ServiceSpec,
        credentials: Option<DockerCredentials>,
    ) -> Result<String, EngineError> {
        let name = spec.name.clone().unwrap_or_default();
        self.bypass_listing(Part::Services, &[&name]);
        let events = if allocated(&spec) { 2 } else { 1 };
        let create = self.docker.create_service(spec, credentials);
        let created = self
            .own_write_echoed(
                Part::Services,
                &name,
                events,
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
            self.bypass_listing(Part::Services, &[id, spec.name.as_deref().unwrap_or_default()]);
            let update = self
                .docker
                .update_service(id, spec.clone(), options, credentials.clone());
            let update = self.call("update service", id, true, update);
            let name = spec.name.as_deref().unwrap_or_default();
            match self.own_write(Part::Services, name, update).await {
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

    /// The spec Swarm set aside as the previous one (`PreviousSpec`: what a rollback restores, or
    /// after a rollback the spec it undid), which bollard's model does not carry.
    pub async fn previous_spec(&self, id: &str) -> Result<Option<ServiceSpec>, EngineError> {
        let mut service: serde_json::Value = self
            .read(
                "inspect service",
                id,
                &format!("/services/{}", percent_encode(id)),
            )
            .await?;
        Ok(serde_json::from_value(service["PreviousSpec"].take()).ok())
    }

    pub async fn inspect_service(&self, id: &str) -> Result<Service, EngineError> {
        if let Some(listing) = self.shared_listing(id).await?
            && let Some(Ok(service)) = listing.value.service_by_id(id)
        {
            return Ok(service);
        }
        self.inspect_service_directly(id).await
    }

    /// The service as the Engine has it now, not from the shared listing: for one just created,
    /// which no listing made before its creation shows. Looking there first would only make a
    /// new listing of every service each second of a deploy, to find it stale for this one.
    pub async fn inspect_service_directly(&self, id: &str) -> Result<Service, EngineError> {
        self.read(
            "inspect service",
            id,
            &format!("/services/{}", percent_encode(id)),
        )
        .await
    }

    /// Removes the service `id` (named `name`); one already gone counts as removed.
    pub async fn remove_service(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let remove = self.docker.delete_service(id);
        self.own_removal(Part::Services, "remove service", id, name, remove)
            .await
    }

    pub(super) async fn all_services(&self) -> Result<Vec<Service>, EngineError> {
        self.read("list services", "", "/services").await
    }

    /// Every task of the service, current and past (Swarm keeps a few per slot).
    pub async fn service_tasks(&self, service_id: &str) -> Result<Vec<Task>, EngineError> {
        if let Some(listing) = self.shared_listing(service_id).await?
            && listing.value.names(service_id).is_some()
            && let Ok(tasks) = listing.value.tasks_of(service_id)
        {
            return Ok(tasks);
        }
        let filters = HashMap::from([("service".to_string(), vec![service_id.to_string()])]);
        let query = percent_encode(&serde_json::json!(filters).to_string());
        self.read("list tasks", service_id, &format!("/tasks?filters={query}"))
            .await
    }
}

fn log_warnings(object: &str, warnings: Option<&[String]>) {
    for warning in warnings.unwrap_or_default() {
        warn!(swarm_object = object, "Engine warning: {warning}");
    }
}

/// What `docker service logs` asks of a service's logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    /// The last lines of each task; all when None.
    pub tail: Option<u64>,
    /// Only lines since this Unix time.
    pub since: Option<i64>,
    pub timestamps: bool,
}

impl Engine {
    /// A service's logs as the Engine sends them: multiplexed frames, each line preceded by its
    /// details (task, node, service IDs), followed across task restarts while `follow`.
    pub async fn service_logs(
        &self,
        id: &str,
        options: &LogOptions,
    ) -> Result<super::raw::BodyStream, EngineError> {
        let mut query = format!(
            "stdout=1&stderr=1&details=1&follow={}&timestamps={}",
            u8::from(options.follow),
            u8::from(options.timestamps)
        );
        query.push_str(&match options.tail {
            Some(n) => format!("&tail={n}"),
            None => "&tail=all".into(),
        });
        if let Some(since) = options.since {
            query.push_str(&format!("&since={since}"));
        }
        self.calls.admit().await;
        let version = self.docker.client_version();
        let version = format!("{}.{}", version.major_version, version.minor_version);
        let opened = self
            .raw
            .get_stream(&version, &format!("/services/{id}/logs?{query}"))
            .await;
        self.calls
            .metrics
            .engine_call("service logs", false, opened.is_ok());
        opened.map_err(|e| {
            self.endpoint_checked(EngineError::Read {
                operation: "service logs",
                object: id.to_string(),
                status: e.status,
                message: e.message,
            })
        })
    }

    /// Waits, at most `within`, for the swarm's events of the creation of the service `name`:
    /// once both have come (the create's and the allocator's), it shows its allocation.
    pub async fn allocation_written(&self, name: &str, within: std::time::Duration) -> bool {
        match &self.snapshot {
            Some(snapshot) => snapshot.echoes_arrived(Part::Services, name, within).await,
            None => false,
        }
    }

    /// The service `name` was just created and its inspection does not show the allocator's
    /// work yet: the allocator's write, still to come, is not our echo but news, and wakes a pass.
    /// False if that write came already (between the inspection and now) and was taken for our
    /// echo: nothing will wake a pass for it, and the service is to be inspected again.
    pub fn allocation_pending(&self, name: &str) -> bool {
        self.snapshot
            .as_ref()
            .is_none_or(|snapshot| snapshot.cancel_echo(Part::Services, name, 1))
    }
}

/// Whether the swarm's allocator will give the new service addresses or ports (it is on a
/// network, or publishes a port): it writes the service once more right after its creation, an
/// "update" event no one asked for.
pub fn allocated(spec: &ServiceSpec) -> bool {
    let networks = spec.task_template.as_ref().and_then(|t| t.networks.as_ref());
    #[allow(deprecated)]
    let old_networks = spec.networks.as_ref();
    let ports = spec.endpoint_spec.as_ref().and_then(|e| e.ports.as_ref());
    [
        networks.map(Vec::len),
        old_networks.map(Vec::len),
        ports.map(Vec::len),
    ]
    .into_iter()
    .any(|n| n.unwrap_or(0) > 0)
}

/// Whether the `service` as inspected shows what the allocator gave it, for a service created
/// with `spec`. Until then its endpoint is `{"Spec": {}}`; after, its mode is filled in (with its
/// virtual IPs and ports). A DNSRR service on a network without ports shows nothing either way.
pub fn allocation_shown(spec: &ServiceSpec, service: &Service) -> bool {
    let wanted = spec.endpoint_spec.as_ref();
    let dnsrr = wanted.and_then(|e| e.mode) == Some(EndpointSpecModeEnum::DNSRR);
    let ports = wanted
        .and_then(|e| e.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    if !allocated(spec) || (dnsrr && !ports) {
        return true;
    }
    service
        .endpoint
        .as_ref()
        .and_then(|e| e.spec.as_ref())
        .is_some_and(|s| s.mode.is_some())
}

#[cfg(test)]
mod tests {
    use bollard::models::{EndpointPortConfig, EndpointSpec, NetworkAttachmentConfig, TaskSpec};

    use super::*;

    /// A service on network `store`, in endpoint `mode`.
    fn on_network(mode: Option<EndpointSpecModeEnum>) -> ServiceSpec {
        ServiceSpec {
            task_template: Some(TaskSpec {
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some("store".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            endpoint_spec: Some(EndpointSpec {
                mode,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_allocator_writes_a_new_service_on_a_network_or_with_a_port() {
        let plain = ServiceSpec {
            name: Some("web".into()),
            task_template: Some(TaskSpec::default()),
            endpoint_spec: Some(EndpointSpec::default()),
            ..Default::default()
        };
        assert!(!allocated(&plain));
        assert!(allocated(&on_network(None)));
        let publishing = ServiceSpec {
            endpoint_spec: Some(EndpointSpec {
                ports: Some(vec![EndpointPortConfig {
                    target_port: Some(80),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..plain.clone()
        };
        assert!(allocated(&publishing));
        let no_ports = ServiceSpec {
            endpoint_spec: Some(EndpointSpec {
                ports: Some(vec![]),
                ..Default::default()
            }),
            ..plain
        };
        assert!(!allocated(&no_ports));
    }

    /// The endpoints are as Engine 20.10 reports them: `{"Spec":{}}` before the allocator's
    /// write (and for ever, for a DNSRR service on a network without ports), `{"Spec":{"Mode":
    /// "vip"},"VirtualIPs":[…]}` or, with ports, the mode and the ports after it.
    #[test]
    fn a_new_service_shows_the_allocation_once_its_endpoint_has_a_mode() {
        let endpoint = |json: &str| Service {
            endpoint: Some(serde_json::from_str(json).unwrap()),
            ..Default::default()
        };
        let before = endpoint(r#"{"Spec":{}}"#);
        let vip =
            endpoint(r#"{"Spec":{"Mode":"vip"},"VirtualIPs":[{"NetworkID":"n1","Addr":"10.0.35.3/24"}]}"#);
        let vip_mode = on_network(None);
        assert!(!allocation_shown(&vip_mode, &before), "not yet");
        assert!(allocation_shown(&vip_mode, &vip));
        let dnsrr = on_network(Some(EndpointSpecModeEnum::DNSRR));
        assert!(allocation_shown(&dnsrr, &before), "nothing to show");
        let dnsrr_port = ServiceSpec {
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ports: Some(vec![EndpointPortConfig {
                    target_port: Some(80),
                    ..Default::default()
                }]),
            }),
            ..dnsrr
        };
        assert!(!allocation_shown(&dnsrr_port, &before), "its port not yet");
        let with_port = endpoint(
            r#"{"Spec":{"Mode":"dnsrr","Ports":[{"Protocol":"tcp","TargetPort":80}]},"Ports":[{"Protocol":"tcp","TargetPort":80}]}"#,
        );
        assert!(allocation_shown(&dnsrr_port, &with_port));
        let plain = ServiceSpec::default();
        assert!(allocation_shown(&plain, &before), "never allocated");
    }
}
