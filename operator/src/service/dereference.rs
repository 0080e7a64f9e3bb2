//! Resolves what a SwarmService refers to by name: its networks, the current versions of its
//! SwarmSecrets and SwarmConfigs, its image pull credentials and the Secrets and ConfigMaps its
//! environment reads. Something missing is not an error: the service waits for it
//! (Reconciling/WaitingForDependency, or Stalled/SourceMissing for the environment's sources,
//! which only the user creates) and looks again when it appears.

use std::sync::Arc;

use bollard::auth::DockerCredentials;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use swarm_operator_crds::{
    OnCluster, SwarmConfig, SwarmSecret, SwarmService, VersionedStatus,
    conditions::{READY, is_true},
};

use super::{build::Resolved, env, registry_auth};
use crate::{
    context::{Context, resource_name},
    error::Error,
    labels::{OWNER_NAME, OWNER_NAMESPACE, OWNER_UID},
    swarm::Engine,
};

/// What dereferencing found.
pub enum Dependencies {
    /// Everything exists. The credentials are sent as X-Registry-Auth and are no part of the spec.
    Found {
        resolved: Resolved,
        credentials: Option<Box<PullCredentials>>,
    },
    /// These do not exist (yet), in the user's words ("SwarmSecret db-password").
    Missing(Vec<String>),
    /// Secrets, ConfigMaps or keys the environment reads are missing, each named with its
    /// variable: the user's to create (Stalled/SourceMissing), woken when they appear.
    SourceMissing(Vec<String>),
}

pub async fn dependencies(svc: &SwarmService, ctx: &Context, engine: &Engine) -> Result<Dependencies, Error> {
    let client = &ctx.client;
    let ns = svc.namespace().unwrap_or_default();
    let stores = ctx.service_dependencies(&ns);
    let mut resolved = Resolved::default();
    let mut missing = Vec::new();
    let swarm_networks = Source::new(client, &ns, stores.as_ref().map(|s| &s.networks));
    for network in &svc.spec.networks {
        let external = network.external == Some(true);
        let id = if external {
            let found = engine.find_network(&network.name).await?;
            not_a_swarm_network(svc, found.as_ref())?;
            found.and_then(|n| n.id)
        } else {
            let found = swarm_networks.get("get SwarmNetwork", &network.name).await?;
            same_cluster(svc, "spec.networks", found.as_deref())?;
            // Ready means the Swarm network exists; its ID is in status.
            found
                .and_then(|n| n.status.clone())
                .filter(|s| is_true(&s.conditions, READY))
                .and_then(|s| s.network_id)
        };
        match id {
            Some(id) => {
                resolved.networks.insert(network.name.clone(), id);
            }
            None if external => missing.push(format!("network {}", network.name)),
            None => missing.push(format!("SwarmNetwork {}", network.name)),
        }
    }
    // The current version of each SwarmSecret / SwarmConfig: a new one rolls the service over to it.
    let names = |refs: &[swarm_operator_crds::service::DataReference]| -> Vec<String> {
        refs.iter().map(|r| r.name.clone()).collect()
    };
    let secrets = Source::new(client, &ns, stores.as_ref().map(|s| &s.secrets));
    resolved.secrets = current_versions(
        svc,
        &secrets,
        "spec.secrets",
        &names(&svc.spec.secrets),
        &mut missing,
    )
    .await?;
    let configs = Source::new(client, &ns, stores.as_ref().map(|s| &s.configs));
    resolved.configs = current_versions(
        svc,
        &configs,
        "spec.configs",
        &names(&svc.spec.configs),
        &mut missing,
    )
    .await?;
    let credentials = pull_credentials(svc, client, &mut missing).await?.map(Box::new);
    resolved.env = env::read(svc, client).await?;
    if let Err(env::Problem::Missing(sources)) =
        env::assemble(&svc.spec.env, &svc.spec.env_from, &resolved.env)
    {
        return Ok(Dependencies::SourceMissing(sources));
    }
    Ok(if missing.is_empty() {
        Dependencies::Found {
            resolved,
            credentials,
        }
    } else {
        Dependencies::Missing(missing)
    })
}

