//! Builds kstatus conditions (Ready, Reconciling, Stalled) from one summary of a reconcile pass,
//! keeping each condition's lastTransitionTime while its status stays the same, so an unchanged
//! state produces an identical status and no write.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use swarm_operator_crds::conditions::{FALSE, READY, RECONCILING, STALLED, TRUE};

/// What a reconcile pass concluded, in the user's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Summary {
    /// Everything runs as asked.
    Ready { reason: &'static str, message: String },
    /// Work is under way and expected to finish by itself.
    Reconciling { reason: &'static str, message: String },
    /// No progress without a change from the user (or from outside, e.g. a freed name).
    Stalled { reason: &'static str, message: String },
}

impl Summary {
    pub fn is_ready(&self) -> bool {
        matches!(self, Summary::Ready { .. })
    }
    pub fn reason(&self) -> &'static str {
        match self {
            Summary::Ready { reason, .. }
            | Summary::Reconciling { reason, .. }
            | Summary::Stalled { reason, .. } => reason,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Summary::Ready { message, .. }
            | Summary::Reconciling { message, .. }
            | Summary::Stalled { message, .. } => message,
        }
    }
}

/// The three conditions for `summary`, reusing transition times from `previous` where the status holds.
pub fn conditions(previous: &[Condition], generation: Option<i64>, summary: &Summary) -> Vec<Condition> {
    let (reason, message) = (summary.reason(), summary.message());
    let flag = |on: bool| if on { TRUE } else { FALSE };
    let wanted = [
        (READY, flag(summary.is_ready()), reason),
        (
            RECONCILING,
            flag(matches!(summary, Summary::Reconciling { .. })),
            reason,
        ),
        (STALLED, flag(matches!(summary, Summary::Stalled { .. })), reason),
    ];
    wanted
        .into_iter()
        .map(|(type_, status, reason)| condition(previous, generation, type_, status, reason, message))
        .collect()
}

/// One condition, keeping its lastTransitionTime from `previous` while its status holds.
pub fn condition(
    previous: &[Condition],
    generation: Option<i64>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> Condition {
    let old = previous.iter().find(|c| c.type_ == type_);
    let last_transition_time = match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// How a failed pass reads in a resource's conditions: the Engine's own words; a spec the Engine
/// (or the operator) refused stalls; an unreachable cluster is Reconciling/ClusterUnavailable until it is back.
pub fn failure_summary(err: &crate::Error) -> Summary {
    use crate::Error;
    use swarm_operator_crds::conditions::{
        REASON_CLUSTER_UNAVAILABLE, REASON_ENGINE_ERROR, REASON_INVALID_SPEC,
    };
    match err {
        Error::Engine(e) if e.is_invalid_spec() => Summary::Stalled {
            reason: REASON_INVALID_SPEC,
            message: refusal_message(&e.engine_message()),
        },
        Error::Engine(e) => Summary::Reconciling {
            reason: REASON_ENGINE_ERROR,
            message: e.engine_message(),
        },
        Error::InvalidSpec { message, .. } => Summary::Stalled {
            reason: REASON_INVALID_SPEC,
            message: message.clone(),
        },
        Error::ClusterUnavailable(e) => Summary::Reconciling {
            reason: REASON_CLUSTER_UNAVAILABLE,
            message: e.to_string(),
        },
        other => Summary::Reconciling {
            reason: REASON_ENGINE_ERROR,
            message: other.to_string(),
        },
    }
}

/// What the Engine refused, in the user's words: the field it concerns, when its message says,
/// then the Engine's own message without the gRPC wrapping.
fn refusal_message(engine: &str) -> String {
    let said = engine
        .split_once(" desc = ")
        .map_or(engine, |(_, desc)| desc)
        .to_string();
    match spec_field_of(&said) {
        Some(field) => format!("{field}: the swarm refused it: {said}"),
        None => format!("the swarm refused the spec: {said}"),
    }
}

/// The spec field an Engine refusal concerns, judged from its words (Engine 20.10 to 28).
fn spec_field_of(message: &str) -> Option<&'static str> {
    const FIELDS: [(&str, &str); 10] = [
        ("constraint", "spec.placement.constraints"),
        ("placement preference", "spec.placement.preferences"),
        ("service mode change", "spec.mode"),
        ("is already in use by service", "spec.ports"),
        ("port '", "spec.ports"),
        ("hostname", "spec.hostname"),
        ("name must be valid as a DNS name", "spec.serviceName"),
        ("mount", "spec.mounts"),
        ("valid repository/tag", "spec.image"),
        ("healthcheck", "spec.healthcheck"),
    ];
    let lower = message.to_lowercase();
    FIELDS
        .iter()
        .find(|(words, _)| lower.contains(words))
        .map(|(_, field)| *field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_refusal_names_the_field_in_plain_words() {
        assert_eq!(
            refusal_message(
                "rpc error: code = InvalidArgument desc = port '8080' is already in use by service 'a' (x) as an ingress port"
            ),
            "spec.ports: the swarm refused it: port '8080' is already in use by service 'a' (x) as an ingress port"
        );
        assert_eq!(
            refusal_message("rpc error: code = Unknown desc = constraint expected one operator from ==, !="),
            "spec.placement.constraints: the swarm refused it: constraint expected one operator from ==, !="
        );
        assert_eq!(
            refusal_message("rpc error: code = Unimplemented desc = service mode change is not allowed"),
            "spec.mode: the swarm refused it: service mode change is not allowed"
        );
        assert_eq!(
            refusal_message(
                "rpc error: code = InvalidArgument desc = expanding hostname failed: template: expansion:1: bad character"
            ),
            "spec.hostname: the swarm refused it: expanding hostname failed: template: expansion:1: bad character"
        );
        assert_eq!(
            refusal_message("something new"),
            "the swarm refused the spec: something new"
        );
    }

    #[test]
    fn unchanged_summary_gives_identical_conditions() {
        let s = Summary::Ready {
            reason: "Running",
            message: "3/3 tasks running".into(),
        };
        let first = conditions(&[], Some(2), &s);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(conditions(&first, Some(2), &s), first);
    }

    #[test]
    fn transition_time_moves_only_with_status() {
        let progressing = Summary::Reconciling {
            reason: "Progressing",
            message: "1/3".into(),
        };
        let first = conditions(&[], Some(1), &progressing);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let ready = conditions(
            &first,
            Some(1),
            &Summary::Ready {
                reason: "Running",
                message: "3/3".into(),
            },
        );
        let get = |cs: &[Condition], t: &str| cs.iter().find(|c| c.type_ == t).cloned().unwrap();
        assert_ne!(
            get(&ready, READY).last_transition_time,
            get(&first, READY).last_transition_time
        );
        assert_eq!(
            get(&ready, STALLED).last_transition_time,
            get(&first, STALLED).last_transition_time
        );
        assert_eq!(get(&ready, READY).status, "True");
        assert_eq!(get(&ready, RECONCILING).status, "False");
    }
}
