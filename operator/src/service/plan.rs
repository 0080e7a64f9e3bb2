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
    /// An unmanaged service the resource asks to adopt, on a cluster whose policy forbids it.
    AdoptionNotAllowed,
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
    /// A new generation that changes nothing the swarm runs: only its number is written, quietly,
    /// so that later differences are told apart from drift.
    SameSpec,
    /// Nothing but the registry credentials is new (another Secret, or the Secret fixed in
    /// place): pushed so the manager gets them (Swarm reports no credentials to compare).
    Credentials,
    /// A SwarmSecret or SwarmConfig the service mounts has a new version.
    Rotation,
    /// A Secret or ConfigMap the environment reads changed since the spec was last written.
    SourceChanged,
    /// Someone changed the Swarm service out of band: put back.
    DriftReverted,
}

/// `credentials`: where the pull credentials in use come from (`Secret@resourceVersion`), if any;
/// `env_sources`: the versions of the Secrets and ConfigMaps the environment was read from;
/// `adoption_allowed`: the cluster's policy on taking over services the operator did not make.
pub fn plan(
    svc: &SwarmService,
    desired: &ServiceSpec,
    existing: Option<&Service>,
    credentials: Option<&str>,
    env_sources: &[String],
    adoption_allowed: bool,
) -> Plan {
    let Some(existing) = existing else {
        return Plan::Create;
    };
    let status = svc.status.as_ref();
    let claim = match ownership(svc, existing.spec.as_ref().and_then(|s| s.labels.as_ref())) {
        Ownership::Ours if status.and_then(|s| s.service_id.as_ref()).is_none() => Claim::LostCreate,
        Ownership::Ours => Claim::Ours,
        Ownership::Unmanaged if svc.wants_adoption() && adoption_allowed => Claim::Adopt,
        Ownership::Unmanaged if svc.wants_adoption() => return Plan::AdoptionNotAllowed,
        other => return Plan::Conflict(other),
    };
    let actual = existing.spec.clone().unwrap_or_default();
    let fields = diff::spec_differences(desired, &actual);
    // Read from the swarm, not from status: status says what the conditions speak of, and a
    // generation can be observed (waiting for a dependency, say) long before it is written.
    let generation = svc.metadata.generation;
    let applied = generation.is_some() && diff::written_generation(&actual) == generation;
    let new_credentials =
        credentials.is_some() && status.and_then(|s| s.pull_credentials_from.as_deref()) != credentials;
    let change = if fields.is_empty() {
        match (new_credentials, applied) {
            (true, _) => Change::Update {
                fields,
                cause: Cause::Credentials,
            },
            (false, true) => Change::Nothing,
            (false, false) => Change::Update {
                fields,
                cause: Cause::SameSpec,
            },
        }
    } else if rolling_back(existing) && status.and_then(|s| s.written_generation) == generation {
        // Swarm put back the previous spec after this generation was written (Swarm keeps no
        // trace of which: it drops the spec it undid).
        Change::HoldRolledBack
    } else {
        let cause = if !applied {
            Cause::NewGeneration
        } else if diff::only_data_versions_differ(desired, &actual) {
            Cause::Rotation
        } else if only_env_differs(&fields) && status.is_some_and(|s| s.env_sources != env_sources) {
            Cause::SourceChanged
        } else {
            Cause::DriftReverted
        };
        Change::Update { fields, cause }
    };
    Plan::Converge { claim, change }
}

fn only_env_differs(fields: &[String]) -> bool {
    fields.iter().all(|f| f == "TaskTemplate.ContainerSpec.Env")
}