/// A SwarmSecret or SwarmConfig, as far as a service that mounts it needs to know.
trait Versioned:
    'static + kube::Resource<DynamicType = ()> + OnCluster + Clone + serde::de::DeserializeOwned + std::fmt::Debug
{
    fn versioned_status(&self) -> Option<&VersionedStatus>;
}

impl Versioned for SwarmSecret {
    fn versioned_status(&self) -> Option<&VersionedStatus> {
        self.status.as_ref()
    }
}

impl Versioned for SwarmConfig {
    fn versioned_status(&self) -> Option<&VersionedStatus> {
        self.status.as_ref()
    }
}

/// Name -> (Swarm ID, Swarm name) of the current version of each of `names`; the missing or not
/// yet Ready ones are added to `missing`.
async fn current_versions<K: Versioned>(
    svc: &SwarmService,
    source: &Source<'_, K>,
    field: &str,
    names: &[String],
    missing: &mut Vec<String>,
) -> Result<std::collections::HashMap<String, (String, String)>, Error> {
    let kind = K::kind(&());
    let mut found = std::collections::HashMap::new();
    for name in names {
        let object = source.get("get", name).await?;
        same_cluster(svc, field, object.as_deref())?;
        match object
            .as_ref()
            .and_then(|o| current_version(o.versioned_status()))
        {
            Some(version) => {
                found.insert(name.clone(), version);
            }
            None => missing.push(format!("{kind} {name}")),
        }
    }
    Ok(found)
}

/// (Swarm ID, Swarm name) of the current version of a Ready SwarmSecret or SwarmConfig.
fn current_version(status: Option<&VersionedStatus>) -> Option<(String, String)> {
    let status = status.filter(|s| is_true(&s.conditions, READY))?;
    status.swarm_id.clone().zip(status.swarm_name.clone())
}

/// Credentials for the image's registry, and which version of which Secret they come from (so a
/// Secret fixed in place is told from the one the manager last got, without keeping the value).
pub struct PullCredentials {
    pub credentials: DockerCredentials,
    /// `<Secret name>@<resourceVersion>`
    pub source: String,
}

/// The first imagePullSecret with credentials for the image's registry.
async fn pull_credentials(
    svc: &SwarmService,
    client: &kube::Client,
    missing: &mut Vec<String>,
) -> Result<Option<PullCredentials>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &svc.namespace().unwrap_or_default());
    let mut credentials = None;
    for reference in &svc.spec.image_pull_secrets {
        let Some(secret) = get(&secrets, "get Secret", &reference.name).await? else {
            missing.push(format!("Secret {}", reference.name));
            continue;
        };
        let invalid = |message: String| Error::InvalidSpec {
            object: resource_name(svc),
            message: format!("spec.imagePullSecrets: Secret {}{message}", reference.name),
        };
        let document = secret.data.as_ref().and_then(|d| d.get(".dockerconfigjson"));
        let Some(document) = document else {
            return Err(invalid(
                " has no .dockerconfigjson (type kubernetes.io/dockerconfigjson expected)".into(),
            ));
        };
        let found = registry_auth::credentials_for(&document.0, &svc.spec.image)
            .map_err(|why| invalid(format!(": {why}")))?;
        if credentials.is_none() {
            let version = secret.metadata.resource_version.clone().unwrap_or_default();
            credentials = found.map(|credentials| PullCredentials {
                credentials,
                source: format!("{}@{version}", reference.name),
            });
        }
    }
    Ok(credentials)
}

/// Where a pass reads the objects of one kind its service refers to: the controller's store once
/// it has listed them, else (no store) the API server.
struct Source<'a, K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    store: Option<&'a Store<K>>,
    api: Api<K>,
    namespace: &'a str,
}

impl<'a, K> Source<'a, K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + 'static,
{
    fn new(client: &kube::Client, namespace: &'a str, store: Option<&'a Store<K>>) -> Self {
        Source {
            store,
            api: Api::namespaced(client.clone(), namespace),
            namespace,
        }
    }
}

