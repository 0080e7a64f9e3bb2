//! Swarm-scoped networks: find by exact name, create, remove, and which services use one.

use std::collections::HashMap;

use super::{Engine, EngineError, Part};

impl Engine {
    /// The swarm-scoped network named exactly `name`, if any (the Engine's name filter also
    /// matches prefixes). A managed network comes from the
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
        self.bypass_listing(Part::Networks, &[&name]);
        let create = self.docker.create_network(request);
        let create = self.call("create network", &name, true, create);
        Ok(self.own_write(Part::Networks, &name, create).await?.id)
    }

    /// Removes the network `id` (named `name`); one already gone counts as removed.
    pub async fn remove_network(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let remove = self.docker.remove_network(id);
        self.own_removal(Part::Networks, "remove network", id, name, remove)
            .await
    }

    /// Names of the services whose tasks join network `network_id`, sorted: from the shared
    /// listing (up to a second old) for status, or `exact`ly as they are now before a removal.
    pub async fn services_on_network(
        &self,
        network_id: &str,
        exact: bool,
    ) -> Result<Vec<String>, EngineError> {
        self.service_names_where(exact, |spec| {
            let attached = spec.task_template.as_ref().and_then(|t| t.networks.as_ref());
            attached.is_some_and(|n| n.iter().any(|a| a.target.as_deref() == Some(network_id)))
        })
        .await
    }
}
