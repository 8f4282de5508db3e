//! Errors as one line for a log field: the error and its causes.

/// An error with its whole cause chain, for log fields: `outer: inner:
/// root cause`. Many errors already print their source in their own
/// message (a pool error shows the driver's, the driver's shows the I/O
/// error's), so a cause whose text the error above it already shows is
/// left out: each cause appears once.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut shown = message.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !shown.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        shown = text;
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message may or may not include its source's.
    #[derive(Debug)]
    struct Layer {
        message: String,
        source: Option<Box<Layer>>,
    }

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.source
                .as_deref()
                .map(|s| s as &(dyn std::error::Error + 'static))
        }
    }

    fn chain(messages: &[&str]) -> Layer {
        messages
            .iter()
            .rev()
            .fold(None, |source, message| {
                Some(Layer {
                    message: (*message).to_owned(),
                    source: source.map(Box::new),
                })
            })
            .unwrap_or(Layer {
                message: String::new(),
                source: None,
            })
    }

    #[test]
    fn every_cause_is_shown_once() {
        let err = chain(&["cannot read the queue", "Redis command failed", "timed out"]);
        assert_eq!(
            error_chain(&err),
            "cannot read the queue: Redis command failed: timed out"
        );
    }

    #[test]
    fn a_cause_its_error_already_prints_is_not_repeated() {
        // What deadpool and redis-rs give when Redis refuses connections.
        let refused = "Connection refused (os error 111)";
        let err = chain(&[
            "cannot get a Redis connection",
            &format!("Error occurred while creating a new object: {refused}"),
            refused,
            refused,
        ]);
        assert_eq!(
            error_chain(&err),
            format!(
                "cannot get a Redis connection: Error occurred while creating a new object: {refused}"
            )
        );
        let err = chain(&["Redis command failed", refused, refused]);
        assert_eq!(
            error_chain(&err),
            format!("Redis command failed: {refused}")
        );
    }
}
