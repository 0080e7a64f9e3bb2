//! What a pass does to the Swarm service, decided from the desired spec and what the swarm holds,
//! without touching either: create, leave alone a service someone else owns, take one over, hold a
//! generation Swarm rolled back, update (and why), or nothing.

use bollard::models::{Service, ServiceSpec, ServiceUpdateStatusStateEnum};
use swarm_operator_crds::SwarmService;

use super::diff;
use crate::labels::{Ownership, ownership};

#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// No Swarm service has the name: create it.
    Create,
    /// The name belongs to someone else: touch nothing.
    Conflict(Ownership),
    /// A Swarm service this resource may manage exists.
    Converge { claim: Claim, change: Change },
}

/// Why this resource may manage the Swarm service it found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// It carries this resource's owner labels and status knows it.
    Ours,
    /// Ours, yet status never named it: a create went through but its answer was lost (a manager
    /// stopped mid-call). Said once as created.
    LostCreate,
    /// Unmanaged, and the resource asks to adopt it.
    Adopt,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Nothing,
    /// Swarm rolled this generation back: pushing it again would fail the same way, forever.
    HoldRolledBack,
    /// Write the desired spec; `fields` are the Engine's names of what differs.
    Update {
        fields: Vec<String>,
        cause: Cause,
    },
}

/// Why the spec is written, which decides the event users see.
#[derive(Debug, PartialEq, Eq)]
pub enum Cause {
    /// The user changed the resource.
    NewGeneration,
    /// Nothing but the registry credentials is new: a new generation that carries them is pushed
    /// once so the manager gets them (Swarm reports no credentials to compare).
    Credentials,
    /// A SwarmSecret or SwarmConfig the service mounts has a new version.
    Rotation,
    /// Someone changed the Swarm service out of band: put back.
    DriftReverted,
}

pub fn plan(
    svc: &SwarmService,
    desired: &ServiceSpec,
    existing: Option<&Service>,
    has_credentials: bool,
) -> Plan {
    let Some(existing) = existing else {
        return Plan::Create;
    };
    let status = svc.status.as_ref();
    let claim = match ownership(svc, existing.spec.as_ref().and_then(|s| s.labels.as_ref())) {
        Ownership::Ours if status.and_then(|s| s.service_id.as_ref()).is_none() => Claim::LostCreate,
        Ownership::Ours => Claim::Ours,
        Ownership::Unmanaged if svc.wants_adoption() => Claim::Adopt,
        other => return Plan::Conflict(other),
    };
    let actual = existing.spec.clone().unwrap_or_default();
    let fields = diff::spec_differences(desired, &actual);
    let applied = status.and_then(|s| s.observed_generation) == svc.metadata.generation;
    let change = if fields.is_empty() {
        if !applied && has_credentials {
            Change::Update {
                fields,
                cause: Cause::Credentials,
            }
        } else {
            Change::Nothing
        }
    } else if applied && swarm_rolled_back(existing) {
        Change::HoldRolledBack
    } else {
        let cause = if !applied {
            Cause::NewGeneration
        } else if diff::only_data_versions_differ(desired, &actual) {
            Cause::Rotation
        } else {
            Cause::DriftReverted
        };
        Change::Update { fields, cause }
    };
    Plan::Converge { claim, change }
}

