//! The registry: every task type Tasker knows, by name, with the queue it
//! runs on. The types are those of the `task_types!` list in `tasks/mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use utoipa::openapi::{RefOr, Schema};

use super::erased::{ErasedTask, Schemas};
use super::validation::SubmissionError;
use super::{RetryPolicy, Task, TaskEnv, TaskError, TaskSettings};
use crate::config::{Config, ConfigError};
use crate::domain::{NewTask, Origin};
use uuid::Uuid;

/// One task type as the rest of the service sees it.
#[derive(Clone)]
pub struct RegisteredTask {
    name: &'static str,
    queue: String,
    quick: bool,
    description: &'static str,
    example: Value,
    schemas: Schemas,
    task: Arc<dyn ErasedTask>,
}

impl RegisteredTask {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Claimed, run and finished in one transaction (see [`Task::QUICK`]).
    pub fn is_quick(&self) -> bool {
        self.quick
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.task.retry_policy()
    }

    pub fn timeout(&self) -> Duration {
        self.task.timeout()
    }

    pub fn description(&self) -> &'static str {
        self.description
    }

    /// A valid request body, `task_name` included.
    pub fn example(&self) -> &Value {
        &self.example
    }

    /// The JSON schema of the parameters, without `task_name`.
    pub fn params_schema(&self) -> RefOr<Schema> {
        (self.schemas.params)()
    }

    /// The name and schema of `task_output` once the task has completed.
    pub fn output_schema(&self) -> (String, RefOr<Schema>) {
        (
            (self.schemas.output_name)().into_owned(),
            (self.schemas.output)(),
        )
    }

    /// Named schemas the parameter and output schemas refer to.
    pub fn referenced_schemas(&self) -> Vec<(String, RefOr<Schema>)> {
        let mut schemas = Vec::new();
        (self.schemas.referenced)(&mut schemas);
        schemas
    }

    /// Runs one attempt on stored (already validated) parameters.
    pub async fn run(&self, params: Value) -> Result<Value, TaskError> {
        self.task.run(params).await
    }

    /// A new task of this type with validated `parameters`, ready to store.
    pub fn new_task(&self, parameters: Value, origin: &Origin) -> NewTask {
        NewTask {
            id: Uuid::now_v7(),
            task_name: self.name.to_owned(),
            tenant: origin.tenant.clone(),
            queue: self.queue.clone(),
            parameters,
            max_attempts: self.retry_policy().max_attempts_i32(),
            request_id: origin.request_id.clone(),
            trace_context: origin.trace_context.clone(),
        }
    }
}

/// Every task type, by name.
#[derive(Clone)]
pub struct Registry {
    /// Shared: a registry is cloned with every request's state.
    tasks: Arc<BTreeMap<&'static str, RegisteredTask>>,
    /// Each type's settings section as in effect, secrets redacted.
    settings: Arc<BTreeMap<&'static str, Value>>,
}

impl Registry {
    /// Builds every task type from `config`. Fails, naming the key, when a
    /// type's settings are invalid, when `task_queues` names no task type,
    /// when `worker.queues` names a queue no type runs on, or when a
    /// section of the configuration belongs to nothing.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        Self::with_env(config, &TaskEnv::default())
    }

    /// [`Registry::new`], the task types sharing `env` (what a process
    /// that runs tasks gives them).
    pub fn with_env(config: &Config, env: &TaskEnv) -> Result<Self, ConfigError> {
        let mut builder = Builder::new(config, env);
        super::add_every_type(&mut builder)?;
        builder.finish()
    }

    pub fn get(&self, name: &str) -> Option<&RegisteredTask> {
        self.tasks.get(name)
    }

    /// `name` as a metric label: the registered name, or `unknown` for a
    /// name no task type has (a row written by hand), so labels stay a
    /// fixed set.
    pub fn label(&self, name: &str) -> &'static str {
        self.tasks.get(name).map_or("unknown", |task| task.name)
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

    /// The queues a worker with `configured` queues consumes: those, or
    /// every queue when none are configured.
    pub fn consumed_queues(&self, configured: &[String]) -> Vec<String> {
        if configured.is_empty() {
            self.queues().into_iter().collect()
        } else {
            configured.to_vec()
        }
    }

    /// Each type's settings section as in effect: defaults filled in,
    /// secrets redacted.
    pub fn settings(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.settings.iter().map(|(name, value)| (*name, value))
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

/// Collects the task types of [`Registry::new`] and checks the
/// configuration against them.
pub(super) struct Builder<'c> {
    config: &'c Config,
    env: &'c TaskEnv,
    tasks: BTreeMap<&'static str, RegisteredTask>,
    settings: BTreeMap<&'static str, Value>,
}

