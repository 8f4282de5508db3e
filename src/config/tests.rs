use super::*;
use figment::Jail;

fn load_in(jail: &Jail, file: Option<&str>) -> Result<Config, ConfigError> {
    Config::load(file.map(|f| jail.directory().join(f)).as_deref())
}

fn error_of(jail: &Jail, file: Option<&str>) -> String {
    load_in(jail, file)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn defaults_point_at_local_services() {
    let config = Config::default();
    assert_eq!(config.redis.key_prefix, "tasker");
    assert_eq!(config.api.listen.port(), 8000);
    assert_eq!(config.cache.ttl_seconds.get(), 3600);
    assert_eq!(config.api.max_body_bytes.get(), 1024 * 1024);
    assert!(config.validate().is_ok());
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "tasker.toml",
            "[redis]\nkey_prefix = \"fromfile\"\n[worker]\nconcurrency = 3\n",
        )?;
        jail.set_env("TASKER_WORKER__CONCURRENCY", "7");
        jail.set_env("TASKER_CACHE__TTL_SECONDS", "60");
        let config = load_in(jail, Some("tasker.toml")).map_err(|e| e.to_string())?;
        assert_eq!(config.redis.key_prefix, "fromfile");
        assert_eq!(config.worker.concurrency.get(), 7);
        assert_eq!(config.cache.ttl_seconds.get(), 60);
        Ok(())
    });
}

#[test]
fn lists_and_maps_come_from_the_environment_too() {
    Jail::expect_with(|jail| {
        jail.set_env("TASKER_WORKER__QUEUES", "[llm, default]");
        jail.set_env("TASKER_TASK_QUEUES__QUERY_LLM", "slow");
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(config.worker.queues, vec!["llm", "default"]);
        assert_eq!(
            config.task_queues.get("query_llm").map(String::as_str),
            Some("slow")
        );
        Ok(())
    });
}

#[test]
fn kubernetes_service_variables_are_not_configuration() {
    Jail::expect_with(|jail| {
        jail.set_env("TASKER_API_PORT", "tcp://10.0.0.1:8000");
        jail.set_env("TASKER_WORKER_SERVICE_HOST", "10.0.0.2");
        jail.set_env("TASKER_API_PORT_8000_TCP_FILE", "/nonexistent");
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(config.api.listen.port(), 8000);
        Ok(())
    });
}

#[test]
fn standard_opentelemetry_variables_are_honoured_below_our_own() {
    Jail::expect_with(|jail| {
        jail.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        jail.set_env("OTEL_SERVICE_NAME", "tasker-prod");
        jail.set_env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(
            config.otel.endpoint.as_deref(),
            Some("http://collector:4318")
        );
        assert_eq!(config.otel.service_name, "tasker-prod");
        assert_eq!(config.otel.protocol, OtelProtocol::HttpJson);
        jail.set_env("TASKER_OTEL__ENDPOINT", "http://ours:4318");
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(config.otel.endpoint.as_deref(), Some("http://ours:4318"));
        jail.set_env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
        assert!(error_of(jail, None).contains("otel.protocol"));
        Ok(())
    });
}

#[test]
fn tracing_is_off_by_default() {
    Jail::expect_with(|jail| {
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        assert!(config.otel.endpoint.is_none());
        Ok(())
    });
}

#[test]
fn task_sections_are_kept_for_their_task_types_and_read_typed() {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        model: String,
        timeout_seconds: u64,
    }
    Jail::expect_with(|jail| {
        jail.create_file("tasker.toml", "[llm]\nmodel = \"m\"\n")?;
        jail.set_env("TASKER_LLM__TIMEOUT_SECONDS", "9");
        let config = load_in(jail, Some("tasker.toml")).map_err(|e| e.to_string())?;
        let section: Section = config.tasks.read("llm").map_err(|e| e.to_string())?;
        assert_eq!(section.model, "m");
        assert_eq!(section.timeout_seconds, 9);
        let missing: Section = config.tasks.read("nothing").map_err(|e| e.to_string())?;
        assert_eq!(missing.timeout_seconds, 0);
        jail.set_env("TASKER_LLM__TIMEOUT_SECONDS", "soon");
        let config = load_in(jail, Some("tasker.toml")).map_err(|e| e.to_string())?;
        let err = config
            .tasks
            .read::<Section>("llm")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("llm.timeout_seconds"), "{err}");
        Ok(())
    });
}

