//! Kubernetes writes whose answer the operator does not use. kube's `Api` decodes the object the
//! API server sends back from every write (a SwarmService is a few KB, a stack's status holds a
//! line per service), which a pass that only needs to know the write went through throws away.
//! These send the same requests through the same client and parse the answer into nothing;
//! errors come back as kube's (`kube::Error::Api` with the server's status).

use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    core::Request,
};
use serde::{Serialize, de::IgnoredAny};

/// Creates `obj` (serialized as it is: the derived kinds write their own `apiVersion` and `kind`).
pub async fn create<K: kube::Resource + Clone, T: Serialize>(
    api: &Api<K>,
    pp: &PostParams,
    obj: &T,
) -> Result<(), kube::Error> {
    let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let request = Request::new(api.resource_url())
        .create(pp, body)
        .map_err(kube::Error::BuildRequest)?;
    send(api, request, "create").await
}

/// Patches the object named `name`, or its `subresource` (`status`).
pub async fn patch<K: kube::Resource + Clone, P: Serialize>(
    api: &Api<K>,
    name: &str,
    subresource: Option<&str>,
    pp: &PatchParams,
    patch: &Patch<P>,
) -> Result<(), kube::Error> {
    let request = Request::new(api.resource_url());
    let (request, operation) = match subresource {
        None => (request.patch(name, pp, patch), "patch"),
        Some(sub) => (
            request.patch_subresource(sub, name, pp, patch),
            "patch_subresource",
        ),
    };
    send(api, request.map_err(kube::Error::BuildRequest)?, operation).await
}

async fn send<K: kube::Resource + Clone>(
    api: &Api<K>,
    mut request: http::Request<Vec<u8>>,
    operation: &'static str,
) -> Result<(), kube::Error> {
    // The operation's name, as kube's own methods set it (its tracing spans read it).
    request.extensions_mut().insert(operation);
    let client: Client = api.clone().into_client();
    client.request::<IgnoredAny>(request).await.map(|_| ())
}
