//! Records each generation written to the swarm as a ControllerRevision (the format is
//! `swarm_operator_crds::service::history`), so `kubectl swarm history` can list what ran and
//! `kubectl swarm rollback` can write an earlier spec back.

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use swarm_operator_crds::{SwarmService, service::history};

use crate::error::Error;

/// Server-side applies the revision of `svc`'s current generation (idempotent: a pass retried
/// after a failed Engine write writes the same revision again).
pub async fn record(svc: &SwarmService, client: &kube::Client) -> Result<(), Error> {
    let Some(revision) = history::revision(svc) else {
        return Ok(());
    };
    let name = revision.name_any();
    // k8s-openapi's types serialize their own `apiVersion` and `kind`.
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &svc.namespace().unwrap_or_default());
    crate::write::patch(
        &api,
        &name,
        None,
        &PatchParams::apply("swarm-operator").force(),
        &Patch::Apply(&revision),
    )
    .await
    .map_err(|source| Error::Kube {
        operation: "apply ControllerRevision",
        object: name,
        source,
    })
}
