//! Swarm secrets and configs, one code path for both: the versions an owner made, create (the value
//! goes only into the request), remove, and which services use one.

use std::collections::HashMap;

use super::{Engine, EngineError, Part, snapshot::DataObject};

/// Swarm secrets and configs are handled alike; this says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    Secret,
    Config,
}

impl DataKind {
    /// The kind as the Engine's events and the docker CLI name it.
    pub fn word(self) -> &'static str {
        match self {
            DataKind::Secret => "secret",
            DataKind::Config => "config",
        }
    }

    fn part(self) -> Part {
        match self {
            DataKind::Secret => Part::Secrets,
            DataKind::Config => Part::Configs,
        }
    }
}

impl Engine {
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
    /// The labels of the secret or config named exactly `name`, if one exists: who holds a name.
    pub async fn data_labels(
        &self,
        kind: DataKind,
        name: &str,
    ) -> Result<Option<HashMap<String, String>>, EngineError> {
        let found = self.list_data_by(kind, "name", name).await?;
        Ok(found.into_iter().find(|o| o.name == name).map(|o| o.labels))
    }

    async fn list_data(&self, kind: DataKind, label: &str) -> Result<Vec<DataObject>, EngineError> {
        self.list_data_by(kind, "label", label).await
    }

    /// Swarm secrets or configs matching the Engine's list `filter` (`label` or `name`) `value`.
    async fn list_data_by(
        &self,
        kind: DataKind,
        filter: &str,
        value: &str,
    ) -> Result<Vec<DataObject>, EngineError> {
        type Listed = (Option<String>, Option<String>, Option<HashMap<String, String>>);
        let filters = Some(HashMap::from([(filter.to_string(), vec![value.to_string()])]));
        let found: Vec<Listed> = match kind {
            DataKind::Secret => {
                let options = bollard::query_parameters::ListSecretsOptions { filters };
                self.call(
                    "list secrets",
                    value,
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
                    value,
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
        self.bypass_listing(kind.part(), &[name, owner.as_deref().unwrap_or_default()]);
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
                Ok(self.own_write(Part::Secrets, name, create).await?.id)
            }
            DataKind::Config => {
                let spec = bollard::models::ConfigSpec {
                    name: Some(name.to_string()),
                    labels: Some(labels),
                    data: Some(encoded),
                    ..Default::default()
                };
                let create = self.call("create config", name, true, self.docker.create_config(spec));
                Ok(self.own_write(Part::Configs, name, create).await?.id)
            }
        }
    }

    /// Removes a secret or config `id` (named `name`); one already gone counts as removed.
    pub async fn remove_data(&self, kind: DataKind, id: &str, name: &str) -> Result<(), EngineError> {
        let part = kind.part();
        match kind {
            DataKind::Secret => {
                let remove = self.docker.delete_secret(id);
                self.own_removal(part, "remove secret", id, name, remove).await
            }
            DataKind::Config => {
                let remove = self.docker.delete_config(id);
                self.own_removal(part, "remove config", id, name, remove).await
            }
        }
    }

    /// Names of the services whose containers use secret or config `id`, sorted: from the shared
    /// listing (up to a second old) for status, or `exact`ly as they are now before a removal.
    pub async fn services_using_data(
        &self,
        kind: DataKind,
        id: &str,
        exact: bool,
    ) -> Result<Vec<String>, EngineError> {
        self.service_names_where(exact, |spec| uses_data(spec, kind, id))
            .await
    }

    /// Of those, the services some resource manages (owner labels), as they are now: the others
    /// (orphaned, made by hand) will not stop using it by themselves.
    pub async fn managed_services_using_data(
        &self,
        kind: DataKind,
        id: &str,
    ) -> Result<Vec<String>, EngineError> {
        self.service_names_where(true, |spec| {
            uses_data(spec, kind, id)
                && spec
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(crate::labels::OWNER_UID))
        })
        .await
    }

    /// Takes the owner labels off secret or config `id` (labels are all the Engine lets change):
    /// left in the swarm, and no longer anyone's.
    pub async fn release_data(&self, kind: DataKind, id: &str) -> Result<(), EngineError> {
        let unowned = |labels: &mut Option<HashMap<String, String>>| {
            if let Some(labels) = labels.as_mut() {
                for key in crate::labels::OWNER_LABELS {
                    labels.remove(key);
                }
            }
        };
        match kind {
            DataKind::Secret => {
                let found = self
                    .call("inspect secret", id, false, self.docker.inspect_secret(id))
                    .await?;
                let mut spec = found.spec.unwrap_or_default();
                spec.data = None;
                unowned(&mut spec.labels);
                let version = found.version.and_then(|v| v.index).unwrap_or(0) as i64;
                let options = bollard::query_parameters::UpdateSecretOptions { version };
                let update = self.docker.update_secret(id, spec, options);
                self.call("update secret", id, true, update).await
            }
            DataKind::Config => {
                let found = self
                    .call("inspect config", id, false, self.docker.inspect_config(id))
                    .await?;
                let mut spec = found.spec.unwrap_or_default();
                spec.data = None;
                unowned(&mut spec.labels);
                let version = found.version.and_then(|v| v.index).unwrap_or(0) as i64;
                let options = bollard::query_parameters::UpdateConfigOptions { version };
                let update = self.docker.update_config(id, spec, options);
                self.call("update config", id, true, update).await
            }
        }
    }
}

/// Whether the containers of the service `spec` use secret or config `id`.
fn uses_data(spec: &bollard::models::ServiceSpec, kind: DataKind, id: &str) -> bool {
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
}
