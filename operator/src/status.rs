//! Writing status: server-side apply of the whole status as the operator's field manager, and only
//! when it differs from what the API server holds, so a converged object costs no writes.

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::Serialize;
use serde_json::json;

use crate::{context::Context, error::Error};

const FIELD_MANAGER: &str = "swarm-operator";

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
    let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()),
                       "metadata": {"resourceVersion": obj.resource_version()}, "status": status});
    let written = api
        .patch_status(
            &obj.name_any(),
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