/// Whether Swarm is rolling the service back, or has rolled it back (failureAction Rollback, or
/// `docker service update --rollback`).
fn rolling_back(service: &Service) -> bool {
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
    use swarm_operator_crds::{SwarmServiceStatus, service::ADOPT_ANNOTATION};

    use super::*;
    use crate::{
        labels::{self, GENERATION},
        service::build,
    };

    const UID: &str = "uid-1";

    /// Generation 2 of `web`; `known_id`: its status names the Swarm service.
    fn resource(known_id: bool) -> SwarmService {
        let mut svc: SwarmService = serde_yaml_ng::from_str(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {name: web, namespace: shop}\nspec: {image: nginx:1}",
        )
        .unwrap();
        svc.metadata.uid = Some(UID.into());
        svc.metadata.generation = Some(2);
        svc.status = Some(SwarmServiceStatus {
            observed_generation: Some(2),
            service_id: known_id.then(|| "svc-id".into()),
            ..Default::default()
        });
        svc
    }

    /// What generation 2 of `svc` wants the swarm to hold.
    fn desired(svc: &SwarmService) -> ServiceSpec {
        build::service_spec(svc, &build::Resolved::default()).unwrap()
    }

    /// `spec` as written for generation `generation`.
    fn written_by(mut spec: ServiceSpec, generation: i64) -> ServiceSpec {
        spec.labels
            .get_or_insert_default()
            .insert(GENERATION.into(), generation.to_string());
        spec
    }

    fn with_image(mut spec: ServiceSpec, image: &str) -> ServiceSpec {
        spec.task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap()
            .image = Some(image.into());
        spec
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

    fn cause_of(plan: Plan) -> Cause {
        match plan {
            Plan::Converge {
                change: Change::Update { cause, .. },
                ..
            } => cause,
            other => panic!("not an update: {other:?}"),
        }
    }

    #[test]
    fn nothing_there_is_created() {
        let svc = resource(false);
        assert_eq!(plan(&svc, &desired(&svc), None, None, &[], true), Plan::Create);
    }

    #[test]
    fn an_unchanged_service_is_left_alone() {
        let svc = resource(true);
        let spec = desired(&svc);
        assert_eq!(
            plan(&svc, &spec, Some(&found(spec.clone())), None, &[], true),
            converge(Claim::Ours, Change::Nothing)
        );
    }

    #[test]
    fn a_new_generation_is_written_with_the_fields_it_changes() {
        let svc = resource(true);
        let spec = desired(&svc);
        let before = written_by(with_image(spec.clone(), "nginx:0"), 1);
        assert_eq!(
            plan(&svc, &spec, Some(&found(before)), None, &[], true),
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
    fn a_new_generation_that_changes_nothing_records_its_number_quietly() {
        let svc = resource(true);
        let spec = desired(&svc);
        assert_eq!(
            plan(
                &svc,
                &spec,
                Some(&found(written_by(spec.clone(), 1))),
                None,
                &[],
                true
            ),
            converge(
                Claim::Ours,
                Change::Update {
                    fields: vec![],
                    cause: Cause::SameSpec
                }
            )
        );
    }

    #[test]
    fn an_out_of_band_change_to_a_written_generation_is_drift() {
        let svc = resource(true);
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
        assert_eq!(
            cause_of(plan(&svc, &spec, Some(&found(drifted)), None, &[], true)),
            Cause::DriftReverted
        );
    }

    #[test]
    fn a_changed_env_source_rolls_the_service_but_a_hand_edit_of_env_is_drift() {
        // The spec was written with Secret db at version 5; it is at 6 now and the env differs.
        let mut svc = resource(true);
        svc.status.as_mut().unwrap().env_sources = vec!["Secret/db@5".into()];
        let spec = desired(&svc);
        let mut before = spec.clone();
        let container = before
            .task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap();
        container.env = Some(vec!["PASSWORD=old".into()]);
        assert_eq!(
            cause_of(plan(
                &svc,
                &spec,
                Some(&found(before.clone())),
                None,
                &["Secret/db@6".into()],
                true
            )),
            Cause::SourceChanged
        );
        // Same source version: someone edited the env on the swarm.
        assert_eq!(
            cause_of(plan(
                &svc,
                &spec,
                Some(&found(before.clone())),
                None,
                &["Secret/db@5".into()],
                true
            )),
            Cause::DriftReverted
        );
        // A new source version and a hand edit of the image: drift, as the image says.
        let both = with_image(before, "nginx:0");
        assert_eq!(
            cause_of(plan(
                &svc,
                &spec,
                Some(&found(both)),
                None,
                &["Secret/db@6".into()],
                true,
            )),
            Cause::DriftReverted
        );
    }

    #[test]
    fn a_users_own_edit_observed_but_not_yet_written_is_never_drift() {
        // Status already observed generation 2 (it waited for a dependency, say); the swarm still
        // holds generation 1.
        let svc = resource(true);
        let spec = desired(&svc);
        let before = written_by(with_image(spec.clone(), "nginx:0"), 1);
        assert_eq!(
            cause_of(plan(&svc, &spec, Some(&found(before)), None, &[], true)),
            Cause::NewGeneration
        );
    }

    #[test]
    fn a_new_secret_version_on_a_written_generation_is_a_rotation() {
        let svc = resource(true);
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
        assert_eq!(
            cause_of(plan(&svc, &spec, Some(&found(running)), None, &[], true)),
            Cause::Rotation
        );
    }

    #[test]
    fn a_generation_swarm_rolled_back_is_held_but_a_new_one_proceeds() {
        let svc = resource(true);
        let spec = desired(&svc);
        // Generation 2 was written; Swarm put generation 1 back.
        let rolled_back = Service {
            update_status: Some(ServiceUpdateStatus {
                state: Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED),
                ..Default::default()
            }),
            ..found(written_by(with_image(spec.clone(), "nginx:0"), 1))
        };
        let mut written = resource(true);
        written.status.as_mut().unwrap().written_generation = Some(2);
        assert_eq!(
            plan(&written, &spec, Some(&rolled_back), None, &[], true),
            converge(Claim::Ours, Change::HoldRolledBack)
        );
        let mut next = written.clone();
        next.metadata.generation = Some(3);
        assert_eq!(
            cause_of(plan(&next, &desired(&next), Some(&rolled_back), None, &[], true)),
            Cause::NewGeneration,
            "generation 3 is pushed, even if status observed it before (waiting for a dependency)"
        );
    }

    #[test]
    fn credentials_are_pushed_when_they_come_from_another_secret_or_version() {
        let mut svc = resource(true);
        let spec = desired(&svc);
        assert_eq!(
            plan(
                &svc,
                &spec,
                Some(&found(written_by(spec.clone(), 1))),
                Some("right@7"),
                &[],
                true
            ),
            converge(
                Claim::Ours,
                Change::Update {
                    fields: vec![],
                    cause: Cause::Credentials
                }
            )
        );
        svc.status.as_mut().unwrap().pull_credentials_from = Some("right@7".into());
        assert_eq!(
            plan(
                &svc,
                &spec,
                Some(&found(spec.clone())),
                Some("right@7"),
                &[],
                true
            ),
            converge(Claim::Ours, Change::Nothing),
            "not again once the manager has them"
        );
        assert_eq!(
            cause_of(plan(
                &svc,
                &spec,
                Some(&found(spec.clone())),
                Some("right@8"),
                &[],
                true
            )),
            Cause::Credentials,
            "the Secret fixed in place"
        );
    }

    #[test]
    fn ours_but_never_reported_is_a_lost_create() {
        let svc = resource(false);
        let spec = desired(&svc);
        assert_eq!(
            plan(&svc, &spec, Some(&found(spec.clone())), None, &[], true),
            converge(Claim::LostCreate, Change::Nothing)
        );
    }

    #[test]
    fn an_unmanaged_service_is_adopted_only_when_asked() {
        let mut svc = resource(false);
        let spec = desired(&svc);
        let unmanaged = found(with_labels(spec.clone(), HashMap::new()));
        assert_eq!(
            plan(&svc, &spec, Some(&unmanaged), None, &[], true),
            Plan::Conflict(Ownership::Unmanaged)
        );
        let mut asking = svc.clone();
        asking.metadata.annotations = Some([(ADOPT_ANNOTATION.to_string(), "true".to_string())].into());
        assert_eq!(
            plan(&asking, &spec, Some(&unmanaged), None, &[], false),
            Plan::AdoptionNotAllowed,
            "the annotation alone does not take a service over"
        );
        svc.metadata.annotations = Some([(ADOPT_ANNOTATION.to_string(), "true".to_string())].into());
        let Plan::Converge { claim, change } = plan(&svc, &spec, Some(&unmanaged), None, &[], true) else {
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
        let mut svc = resource(false);
        svc.metadata.annotations = Some([(ADOPT_ANNOTATION.to_string(), "true".to_string())].into());
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
                None,
                &[],
                true
            ),
            Plan::Conflict(Ownership::Other {
                namespace: "other".into(),
                name: "web".into()
            })
        );
    }
}
