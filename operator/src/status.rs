//! Writing status: server-side apply of the whole status as the operator's field manager, and only
//! when it differs from what the API server holds, so a converged object costs no writes.

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::Serialize;

use crate::{context::Context, error::Error};

const FIELD_MANAGER: &str = "swarm-operator";

/// What a status write sends: the object's type, the version the pass read, and the status.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusPatch<'a, S> {
    api_version: &'a str,
    kind: &'a str,
    metadata: Version<'a>,
    status: &'a S,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Version<'a> {
    resource_version: Option<&'a str>,
}

/// Applies `status` to `obj` unless `current` already equals it; counts the write, and notes the
/// version it superseded (see `Context::current`).
pub async fn apply_status<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(());
    }
    // Only over the version the pass read: a pass that ran on a cached copy older than a status
    // written since (the watch lags the write) must not put the older facts back; it is refused
    // with 409, and the object looks again once the cache has caught up.
    // Serialized from the status itself: a JSON value of it first cost a stack of 1000 services
    // about a megabyte more at its status write.
    let patch = StatusPatch {
        api_version: &K::api_version(&()),
        kind: &K::kind(&()),
        metadata: Version {
            resource_version: obj.meta().resource_version.as_deref(),
        },
        status,
    };
    let written = crate::write::patch(
        api,
        &obj.name_any(),
        Some("status"),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await;
    match written {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return Err(Error::Waiting {
                object: obj.name_any(),
                message: "the status changed since this pass read it; looking again".into(),
            });
        }
        Err(source) => {
            return Err(Error::Kube {
                operation: "patch status",
                object: obj.name_any(),
                source,
            });
        }
    }
    ctx.wrote_over(obj);
    ctx.metrics.status_written(&K::kind(&()));
    Ok(())
}
