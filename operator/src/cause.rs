//! The whole cause chain of an error in one line, for Warning events, conditions and logs.

/// `err` and each of its sources, joined by ": ", a source left out when an outer message already
/// says it.
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