#[test]
fn secrets_are_read_from_files_and_win() {
    Jail::expect_with(|jail| {
        jail.create_file("url", "redis://from-file:6379\n")?;
        jail.set_env("TASKER_REDIS__URL", "redis://from-env:6379");
        jail.set_env(
            "TASKER_REDIS__URL_FILE",
            jail.directory().join("url").display(),
        );
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(config.redis.url.expose(), "redis://from-file:6379");
        Ok(())
    });
}

#[test]
fn a_missing_secret_file_names_its_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("TASKER_LLM__API_KEY_FILE", "/nonexistent/key");
        assert!(error_of(jail, None).contains("TASKER_LLM__API_KEY_FILE"));
        Ok(())
    });
}

#[test]
fn a_missing_config_file_names_its_path() {
    Jail::expect_with(|jail| {
        let err = error_of(jail, Some("nope.toml"));
        assert!(
            err.contains("nope.toml") && err.contains("does not exist"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn an_invalid_value_names_the_key() {
    for (variable, value, key) in [
        ("TASKER_WORKER__CONCURRENCY", "many", "worker.concurrency"),
        ("TASKER_WORKER__CONCURRENCY", "0", "worker.concurrency"),
        ("TASKER_API__MAX_BATCH_SIZE", "0", "api.max_batch_size"),
        (
            "TASKER_RETENTION__INTERVAL_SECONDS",
            "0",
            "retention.interval_seconds",
        ),
        (
            "TASKER_WORKER__RECONCILE_INTERVAL_SECONDS",
            "0",
            "worker.reconcile_interval_seconds",
        ),
        (
            "TASKER_DATABASE__MAX_CONNECTIONS",
            "0",
            "database.max_connections",
        ),
        (
            "TASKER_DATABASE__URL",
            "mysql://localhost/x",
            "database.url",
        ),
        ("TASKER_LOG__FORMAT", "xml", "log.format"),
        ("TASKER_LOG__LEVEL", "[", "log.level"),
        ("TASKER_TASK_QUEUES__SUM", " ", "task_queues.sum"),
        // Counts that would make a pool or a gate panic (or reserve
        // memory for every slot) when the process starts.
        (
            "TASKER_API__MAX_CONNECTIONS",
            "1000001",
            "api.max_connections",
        ),
        (
            "TASKER_API__MAX_CONNECTIONS",
            "18446744073709551615",
            "api.max_connections",
        ),
        ("TASKER_WORKER__CONCURRENCY", "100001", "worker.concurrency"),
        (
            "TASKER_WORKER__CONCURRENCY",
            "18446744073709551615",
            "worker.concurrency",
        ),
        (
            "TASKER_DATABASE__MAX_CONNECTIONS",
            "4294967295",
            "database.max_connections",
        ),
        ("TASKER_REDIS__POOL_SIZE", "10001", "redis.pool_size"),
        ("TASKER_REDIS__POOL_SIZE", "1", "redis.pool_size"),
        ("TASKER_API__MAX_WAITERS", "0", "api.max_waiters"),
    ] {
        Jail::expect_with(|jail| {
            jail.set_env(variable, value);
            let err = error_of(jail, None);
            assert!(err.contains(key), "{variable}={value}: {err}");
            Ok(())
        });
    }
}

#[test]
fn the_largest_counts_allowed_are_accepted() {
    Jail::expect_with(|jail| {
        jail.set_env("TASKER_API__MAX_CONNECTIONS", api::MAX_CONNECTIONS);
        jail.set_env("TASKER_API__MAX_WAITERS", 1);
        jail.set_env("TASKER_WORKER__CONCURRENCY", worker::MAX_CONCURRENCY);
        jail.set_env(
            "TASKER_DATABASE__MAX_CONNECTIONS",
            database::MAX_POOL_CONNECTIONS,
        );
        jail.set_env("TASKER_REDIS__POOL_SIZE", redis::MAX_POOL_SIZE);
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(config.api.max_connections.get(), api::MAX_CONNECTIONS);
        assert_eq!(config.worker.concurrency.get(), worker::MAX_CONCURRENCY);
        Ok(())
    });
}

#[test]
fn default_read_timeouts_suit_a_public_port() {
    // A slow client holds a connection (and a slot of api.max_connections)
    // for as long as these allow.
    let check = |api: &ApiConfig| {
        assert!(
            api.header_read_timeout() <= std::time::Duration::from_secs(10),
            "header read timeout {:?}",
            api.header_read_timeout()
        );
        assert!(
            api.body_read_timeout() <= std::time::Duration::from_secs(30),
            "body read timeout {:?}",
            api.body_read_timeout()
        );
    };
    check(&Config::default().api);
    Jail::expect_with(|jail| {
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        check(&config.api);
        Ok(())
    });
}

#[test]
fn an_unknown_key_in_a_section_is_rejected() {
    Jail::expect_with(|jail| {
        jail.create_file("tasker.toml", "[api]\nlisten_port = 1\n")?;
        assert!(error_of(jail, Some("tasker.toml")).contains("listen_port"));
        Ok(())
    });
}

#[test]
fn secrets_never_print() {
    let mut config = Config::default();
    config.database.url = SecretUrl::new("postgres://tasker:hunter2@db:5432/tasker");
    let printed = format!("{config:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    config.tasks.set("llm", "api_key", "sk-ant-very-secret");
    let printed = format!("{config:?}");
    assert!(!printed.contains("sk-ant-very-secret"), "{printed}");
    let shown = toml::to_string(&config).unwrap_or_default();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("db:5432"), "the host stays visible: {shown}");
}

#[test]
fn sentinel_mode_reads_its_sentinels_from_one_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("TASKER_REDIS__MODE", "sentinel");
        assert!(error_of(jail, None).contains("redis.sentinels"));
        jail.set_env(
            "TASKER_REDIS__SENTINELS",
            "redis://s1:26379, redis://s2:26379",
        );
        jail.set_env("TASKER_REDIS__SENTINEL_MASTER", "main");
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(config.redis.mode, super::RedisMode::Sentinel);
        let sentinels: Vec<&str> = config.redis.sentinels.iter().map(|s| s.expose()).collect();
        assert_eq!(sentinels, ["redis://s1:26379", "redis://s2:26379"]);
        assert_eq!(config.redis.sentinel_master, "main");
        Ok(())
    });
}

#[test]
fn an_unknown_redis_mode_is_refused() {
    Jail::expect_with(|jail| {
        jail.set_env("TASKER_REDIS__MODE", "ring");
        assert!(error_of(jail, None).contains("mode"));
        Ok(())
    });
}

#[test]
fn migrations_connect_directly_and_need_a_direct_url_behind_a_transaction_pooler() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "TASKER_DATABASE__URL",
            "postgres://tasker@pgbouncer:6432/tasker",
        );
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(config.database.pooler, Pooler::None);
        let direct = config
            .database
            .for_migrations()
            .map_err(|e| e.to_string())?;
        assert_eq!(
            direct.url.expose(),
            "postgres://tasker@pgbouncer:6432/tasker"
        );

        jail.set_env("TASKER_DATABASE__POOLER", "transaction");
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        let refused = config
            .database
            .for_migrations()
            .err()
            .map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("database.migrate_url")));

        jail.set_env("TASKER_DATABASE__MIGRATE_URL_FILE", "migrate-url");
        jail.create_file("migrate-url", "postgres://tasker:pw@postgres:5432/tasker\n")?;
        let config = load_in(jail, None).map_err(|e| e.to_string())?;
        let direct = config
            .database
            .for_migrations()
            .map_err(|e| e.to_string())?;
        assert_eq!(
            direct.url.expose(),
            "postgres://tasker:pw@postgres:5432/tasker"
        );
        assert_eq!(direct.pooler, Pooler::None);

        jail.set_env("TASKER_DATABASE__POOLER", "session");
        assert!(error_of(jail, None).contains("pooler"));
        Ok(())
    });
}