/// Swarm is rolling back, or has rolled back, the spec the service had (failureAction Rollback).
fn swarm_rolled_back(service: &Service) -> bool {
    let state = service.update_status.as_ref().and_then(|u| u.state);
    matches!(
        state,
        Some(
            ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
                | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
        )
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ServiceUpdateStatus, TaskSpecContainerSpecSecrets};
    use swarm_operator_crds::SwarmServiceStatus;

    use super::*;
    use crate::{labels, service::build};

    const UID: &str = "uid-1";

    /// Generation 2 of `web`, with `applied` saying whether generation 2 was already pushed.
    fn resource(applied: bool, known_id: bool) -> SwarmService {
        let mut svc: SwarmService = serde_yaml_ng::from_str(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: web, namespace: shop}\nspec: {image: nginx:1}",
        )
        .unwrap();
        svc.metadata.uid = Some(UID.into());
        svc.metadata.generation = Some(2);
        svc.status = Some(SwarmServiceStatus {
            observed_generation: Some(if applied { 2 } else { 1 }),
            service_id: known_id.then(|| "svc-id".into()),
            ..Default::default()
        });
        svc
    }

    fn desired(svc: &SwarmService) -> ServiceSpec {
        build::service_spec(svc, &build::Resolved::default()).unwrap()
    }

    /// The Swarm service as the Engine would report `spec`.
    fn found(spec: ServiceSpec) -> Service {
        Service {
            id: Some("svc-id".into()),
            spec: Some(spec),
            ..Default::default()
        }
    }

    fn with_labels(mut spec: ServiceSpec, labels: HashMap<String, String>) -> ServiceSpec {
        spec.labels = Some(labels);
        spec
    }

    fn converge(claim: Claim, change: Change) -> Plan {
        Plan::Converge { claim, change }
    }

    #[test]
    fn nothing_there_is_created() {
        let svc = resource(false, false);
        assert_eq!(plan(&svc, &desired(&svc), None, false), Plan::Create);
    }

    #[test]
    fn an_unchanged_service_is_left_alone() {
        let svc = resource(true, true);
        let spec = desired(&svc);
        assert_eq!(
            plan(&svc, &spec, Some(&found(spec.clone())), false),
            converge(Claim::Ours, Change::Nothing)
        );
    }

    #[test]
    fn a_new_generation_is_written_with_the_fields_it_changes() {
        let svc = resource(false, true);
        let spec = desired(&svc);
        let mut before = spec.clone();
        before
            .task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap()
            .image = Some("nginx:0".into());
        assert_eq!(
            plan(&svc, &spec, Some(&found(before)), false),
            converge(
                Claim::Ours,
                Change::Update {
                    fields: vec!["TaskTemplate.ContainerSpec.Image".into()],
                    cause: Cause::NewGeneration
                }
            )
        );
    }

    #[test]
    fn an_out_of_band_change_to_an_applied_generation_is_drift() {
        let svc = resource(true, true);
        let spec = desired(&svc);
        let mut drifted = spec.clone();
        drifted
            .task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap()
            .env = Some(vec!["MODE=drifted".into()]);
        let Plan::Converge {
            change: Change::Update { cause, .. },
            ..
        } = plan(&svc, &spec, Some(&found(drifted)), false)
        else {
            panic!("not an update");
        };
        assert_eq!(cause, Cause::DriftReverted);
    }

    #[test]
    fn a_new_secret_version_on_an_applied_generation_is_a_rotation() {
        let svc = resource(true, true);
        let secret = |id: &str| TaskSpecContainerSpecSecrets {
            secret_id: Some(id.into()),
            secret_name: Some(format!("db-{id}")),
            ..Default::default()
        };
        let mut spec = desired(&svc);
        spec.task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap()
            .secrets = Some(vec![secret("new")]);
        let mut running = spec.clone();
        running
            .task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap()
            .secrets = Some(vec![secret("old")]);
        let Plan::Converge {
            change: Change::Update { cause, .. },
            ..
        } = plan(&svc, &spec, Some(&found(running)), false)
        else {
            panic!("not an update");
        };
        assert_eq!(cause, Cause::Rotation);
    }

    #[test]
    fn a_generation_swarm_rolled_back_is_held_but_a_new_one_proceeds() {
        let rolled_back = |spec: ServiceSpec| Service {
            update_status: Some(ServiceUpdateStatus {
                state: Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED),
                ..Default::default()
            }),
            ..found(spec)
        };
        let svc = resource(true, true);
        let spec = desired(&svc);
        let mut previous = spec.clone();
        previous
            .task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap()
            .image = Some("nginx:0".into());
        assert_eq!(
            plan(&svc, &spec, Some(&rolled_back(previous.clone())), false),
            converge(Claim::Ours, Change::HoldRolledBack)
        );
        let next = resource(false, true);
        assert!(matches!(
            plan(&next, &desired(&next), Some(&rolled_back(previous)), false),
            Plan::Converge {
                change: Change::Update {
                    cause: Cause::NewGeneration,
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn credentials_of_a_new_generation_are_pushed_once() {
        let svc = resource(false, true);
        let spec = desired(&svc);
        assert_eq!(
            plan(&svc, &spec, Some(&found(spec.clone())), true),
            converge(
                Claim::Ours,
                Change::Update {
                    fields: vec![],
                    cause: Cause::Credentials
                }
            )
        );
        let applied = resource(true, true);
        assert_eq!(
            plan(&applied, &spec, Some(&found(spec.clone())), true),
            converge(Claim::Ours, Change::Nothing),
            "not again once the generation is applied"
        );
    }

    #[test]
    fn ours_but_never_reported_is_a_lost_create() {
        let svc = resource(false, false);
        let spec = desired(&svc);
        assert_eq!(
            plan(&svc, &spec, Some(&found(spec.clone())), false),
            converge(Claim::LostCreate, Change::Nothing)
        );
    }

    #[test]
    fn an_unmanaged_service_is_adopted_only_when_asked() {
        let mut svc = resource(false, false);
        let spec = desired(&svc);
        let unmanaged = found(with_labels(spec.clone(), HashMap::new()));
        assert_eq!(
            plan(&svc, &spec, Some(&unmanaged), false),
            Plan::Conflict(Ownership::Unmanaged)
        );
        svc.metadata.annotations = Some(
            [(
                swarm_operator_crds::service::ADOPT_ANNOTATION.to_string(),
                "true".to_string(),
            )]
            .into(),
        );
        let Plan::Converge { claim, change } = plan(&svc, &spec, Some(&unmanaged), false) else {
            panic!("not adopted");
        };
        assert_eq!(claim, Claim::Adopt);
        assert!(
            matches!(
                change,
                Change::Update {
                    cause: Cause::NewGeneration,
                    ..
                }
            ),
            "the owner labels are written: {change:?}"
        );
    }

    #[test]
    fn a_service_of_another_resource_is_a_conflict_even_with_the_adopt_annotation() {
        let mut svc = resource(false, false);
        svc.metadata.annotations = Some(
            [(
                swarm_operator_crds::service::ADOPT_ANNOTATION.to_string(),
                "true".to_string(),
            )]
            .into(),
        );
        let spec = desired(&svc);
        let theirs = HashMap::from([
            (labels::OWNER_UID.to_string(), "uid-other".to_string()),
            (labels::OWNER_NAMESPACE.to_string(), "other".to_string()),
            (labels::OWNER_NAME.to_string(), "web".to_string()),
        ]);
        assert_eq!(
            plan(
                &svc,
                &spec,
                Some(&found(with_labels(spec.clone(), theirs))),
                false
            ),
            Plan::Conflict(Ownership::Other {
                namespace: "other".into(),
                name: "web".into()
            })
        );
    }
}