impl<K> Source<'_, K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + 'static,
{
    /// `name`, or None when it does not exist. As the store has it: the watch that fills it is
    /// the one that wakes the services when it changes, so a pass that saw it older runs again.
    /// Until that watch has listed them (just after a start, or while it fails), from the API.
    async fn get(&self, operation: &'static str, name: &str) -> Result<Option<Arc<K>>, Error> {
        use futures::FutureExt;
        if let Some(store) = self.store
            && matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
        {
            return Ok(store.get(&ObjectRef::new(name).within(self.namespace)));
        }
        Ok(get(&self.api, operation, name).await?.map(Arc::new))
    }
}

/// `name` of `api`, or None when it does not exist.
pub(super) async fn get<K>(api: &Api<K>, operation: &'static str, name: &str) -> Result<Option<K>, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(|source| Error::Kube {
        operation,
        object: name.to_string(),
        source,
    })
}

/// `external: true` joins only networks the operator does not manage: one it manages belongs to a
/// SwarmNetwork, which only services of its own namespace may join, by naming it.
fn not_a_swarm_network(svc: &SwarmService, found: Option<&bollard::models::Network>) -> Result<(), Error> {
    let Some(network) = found else { return Ok(()) };
    let labels = network.labels.as_ref();
    let owner = |key| labels.and_then(|l| l.get(key)).cloned().unwrap_or_default();
    if labels.is_none_or(|l| !l.contains_key(OWNER_UID)) {
        return Ok(());
    }
    let (namespace, name) = (owner(OWNER_NAMESPACE), owner(OWNER_NAME));
    let network_name = network.name.clone().unwrap_or_default();
    let message = if Some(namespace.as_str()) == svc.namespace().as_deref() {
        format!(
            "spec.networks: network {network_name} is SwarmNetwork {name} of this namespace: name it without external: true"
        )
    } else {
        format!(
            "spec.networks: network {network_name} belongs to namespace {namespace}; external: true joins only networks swarm-operator does not manage"
        )
    };
    Err(Error::InvalidSpec {
        object: resource_name(svc),
        message,
    })
}

/// A network, secret or config of another swarm cannot be attached: its IDs mean nothing here.
fn same_cluster<K: OnCluster + kube::Resource<DynamicType = ()>>(
    svc: &SwarmService,
    field: &str,
    other: Option<&K>,
) -> Result<(), Error> {
    match other {
        Some(other) if other.cluster_name() != svc.cluster_name() => Err(Error::InvalidSpec {
            object: resource_name(svc),
            message: format!(
                "{field}: {} {} lives on SwarmCluster {}, this service on {}",
                K::kind(&()),
                other.name_any(),
                other.cluster_name(),
                svc.cluster_name()
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};
    use swarm_operator_crds::{SwarmNetwork, network::SwarmNetworkSpec};

    use super::*;

    fn network(namespace: &str, name: &str) -> SwarmNetwork {
        let mut network = SwarmNetwork::new(name, SwarmNetworkSpec::default());
        network.metadata.namespace = Some(namespace.into());
        network
    }

    /// A client whose every request fails: a read that reaches the API shows as an error.
    fn unreachable_api() -> kube::Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    #[tokio::test]
    async fn a_listed_store_answers_instead_of_the_api_server() {
        let (store, mut writer) = reflector::store::<SwarmNetwork>();
        let client = unreachable_api();
        let source = Source::new(&client, "team-a", Some(&store));
        assert!(
            source.get("get", "backend").await.is_err(),
            "before the watch has listed, the API server is asked"
        );
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(network("team-a", "backend")));
        writer.apply_watcher_event(&watcher::Event::InitApply(network("team-b", "frontend")));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let found = source.get("get", "backend").await.unwrap();
        assert_eq!(found.map(|n| n.name_any()).as_deref(), Some("backend"));
        assert!(
            source.get("get", "frontend").await.unwrap().is_none(),
            "another namespace's object is not this one's"
        );
    }
}
