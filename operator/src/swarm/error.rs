//! What an Engine call can fail with, and how that failure is judged: a spec the Engine refused,
//! a conflict, or an endpoint that cannot act for the swarm (so the connection moves on).

/// What managers that cannot act for the swarm answer (Engine 20.10 wording).
const NOT_A_WORKING_MANAGER: [&str; 4] = [
    "not a swarm manager",
    "does not have a leader",
    "not part of a swarm",
    "rpc error: code = Unavailable",
];

/// How Swarm words a refusal of the spec whatever the HTTP status (Engine 20.10 to 28).
const REFUSALS: [&str; 4] = [
    "code = InvalidArgument",
    "code = Unimplemented",
    "constraint expected one operator",
    "invalid constraint",
];

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot connect to the Docker Engine at {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the Docker Engine at {host} speaks API {version}, older than the 1.41 this operator needs")]
    TooOld { host: String, version: String },
    #[error("TLS for {host}: {message}")]
    Tls { host: String, message: String },
    #[error("Engine API {operation} {object}: {message}")]
    Read {
        operation: &'static str,
        object: String,
        status: Option<u16>,
        message: String,
    },
    #[error("Engine API {operation} {object}: {source}")]
    Call {
        operation: &'static str,
        object: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// This replica's leadership lapsed (see `leader::Leadership`): the write was not sent.
    #[error("Engine API {operation} {object}: not sent, this replica is not the leader")]
    NotLeader { operation: &'static str, object: String },
}

impl EngineError {
    /// The endpoint was found failed while the call waited on it.
    pub(super) fn abandoned(operation: &'static str, object: &str) -> Self {
        EngineError::Read {
            operation,
            object: object.to_string(),
            status: None,
            message: "given up: the endpoint failed while the call waited (another manager is picked)".into(),
        }
    }

    pub(super) fn call(operation: &'static str, object: &str, source: bollard::errors::Error) -> Self {
        EngineError::Call {
            operation,
            object: object.to_string(),
            source,
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            EngineError::Read { status, .. } => *status,
            EngineError::Call {
                source: bollard::errors::Error::DockerResponseServerError { status_code, .. },
                ..
            } => Some(*status_code),
            _ => None,
        }
    }

    /// The message the Engine itself gave, for conditions users read.
    pub fn engine_message(&self) -> String {
        match self {
            EngineError::Read { message, .. } => message.clone(),
            EngineError::Call {
                source: bollard::errors::Error::DockerResponseServerError { message, .. },
                ..
            } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The Engine answered, with an error status (not a call that never reached it).
    pub fn answered(&self) -> bool {
        self.status().is_some()
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 409: a name already taken (create) or a stale version index (update).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    pub fn is_out_of_sequence(&self) -> bool {
        self.engine_message().contains("update out of sequence")
    }

    /// The endpoint itself is the problem, not the request: it does not answer (connection refused,
    /// timeout, TLS handshake), is no manager, or is a manager of a swarm without quorum. Another
    /// manager may do.
    pub fn endpoint_failed(&self) -> bool {
        use bollard::errors::Error as B;
        match self {
            EngineError::Connect { .. } | EngineError::TooOld { .. } | EngineError::Tls { .. } => true,
            EngineError::NotLeader { .. } => false,
            EngineError::Read { status: None, .. } => true,
            EngineError::Call {
                source: B::JsonDataError { .. } | B::JsonSerdeError { .. },
                ..
            } => false,
            EngineError::Call {
                source: B::DockerResponseServerError { .. },
                ..
            }
            | EngineError::Read { .. } => {
                let message = self.engine_message();
                self.status() == Some(503) || NOT_A_WORKING_MANAGER.iter().any(|m| message.contains(m))
            }
            EngineError::Call { .. } => true,
        }
    }

    /// The Engine refused the spec itself, so retrying the same spec cannot succeed: a 400, a 501
    /// (what Swarm cannot do, such as changing a service's mode), or Swarm's gRPC words for a bad
    /// argument behind another status (a malformed constraint comes back as a 500).
    pub fn is_invalid_spec(&self) -> bool {
        let message = self.engine_message();
        matches!(self.status(), Some(400 | 501)) || REFUSALS.iter().any(|m| message.contains(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, message: &str) -> EngineError {
        EngineError::Read {
            operation: "create service",
            object: "web".into(),
            status: Some(status),
            message: message.into(),
        }
    }

    #[test]
    fn refusals_of_the_spec_are_told_from_what_a_retry_may_fix() {
        assert!(
            answered(
                400,
                "rpc error: code = InvalidArgument desc = name must be valid as a DNS name component"
            )
            .is_invalid_spec()
        );
        assert!(
            answered(
                501,
                "rpc error: code = Unimplemented desc = service mode change is not allowed"
            )
            .is_invalid_spec()
        );
        assert!(
            answered(
                500,
                "rpc error: code = Unknown desc = constraint expected one operator from ==, !="
            )
            .is_invalid_spec()
        );
        assert!(!answered(500, "rpc error: code = Unknown desc = raft: proposal dropped").is_invalid_spec());
        assert!(!answered(503, "This node is not a swarm manager.").is_invalid_spec());
        assert!(
            !answered(
                409,
                "rpc error: code = AlreadyExists desc = name conflicts with an existing object"
            )
            .is_invalid_spec()
        );
    }
}