impl<'c> Builder<'c> {
    fn new(config: &'c Config, env: &'c TaskEnv) -> Self {
        Self {
            config,
            env,
            tasks: BTreeMap::new(),
            settings: BTreeMap::new(),
        }
    }

    /// Adds task type `T`, built from its settings section.
    pub(super) fn add<T: Task>(&mut self) -> Result<(), ConfigError> {
        let settings: T::Settings = match <T::Settings as TaskSettings>::SECTION {
            Some(section) => {
                let settings: T::Settings = self.config.tasks.read(section)?;
                settings.validate()?;
                self.settings.insert(
                    section,
                    serde_json::to_value(&settings).unwrap_or(Value::Null),
                );
                settings
            }
            None => T::Settings::default(),
        };
        let task = T::build(settings, self.env)?;
        let quick = T::QUICK && Task::timeout(&task) <= super::QUICK_TIMEOUT_LIMIT;
        let queue = self
            .config
            .task_queues
            .get(T::NAME)
            .cloned()
            .unwrap_or_else(|| T::DEFAULT_QUEUE.to_owned());
        let mut example = serde_json::to_value(T::example()).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut example {
            fields.insert("task_name".into(), Value::from(T::NAME));
        }
        let entry = RegisteredTask {
            name: T::NAME,
            queue,
            quick,
            description: T::DESCRIPTION,
            example,
            schemas: Schemas::of::<T>(),
            task: Arc::new(task),
        };
        self.tasks.insert(T::NAME, entry);
        Ok(())
    }

    /// A schema name two task types declare differently (their
    /// parameters, output or the types these refer to), with both types.
    fn clashing_schema_name(&self) -> Option<(&'static str, String, &'static str)> {
        let mut seen: BTreeMap<String, (&'static str, Value)> = BTreeMap::new();
        for task in self.tasks.values() {
            let mut schemas = task.referenced_schemas();
            schemas.push(task.output_schema());
            for (name, schema) in schemas {
                let schema = serde_json::to_value(&schema).unwrap_or(Value::Null);
                match seen.get(&name) {
                    Some((other, known)) if *known != schema => {
                        return Some((task.name, name, other));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(name, (task.name, schema));
                    }
                }
            }
        }
        None
    }

    fn finish(self) -> Result<Registry, ConfigError> {
        let unknown = |key: String, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        if let Some((task, name, other)) = self.clashing_schema_name() {
            return Err(unknown(
                format!("task type {task}"),
                &format!(
                    "declares a schema `{name}` unlike the one of task type {other}: \
                     rename one (the API document keeps one schema per name)"
                ),
            ));
        }
        if let Some(name) = self
            .config
            .task_queues
            .keys()
            .find(|name| !self.tasks.contains_key(name.as_str()))
        {
            let valid: Vec<&str> = self.tasks.keys().copied().collect();
            return Err(unknown(
                format!("task_queues.{name}"),
                &format!("names no task type (task types: {})", valid.join(", ")),
            ));
        }
        if let Some(section) = self
            .config
            .tasks
            .names()
            .find(|name| !self.settings.contains_key(name))
        {
            return Err(unknown(
                section.to_owned(),
                "is not a configuration section (see the README's configuration table)",
            ));
        }
        let registry = Registry {
            tasks: Arc::new(self.tasks),
            settings: Arc::new(self.settings),
        };
        let queues = registry.queues();
        if let Some(queue) = self
            .config
            .worker
            .queues
            .iter()
            .find(|queue| !queues.contains(*queue))
        {
            let known: Vec<&str> = queues.iter().map(String::as_str).collect();
            return Err(unknown(
                "worker.queues".into(),
                &format!(
                    "names `{queue}`, which no task type runs on (queues: {})",
                    known.join(", ")
                ),
            ));
        }
        Ok(registry)
    }
}

#[cfg(test)]
mod tests;
