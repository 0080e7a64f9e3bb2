//! The swarm itself: `docker info`, `docker node ls` and the swarm event stream.

use std::collections::HashMap;

use serde_json::Value;

use super::{Engine, EngineError};

impl Engine {
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
            self.calls.metrics.engine_event(event.is_ok());
            let event = event.map_err(|e| self.endpoint_checked(EngineError::call("events", "swarm", e)))?;
            let kind = event.typ.map(|t| t.to_string()).unwrap_or_default();
            let name = event
                .actor
                .and_then(|a| a.attributes)
                .and_then(|mut a| a.remove("name"))
                .unwrap_or_default();
            Ok((kind, name))
        })
    }

    /// Every node as placement sees it, from the shared listing when there is one.
    pub async fn node_facts(&self) -> Result<Vec<NodeFacts>, EngineError> {
        match self.shared_listing("").await? {
            Some(listing) => Ok(listing.value.nodes.clone()),
            None => Ok(self.nodes().await?.iter().map(NodeFacts::of).collect()),
        }
    }
}

/// What placement and `docker service ps` need of a node: what constraints match against, and
/// whether it takes tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub id: String,
    pub hostname: String,
    /// manager or worker.
    pub role: String,
    /// active, pause or drain.
    pub availability: String,
    /// ready, down, unknown or disconnected.
    pub state: String,
    pub labels: HashMap<String, String>,
    pub engine_labels: HashMap<String, String>,
    /// e.g. linux
    pub os: String,
    /// e.g. x86_64
    pub arch: String,
}

impl NodeFacts {
    pub fn of(node: &bollard::models::Node) -> Self {
        let spec = node.spec.clone().unwrap_or_default();
        let description = node.description.clone().unwrap_or_default();
        let platform = description.platform.clone().unwrap_or_default();
        let text = |v: Option<String>| v.unwrap_or_default().to_lowercase();
        NodeFacts {
            id: node.id.clone().unwrap_or_default(),
            hostname: description.hostname.clone().unwrap_or_default(),
            role: text(spec.role.map(|r| r.to_string())),
            availability: text(spec.availability.map(|a| a.to_string())),
            state: text(node.status.as_ref().and_then(|s| s.state).map(|s| s.to_string())),
            labels: spec.labels.unwrap_or_default(),
            engine_labels: description.engine.and_then(|e| e.labels).unwrap_or_default(),
            os: platform.os.unwrap_or_default(),
            arch: platform.architecture.unwrap_or_default(),
        }
    }
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

impl SwarmInfo {
    /// Why this node cannot act for its swarm, if it cannot: not in an active swarm, or a worker.
    pub fn not_a_manager(&self) -> Option<String> {
        if self.local_node_state != "active" {
            let state = if self.local_node_state.is_empty() {
                "inactive"
            } else {
                &self.local_node_state
            };
            let detail = self.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
            return Some(format!("not part of a swarm (state {state}{detail})"));
        }
        (!self.control_available).then(|| "a worker, not a manager".to_string())
    }
}

/// What a node needs to join the swarm.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinTokens {
    pub worker: String,
    pub manager: String,
}

impl std::fmt::Debug for JoinTokens {
    /// The tokens are credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinTokens(..)")
    }
}

impl Engine {
    /// The swarm's join tokens (`docker swarm join-token -q worker|manager`).
    pub async fn join_tokens(&self) -> Result<JoinTokens, EngineError> {
        let swarm = self
            .call("inspect swarm", "", false, self.docker.inspect_swarm())
            .await?;
        let tokens = swarm.join_tokens.unwrap_or_default();
        Ok(JoinTokens {
            worker: tokens.worker.unwrap_or_default(),
            manager: tokens.manager.unwrap_or_default(),
        })
    }

    /// Rotates both join tokens, as `docker swarm join-token --rotate` does: the swarm's spec
    /// written back unchanged at the version read, with the rotate flags.
    pub async fn rotate_join_tokens(&self) -> Result<(), EngineError> {
        let swarm = self
            .call("inspect swarm", "", false, self.docker.inspect_swarm())
            .await?;
        let options = bollard::query_parameters::UpdateSwarmOptionsBuilder::new()
            .version(swarm.version.and_then(|v| v.index).unwrap_or_default() as i64)
            .rotate_worker_token(true)
            .rotate_manager_token(true)
            .build();
        let spec = swarm.spec.unwrap_or_default();
        self.call(
            "rotate join tokens",
            "",
            true,
            self.docker.update_swarm(spec, options),
        )
        .await
    }
}

impl Engine {
    /// Writes a node's spec (`docker node update`) over the version read.
    pub async fn update_node(
        &self,
        id: &str,
        version: i64,
        spec: bollard::models::NodeSpec,
    ) -> Result<(), EngineError> {
        let options = bollard::query_parameters::UpdateNodeOptionsBuilder::new()
            .version(version)
            .build();
        self.call(
            "update node",
            id,
            true,
            self.docker.update_node(id, spec, options),
        )
        .await
    }
}
