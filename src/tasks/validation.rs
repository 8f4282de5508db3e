//! Turning a submitted JSON body into typed task parameters, with errors that
//! name the offending field.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::FieldError;

/// Why a submission was refused. Nothing is stored for a refused submission.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmissionError {
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("`task_name` is required; valid names: {}", valid.join(", "))]
    MissingTaskName { valid: Vec<String> },
    #[error("unknown task_name `{name}`; valid names: {}", valid.join(", "))]
    UnknownTaskName { name: String, valid: Vec<String> },
    #[error("invalid field `{}`: {}", .0.field, .0.message)]
    InvalidField(FieldError),
}

/// Deserializes `params` into `P`, reporting the failing field by its path.
pub(super) fn parse_params<P: DeserializeOwned>(params: Value) -> Result<P, FieldError> {
    serde_path_to_error::deserialize::<_, P>(params).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        let field = if path == "." {
            backticked_name(&message).unwrap_or_else(|| "body".to_owned())
        } else {
            path
        };
        FieldError::new(field, message)
    })
}

/// serde names missing and unknown fields in backticks: "missing field `a`".
fn backticked_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Pair {
        a: i64,
        b: i64,
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_params::<Pair>(json!({"a": 1})).err();
        assert_eq!(err.map(|e| e.field), Some("b".to_owned()));
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let err = parse_params::<Pair>(json!({"a": "one", "b": 2})).err();
        assert_eq!(err.map(|e| e.field), Some("a".to_owned()));
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = parse_params::<Pair>(json!({"a": 1, "b": 2, "c": 3})).err();
        assert_eq!(err.map(|e| e.field), Some("c".to_owned()));
    }
}
