//! Structured logs through `tracing`: JSON for machines, text for people,
//! and the OpenTelemetry layer when traces are exported.

use std::io::IsTerminal;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::json::FlatJson;
use super::traces;
use crate::config::{LogConfig, LogFormat, OtelConfig};

/// Keeps the trace exporter alive; `shutdown` flushes spans not yet sent.
#[must_use = "dropping the guard without shutdown loses the last spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter. Call outside the async runtime:
    /// the exporter's HTTP client blocks.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("tasker: flushing traces failed: {err}");
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over
/// `log.level`. A second call (tests start many apps) installs nothing.
pub fn init(
    log: &LogConfig,
    otel: &OtelConfig,
    default_format: LogFormat,
    component: &str,
) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match log.format.unwrap_or(default_format) {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .boxed(),
    };
    let (otel_layer, provider) = match traces::layer(otel, component)? {
        Some((layer, provider)) => (Some(layer), Some(provider)),
        None => (None, None),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .with(otel_layer)
        .try_init();
    // Err means a subscriber is already installed, which is fine.
    drop(installed);
    Ok(Telemetry { provider })
}
