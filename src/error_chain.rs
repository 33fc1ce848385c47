//! One line for an error and everything that caused it.
//!
//! Client libraries wrap the interesting failure deep inside: the AWS SDK's top-level message is
//! "dispatch failure", reqwest's is "error sending request". The cause underneath ("connection
//! refused", "dns error") is what an operator reading a step error, a probe's evidence or a log
//! line needs, so every place that turns a library error into text goes through [`error_chain`].

/// Renders `err` and its sources on one line, `outer: cause: root`, skipping a cause whose text
/// the line already contains (many errors repeat their source in their own message).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(text: &'static str, source: Option<Layer>) -> Layer {
        Layer {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn causes_follow_the_message() {
        let err = layer(
            "dispatch failure",
            Some(layer("io error", Some(layer("connection refused", None)))),
        );
        assert_eq!(
            error_chain(&err),
            "dispatch failure: io error: connection refused"
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let err = layer(
            "request failed: connection refused",
            Some(layer("connection refused", None)),
        );
        assert_eq!(error_chain(&err), "request failed: connection refused");
    }
}
