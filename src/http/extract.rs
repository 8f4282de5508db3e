//! Extractors whose rejections are our JSON errors, never axum's plain text.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::error::ApiError;
use crate::domain::json::{StrictJsonError, parse_strict};

/// A JSON request body as a [`Value`]; validation into types comes after.
/// The body is parsed as JSON whatever its `Content-Type` says, so a plain
/// `curl -d '{…}'` (sent as form data) works too; browsers' cross-site
/// requests are refused before this (see `middleware::edge_guard`). The
/// whole body must arrive within the read timeout, and a key given twice is
/// refused, naming it.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limits = req
            .extensions()
            .get::<BodyLimits>()
            .copied()
            .unwrap_or(BodyLimits {
                max_bytes: 0,
                read_timeout: Duration::ZERO,
            });
        let read = tokio::time::timeout(limits.read_timeout, Bytes::from_request(req, state));
        let bytes = read
            .await
            .map_err(|_| ApiError::RequestTimeout {
                seconds: limits.read_timeout.as_secs(),
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit: limits.max_bytes,
                    }
                } else {
                    ApiError::InvalidJson(rejection.body_text())
                }
            })?;
        if bytes.is_empty() {
            return Err(ApiError::InvalidJson("the request body is empty".into()));
        }
        let value = parse_strict(&bytes).map_err(|err| match err {
            StrictJsonError::Syntax(message) => ApiError::InvalidJson(message),
            StrictJsonError::DuplicateKey { path, key } => {
                let field = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                ApiError::validation(&field, "is given more than once")
            }
        })?;
        if let Some(field) = string_with_nul(&value, "") {
            return Err(ApiError::validation(
                &field,
                "must not contain the NUL character (U+0000)",
            ));
        }
        Ok(JsonBody(value))
    }
}

/// The path (`a.b[2]`; `body` for the whole body) of the first string that
/// contains U+0000, as a key or a value. PostgreSQL can store U+0000 in
/// neither `text` nor `jsonb`, so such a body is refused here, as a client
/// error, instead of failing when it is stored.
fn string_with_nul(value: &Value, path: &str) -> Option<String> {
    let here = || (if path.is_empty() { "body" } else { path }).to_owned();
    match value {
        Value::String(text) => text.contains('\0').then(here),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| string_with_nul(item, &format!("{path}[{index}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                return Some(inner);
            }
            string_with_nul(item, &inner)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// The query string as `T`; a bad parameter is a 422 naming it.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        parse_query(query).map(QueryParams)
    }
}

fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs)).map_err(|err| {
        let field = match err.path().to_string() {
            path if path == "." => "query".to_owned(),
            path => path,
        };
        ApiError::validation(&field, err.into_inner().to_string())
    })
}

/// The configured body limits, put in request extensions so the extractor
/// applies them and its rejection names them.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

/// Parses a task id given by a client, naming the parameter on failure.
pub fn parse_task_uuid(raw: &str, parameter: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim())
        .map_err(|err| ApiError::validation(parameter, format!("not a valid UUID: {err}")))
}

/// The path parameters as `T` (`PathParam<String>` for a route with one);
/// a bad one is a 422 naming it, like every other invalid field.
#[derive(Debug, Clone, Copy)]
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => {
                let field = match rejected_key(&rejection) {
                    Some(key) => key.to_owned(),
                    None => only_parameter(parts, state).await,
                };
                Err(ApiError::validation(&field, rejection.body_text()))
            }
        }
    }
}

/// The parameter a path rejection names, when it names one.
fn rejected_key(rejection: &PathRejection) -> Option<&str> {
    let PathRejection::FailedToDeserializePathParams(failed) = rejection else {
        return None;
    };
    match failed.kind() {
        ErrorKind::ParseErrorAtKey { key, .. }
        | ErrorKind::InvalidUtf8InPathParam { key }
        | ErrorKind::DeserializeError { key, .. } => Some(key),
        _ => None,
    }
}

