//! `[otel]`: trace export over OTLP/HTTP. The standard `OTEL_…` variables
//! apply where Tasker's own keys are unset.

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

/// How traces are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OtelProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtelConfig {
    /// OTLP/HTTP base URL (e.g. `http://collector:4318`); tracing is off when unset.
    pub endpoint: Option<String>,
    pub service_name: String,
    pub protocol: OtelProtocol,
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "tasker".into(),
            protocol: OtelProtocol::HttpProtobuf,
        }
    }
}

impl OtelConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.endpoint {
            check(
                "otel.endpoint",
                reqwest::Url::parse(endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
                "must be an http:// or https:// URL",
            )?;
        }
        check(
            "otel.service_name",
            !self.service_name.is_empty(),
            "must not be empty",
        )
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME` and
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` fill in what Tasker's keys leave at
    /// their defaults.
    pub(super) fn apply_standard_env(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let defaults = Self::default();
        if self.endpoint.is_none() {
            self.endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.is_empty());
        }
        if self.service_name == defaults.service_name
            && let Some(name) = var("OTEL_SERVICE_NAME").filter(|v| !v.is_empty())
        {
            self.service_name = name;
        }
        if self.protocol == defaults.protocol
            && let Some(protocol) = var("OTEL_EXPORTER_OTLP_PROTOCOL")
        {
            self.protocol = match protocol.as_str() {
                "http/protobuf" => OtelProtocol::HttpProtobuf,
                "http/json" => OtelProtocol::HttpJson,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "otel.protocol".into(),
                        reason: format!(
                            "(from OTEL_EXPORTER_OTLP_PROTOCOL) `{other}` is not supported: \
                             use http/protobuf or http/json"
                        ),
                    });
                }
            };
        }
        Ok(())
    }
}
