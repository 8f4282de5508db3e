//! The registry: every task type Tasker knows, by name, with the queue it
//! runs on. Adding a task type means adding one line to `Registry::new`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use utoipa::openapi::{RefOr, Schema};

use super::file_hash::FileHash;
use super::query_llm::QueryLlm;
use super::sum::Sum;
use super::validation::{SubmissionError, parse_params};
use super::{FieldError, RetryPolicy, Task, TaskError};
use crate::config::Config;

type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send + 'a>>;

/// A [`Task`] with its parameter type erased, so types can share one map.
trait ErasedTask: Send + Sync {
    fn parse(&self, params: Value) -> Result<Value, FieldError>;
    fn run(&self, params: Value) -> RunFuture<'_>;
    fn retry_policy(&self) -> RetryPolicy;
    fn timeout(&self) -> Duration;
    fn description(&self) -> &'static str;
    fn example(&self) -> Value;
    fn params_schema(&self) -> RefOr<Schema>;
    fn referenced_schemas(&self) -> Vec<(String, RefOr<Schema>)>;
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
            Task::run(self, typed).await
        })
    }

    fn retry_policy(&self) -> RetryPolicy {
        Task::retry_policy(self)
    }

    fn timeout(&self) -> Duration {
        Task::timeout(self)
    }

    fn description(&self) -> &'static str {
        Task::description(self)
    }

    fn example(&self) -> Value {
        Task::example(self)
    }

    fn params_schema(&self) -> RefOr<Schema> {
        <T::Params as utoipa::PartialSchema>::schema()
    }

    fn referenced_schemas(&self) -> Vec<(String, RefOr<Schema>)> {
        let mut schemas = Vec::new();
        <T::Params as utoipa::ToSchema>::schemas(&mut schemas);
        schemas
    }
}

/// One task type as the rest of the service sees it.
#[derive(Clone)]
pub struct RegisteredTask {
    name: &'static str,
    queue: String,
    task: Arc<dyn ErasedTask>,
}

impl RegisteredTask {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.task.retry_policy()
    }

    pub fn timeout(&self) -> Duration {
        self.task.timeout()
    }

    pub fn description(&self) -> &'static str {
        self.task.description()
    }

    pub fn example(&self) -> Value {
        self.task.example()
    }

    /// The JSON schema of the parameters, without `task_name`.
    pub fn params_schema(&self) -> RefOr<Schema> {
        self.task.params_schema()
    }

    /// Named schemas the parameter schema refers to (enums and the like).
    pub fn referenced_schemas(&self) -> Vec<(String, RefOr<Schema>)> {
        self.task.referenced_schemas()
    }

    /// Runs one attempt on stored (already validated) parameters.
    pub async fn run(&self, params: Value) -> Result<Value, TaskError> {
        self.task.run(params).await
    }
}

/// Why the registry could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid configuration: `task_queues.{0}` names no task type")]
    UnknownTaskInQueues(String),
    #[error("invalid configuration: `task_queues.{0}` must not be empty")]
    EmptyQueueName(String),
    #[error("cannot build the HTTP client for query_llm: {0}")]
    LlmClient(#[from] reqwest::Error),
}

/// Every task type, by name.
#[derive(Clone)]
pub struct Registry {
    /// Shared: a registry is cloned with every request's state.
    tasks: Arc<BTreeMap<&'static str, RegisteredTask>>,
}

impl Registry {
    pub fn new(config: &Config) -> Result<Self, RegistryError> {
        let mut tasks = BTreeMap::new();
        Self::register(&mut tasks, Sum, config);
        Self::register(&mut tasks, FileHash, config);
        Self::register(&mut tasks, QueryLlm::new(&config.llm)?, config);
        let registry = Self {
            tasks: Arc::new(tasks),
        };
        registry.check_queue_overrides(config)?;
        Ok(registry)
    }

    fn register<T: Task>(
        tasks: &mut BTreeMap<&'static str, RegisteredTask>,
        task: T,
        config: &Config,
    ) {
        let queue = config
            .task_queues
            .get(T::NAME)
            .cloned()
            .unwrap_or_else(|| T::DEFAULT_QUEUE.to_owned());
        let entry = RegisteredTask {
            name: T::NAME,
            queue,
            task: Arc::new(task),
        };
        tasks.insert(T::NAME, entry);
    }