/// The name of the route's one path parameter; `path` when it has several.
async fn only_parameter<S: Send + Sync>(parts: &mut Parts, state: &S) -> String {
    let raw = RawPathParams::from_request_parts(parts, state).await;
    let mut names = raw
        .iter()
        .flat_map(|params| params.iter().map(|(key, _)| key));
    match (names.next(), names.next()) {
        (Some(only), None) => only.to_owned(),
        _ => "path".to_owned(),
    }
}

/// The `{task_uuid}` of a path, parsed: a malformed one is a 422 naming
/// `task_uuid`, like every other invalid field.
#[derive(Debug, Clone, Copy)]
pub struct TaskUuidPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for TaskUuidPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let PathParam(raw) = PathParam::<String>::from_request_parts(parts, state).await?;
        parse_task_uuid(&raw, "task_uuid").map(Self)
    }
}

/// The request id the request-context middleware chose for this request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(Uuid::new_v4().to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_with_nul_are_found_by_path() {
        use serde_json::json;
        let find = |value: Value| string_with_nul(&value, "");
        assert_eq!(
            find(json!({"task_name": "sum", "a": 1, "b": [true, null, "x"]})),
            None
        );
        assert_eq!(
            find(json!({"content": "a\u{0}b"})).as_deref(),
            Some("content")
        );
        assert_eq!(
            find(json!({"a": {"b": ["x", "\u{0}"]}})).as_deref(),
            Some("a.b[1]")
        );
        assert_eq!(find(json!({"k\u{0}": 1})).as_deref(), Some("k\u{0}"));
        assert_eq!(find(json!("\u{0}")).as_deref(), Some("body"));
    }

    #[test]
    fn a_bad_query_parameter_is_named() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Params {
            status: Option<crate::domain::TaskStatus>,
            limit: Option<i64>,
        }
        let field = |query: &str| match parse_query::<Params>(query) {
            Err(ApiError::Validation { details, .. }) => {
                details["field"].as_str().map(str::to_owned)
            }
            _ => None,
        };
        assert_eq!(field("status=done").as_deref(), Some("status"));
        assert_eq!(field("limit=many").as_deref(), Some("limit"));
        assert!(parse_query::<Params>("status=failed&limit=3").is_ok());
    }

    /// A path parameter that is not UTF-8 once percent-decoded is a 422
    /// naming the parameter.
    #[tokio::test]
    async fn a_bad_path_parameter_is_named() {
        use axum::response::IntoResponse;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        async fn pause(path: Result<PathParam<String>, ApiError>) -> axum::response::Response {
            match path {
                Ok(PathParam(name)) => name.into_response(),
                Err(err) => err.into_response(),
            }
        }
        let router = axum::Router::new().route("/queues/{name}/pause", axum::routing::get(pause));
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("cannot bind");
        };
        let Ok(address) = listener.local_addr() else {
            panic!("no address");
        };
        tokio::spawn(async move { axum::serve(listener, router).await });
        let answer = |path: &'static str| async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
                panic!("cannot connect");
            };
            let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let sent = stream.write_all(request.as_bytes()).await;
            let read = stream.read_to_string(&mut answer).await;
            assert!(sent.is_ok() && read.is_ok());
            answer
        };
        let bad = answer("/queues/%FF/pause").await;
        assert!(bad.starts_with("HTTP/1.1 422"), "{bad}");
        assert!(bad.contains(r#""details":{"field":"name"}"#), "{bad}");
        let good = answer("/queues/llm/pause").await;
        assert!(
            good.starts_with("HTTP/1.1 200") && good.ends_with("llm"),
            "{good}"
        );
    }

    #[test]
    fn a_malformed_uuid_names_the_parameter() {
        let err = parse_task_uuid("not-a-uuid", "task_uuid").err();
        assert!(
            matches!(err, Some(ApiError::Validation { message, .. }) if message.contains("task_uuid"))
        );
        assert!(parse_task_uuid(&Uuid::nil().to_string(), "task_uuid").is_ok());
    }
}
