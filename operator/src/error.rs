//! Errors of the reconcile layer. The error policy decides by kind: an invalid spec waits for a
//! change, everything else backs off per object.

use crate::swarm::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid spec of {object}: {message}")]
    InvalidSpec { object: String, message: String },

    /// Not a failure: something else has to happen first (services leaving a network being
    /// deleted). Retried after a short fixed delay.
    #[error("{object} is waiting: {message}")]
    Waiting { object: String, message: String },

    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error(transparent)]
    ClusterUnavailable(#[from] crate::connections::Unavailable),

    #[error("Kubernetes API call {operation} on {object} failed: {source}")]
    Kube {
        operation: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },

    #[error("finalizer of {object}: {source}")]
    Finalizer {
        object: String,
        #[source]
        source: Box<kube::runtime::finalizer::Error<Error>>,
    },
}

impl Error {
    /// The reconcile's own error, out of the finalizer's wrapping.
    fn root(&self) -> &Error {
        match self {
            Error::Finalizer { source, .. } => match source.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.root(),
                _ => self,
            },
            other => other,
        }
    }

    /// Waiting for something else; not worth a Warning or a growing backoff.
    pub fn is_waiting(&self) -> bool {
        matches!(self.root(), Error::Waiting { .. })
    }

    /// The resource's cluster cannot be reached; looked at again without a growing backoff.
    pub fn is_cluster_unavailable(&self) -> bool {
        matches!(self.root(), Error::ClusterUnavailable(_))
    }

    /// Only a spec change can fix it: do not retry. The operator's own refusals, and the Engine's.
    pub fn waits_for_change(&self) -> bool {
        match self.root() {
            Error::InvalidSpec { .. } => true,
            Error::Engine(e) => e.is_invalid_spec(),
            _ => false,
        }
    }
}