    fn check_queue_overrides(&self, config: &Config) -> Result<(), RegistryError> {
        for (name, queue) in &config.task_queues {
            if !self.tasks.contains_key(name.as_str()) {
                return Err(RegistryError::UnknownTaskInQueues(name.clone()));
            }
            if queue.trim().is_empty() {
                return Err(RegistryError::EmptyQueueName(name.clone()));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&RegisteredTask> {
        self.tasks.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.tasks.keys().map(|name| (*name).to_owned()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &RegisteredTask> {
        self.tasks.values()
    }

    /// Every queue some task type runs on.
    pub fn queues(&self) -> BTreeSet<String> {
        self.tasks.values().map(|t| t.queue.clone()).collect()
    }

    /// Validates a submitted body (`task_name` plus flat parameters) and
    /// returns the task type with its normalised parameters.
    pub fn parse_submission(
        &self,
        body: Value,
    ) -> Result<(&RegisteredTask, Value), SubmissionError> {
        let Value::Object(mut fields) = body else {
            return Err(SubmissionError::NotAnObject);
        };
        let name = match fields.remove("task_name") {
            Some(Value::String(name)) => name,
            Some(_) | None => {
                return Err(SubmissionError::MissingTaskName {
                    valid: self.names(),
                });
            }
        };
        let Some(task) = self.tasks.get(name.as_str()) else {
            return Err(SubmissionError::UnknownTaskName {
                name,
                valid: self.names(),
            });
        };
        let params = task
            .task
            .parse(Value::Object(fields))
            .map_err(SubmissionError::InvalidField)?;
        Ok((task, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry() -> Registry {
        match Registry::new(&Config::default()) {
            Ok(registry) => registry,
            Err(err) => panic!("default registry: {err}"),
        }
    }

    #[test]
    fn every_type_is_registered_on_its_queue() {
        let registry = registry();
        assert_eq!(registry.names(), vec!["file_hash", "query_llm", "sum"]);
        assert_eq!(registry.get("sum").map(|t| t.queue()), Some("default"));
        assert_eq!(registry.get("query_llm").map(|t| t.queue()), Some("llm"));
    }

    #[test]
    fn queue_overrides_apply_and_unknown_names_are_refused() {
        let mut config = Config::default();
        config.task_queues.insert("sum".into(), "fast".into());
        let registry = Registry::new(&config).ok();
        assert_eq!(
            registry.and_then(|r| r.get("sum").map(|t| t.queue().to_owned())),
            Some("fast".into())
        );
        config.task_queues.insert("nope".into(), "x".into());
        assert!(
            matches!(Registry::new(&config), Err(RegistryError::UnknownTaskInQueues(n)) if n == "nope")
        );
    }

    #[test]
    fn submissions_are_normalised() {
        let registry = registry();
        let parsed = registry.parse_submission(json!({"task_name": "file_hash", "content": "x"}));
        let (task, params) = match parsed {
            Ok(ok) => ok,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(task.name(), "file_hash");
        assert_eq!(params, json!({"content": "x", "algorithm": "sha256"}));
    }

    #[test]
    fn bad_submissions_say_why() {
        let registry = registry();
        let err = registry
            .parse_submission(json!({"task_name": "nope"}))
            .err();
        assert!(
            matches!(err, Some(SubmissionError::UnknownTaskName { valid, .. }) if valid.len() == 3)
        );
        let err = registry.parse_submission(json!({"a": 1})).err();
        assert!(matches!(err, Some(SubmissionError::MissingTaskName { .. })));
        let err = registry.parse_submission(json!([1, 2])).err();
        assert_eq!(err, Some(SubmissionError::NotAnObject));
        let err = registry
            .parse_submission(json!({"task_name": "query_llm", "prompt": " "}))
            .err();
        assert!(matches!(err, Some(SubmissionError::InvalidField(f)) if f.field == "prompt"));
    }
}
