//! A [`Task`] with its types erased, so task types of different parameter,
//! output and settings types can share one registry.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;
use utoipa::openapi::{RefOr, Schema};

use super::validation::parse_params;
use super::{FieldError, RetryPolicy, Task, TaskError};

type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send + 'a>>;

/// A [`Task`] with its types erased, so types can share one map.
pub(super) trait ErasedTask: Send + Sync {
    fn parse(&self, params: Value) -> Result<Value, FieldError>;
    fn run(&self, params: Value) -> RunFuture<'_>;
    fn retry_policy(&self) -> RetryPolicy;
    fn timeout(&self) -> Duration;
}

impl<T: Task> ErasedTask for T {
    fn parse(&self, params: Value) -> Result<Value, FieldError> {
        let typed: T::Params = parse_params(params)?;
        self.check(&typed)?;
        serde_json::to_value(&typed).map_err(|err| FieldError::new("body", err.to_string()))
    }

    fn run(&self, params: Value) -> RunFuture<'_> {
        Box::pin(async move {
            // Stored parameters were validated at submission; failing here means
            // the row was changed by hand or the type changed incompatibly.
            let typed: T::Params = parse_params(params).map_err(|err| {
                TaskError::fatal(format!("stored parameters are invalid: {}", err.message))
            })?;
            let output = Task::run(self, typed).await?;
            serde_json::to_value(&output)
                .map_err(|err| TaskError::fatal(format!("the output cannot be encoded: {err}")))
        })
    }

    fn retry_policy(&self) -> RetryPolicy {
        Task::retry_policy(self)
    }

    fn timeout(&self) -> Duration {
        Task::timeout(self)
    }
}

/// Schemas of a type's parameters and output, for the OpenAPI document.
#[derive(Clone, Copy)]
pub(super) struct Schemas {
    pub(super) params: fn() -> RefOr<Schema>,
    pub(super) output_name: fn() -> std::borrow::Cow<'static, str>,
    pub(super) output: fn() -> RefOr<Schema>,
    pub(super) referenced: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl Schemas {
    pub(super) fn of<T: Task>() -> Self {
        Self {
            params: <T::Params as utoipa::PartialSchema>::schema,
            output_name: <T::Output as utoipa::ToSchema>::name,
            output: <T::Output as utoipa::PartialSchema>::schema,
            referenced: |schemas| {
                <T::Params as utoipa::ToSchema>::schemas(schemas);
                <T::Output as utoipa::ToSchema>::schemas(schemas);
            },
        }
    }
}
