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
    let names = registry.names();
    assert!(!names.is_empty());
    for task in registry.iter() {
        assert!(names.contains(&task.name().to_owned()));
        assert!(!task.queue().is_empty());
        assert_eq!(task.example()["task_name"], task.name());
    }
    assert_eq!(registry.get("query_llm").map(|t| t.queue()), Some("llm"));
}

#[test]
fn every_example_is_a_valid_submission() {
    let registry = registry();
    for task in registry.iter() {
        let parsed = registry.parse_submission(task.example().clone());
        assert!(parsed.is_ok(), "{}: {:?}", task.name(), parsed.err());
    }
}

#[test]
fn queue_overrides_apply_and_unknown_names_are_refused() {
    let mut config = Config::default();
    let name = registry().names()[0].clone();
    config.task_queues.insert(name.clone(), "fast".into());
    let registry = Registry::new(&config).ok();
    assert_eq!(
        registry.and_then(|r| r.get(&name).map(|t| t.queue().to_owned())),
        Some("fast".into())
    );
    config.task_queues.insert("divide".into(), "x".into());
    let err = Registry::new(&config).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("task_queues.divide")));
}

#[test]
fn a_worker_queue_nothing_runs_on_is_refused() {
    let mut config = Config::default();
    config.worker.queues = vec!["nowhere".into()];
    let err = Registry::new(&config).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("worker.queues") && e.contains("nowhere")));
}

#[test]
fn a_section_nothing_reads_is_refused() {
    let mut config = Config::default();
    config.tasks.set("databse", "url", "x");
    let err = Registry::new(&config).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("databse")));
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
        matches!(err, Some(SubmissionError::UnknownTaskName { valid, .. }) if valid == registry.names())
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

/// A copy of a task type that kept a schema name of the original
/// (`Algorithm`) for a different type: the document could show only one.
mod twin {
    use serde::{Deserialize, Serialize};

    use crate::config::ConfigError;
    use crate::tasks::{NoSettings, RetryPolicy, Task, TaskEnv, TaskError};

    #[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
    pub enum Algorithm {
        Crc32,
    }

    #[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
    pub struct TwinParams {
        pub algorithm: Algorithm,
    }

    pub struct Twin;

    impl Task for Twin {
        const NAME: &'static str = "twin";
        const DESCRIPTION: &'static str = "A copy that forgot to rename a type.";
        type Params = TwinParams;
        type Output = TwinParams;
        type Settings = NoSettings;

        fn build(_: NoSettings, _: &TaskEnv) -> Result<Self, ConfigError> {
            Ok(Twin)
        }

        fn example() -> TwinParams {
            TwinParams {
                algorithm: Algorithm::Crc32,
            }
        }

        fn retry_policy(&self) -> RetryPolicy {
            RetryPolicy::FEW_QUICK
        }

        fn timeout(&self) -> std::time::Duration {
            std::time::Duration::from_secs(1)
        }

        async fn run(&self, params: TwinParams) -> Result<TwinParams, TaskError> {
            Ok(params)
        }
    }
}

#[test]
fn two_types_may_not_declare_one_schema_name_differently() {
    let config = Config::default();
    let env = TaskEnv::default();
    let mut builder = Builder::new(&config, &env);
    let added =
        crate::tasks::add_every_type(&mut builder).and_then(|()| builder.add::<twin::Twin>());
    assert!(added.is_ok(), "{added:?}");
    match builder.finish() {
        Err(err) => {
            let said = err.to_string();
            assert!(
                said.contains("`Algorithm`") && said.contains("file_hash"),
                "{said}"
            );
        }
        Ok(_) => panic!("a clashing schema name was accepted"),
    }
}
