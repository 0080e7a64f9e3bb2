//! The history of a SwarmService's specs, kept as Deployments and StatefulSets keep theirs: one
//! ControllerRevision per generation written to the swarm (`revision` is the generation, `data`
//! the spec), owned by the SwarmService. The operator writes them; `kubectl swarm history` and
//! `rollback` read them. The last `HISTORY_LIMIT` are kept, in as many slots, overwritten in turn.

use k8s_openapi::{
    api::apps::v1::ControllerRevision,
    apimachinery::pkg::{apis::meta::v1::OwnerReference, runtime::RawExtension},
};
use kube::{Resource, ResourceExt, api::ObjectMeta};

use super::{SwarmService, SwarmServiceSpec};

/// How many revisions of a SwarmService are kept.
pub const HISTORY_LIMIT: i64 = 10;
/// On each revision: the UID of the SwarmService whose spec it holds.
pub const HISTORY_OF: &str = "swarmoperator.io/history-of";
/// The annotation whose value, on the SwarmService, is kept with the revision as its cause
/// (kubectl's convention: `kubectl annotate ... kubernetes.io/change-cause="..."`).
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The SwarmStack whose file `svc`'s spec comes from, if a stack controls it.
pub fn stack_of(svc: &SwarmService) -> Option<String> {
    svc.owner_references()
        .iter()
        .find(|o| o.kind == "SwarmStack" && o.controller == Some(true))
        .map(|o| o.name.clone())
}

/// The revision of `svc`'s current generation; None without a generation or UID, and for a
/// stack's service, whose history is its stack's: a spec rolled back by hand would be put back
/// by the stack, and a deploy of N services saves N writes.
pub fn revision(svc: &SwarmService) -> Option<ControllerRevision> {
    if stack_of(svc).is_some() {
        return None;
    }
    let generation = svc.metadata.generation?;
    let uid = svc.uid()?;
    let cause = svc.annotations().get(CHANGE_CAUSE).cloned();
    Some(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-history-{}",
                svc.name_any(),
                generation % HISTORY_LIMIT
            )),
            namespace: svc.namespace(),
            labels: Some([(HISTORY_OF.to_string(), uid.clone())].into()),
            annotations: cause.map(|c| [(CHANGE_CAUSE.to_string(), c)].into()),
            owner_references: Some(vec![OwnerReference {
                api_version: SwarmService::api_version(&()).into_owned(),
                kind: SwarmService::kind(&()).into_owned(),
                name: svc.name_any(),
                uid,
                ..Default::default()
            }]),
            ..Default::default()
        },
        data: serde_json::to_value(&svc.spec).ok().map(RawExtension),
        revision: generation,
    })
}

/// The spec a revision holds.
pub fn spec_of(revision: &ControllerRevision) -> Option<SwarmServiceSpec> {
    serde_json::from_value(revision.data.as_ref()?.0.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_holds_the_spec_of_its_generation_in_a_slot_of_its_own() {
        let mut svc: SwarmService = serde_yaml_ng::from_str(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\n\
             metadata: {name: web, namespace: shop, uid: u1, generation: 13, annotations: {kubernetes.io/change-cause: 'v2'}}\n\
             spec: {image: 'nginx:2', replicas: 3}",
        )
        .unwrap();
        let rev = revision(&svc).unwrap();
        assert_eq!(rev.metadata.name.as_deref(), Some("web-history-3"));
        assert_eq!(rev.revision, 13);
        assert_eq!(rev.metadata.labels.unwrap()[HISTORY_OF], "u1");
        assert_eq!(rev.metadata.annotations.unwrap()[CHANGE_CAUSE], "v2");
        assert_eq!(rev.metadata.owner_references.unwrap()[0].kind, "SwarmService");
        assert_eq!(spec_of(&revision(&svc).unwrap()), Some(svc.spec.clone()));
        svc.metadata.generation = None;
        assert!(revision(&svc).is_none());
    }
}
