//! Logs and traces.
//!
//! Logs: `RUST_LOG` filters (default `info,sqlx=warn,sea_orm=warn`), `LOG_FORMAT=json`
//! for JSON lines.
//!
//! Traces: exported over OTLP/HTTP (protobuf) through `tracing-opentelemetry`, only when
//! the standard variables ask for it: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set and not empty, and neither `OTEL_SDK_DISABLED=true`
//! nor `OTEL_TRACES_EXPORTER=none`. The exporter reads the rest itself
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `OTEL_SERVICE_NAME` (default `petshop`),
//! `OTEL_RESOURCE_ATTRIBUTES`). Spans: `request` per HTTP request (named `GET /pets/{id}`,
//! with the OpenTelemetry HTTP attributes), `db.load` per database load, and
//! `cache.lookup` per tier lookup (from the `cache` crate, at TRACE level).
//!
//! Off, no exporter is built and no layer wants TRACE spans: a tier lookup's span is
//! one check of a static callsite that says "disabled".

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::DEFAULT_LOG_FILTER;

/// What the exporter gets: the service's spans at INFO, the cache's tier lookups at
/// TRACE, the database drivers' only when they warn.
fn exported() -> Targets {
    Targets::new()
        .with_default(Level::INFO)
        .with_target("cache", Level::TRACE)
        .with_target("sqlx", Level::WARN)
        .with_target("sea_orm", Level::WARN)
        .with_target("hyper", Level::WARN)
        .with_target("opentelemetry", Level::WARN)
}

/// Whether the `OTEL_*` variables (read through `var`) ask for trace export.
#[must_use]
pub fn export_wanted(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT");
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let exporter_none =
        var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    endpoint && !disabled && !exporter_none
}

/// The installed logging and, when export is on, the tracer provider to shut down at
/// exit (it flushes the spans still batched).
#[derive(Debug, Default)]
#[must_use = "call shutdown() at exit, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// True when spans are exported.
    #[must_use]
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter (nothing to do when export is off).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The batch processor's shutdown blocks until its task has exported.
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                eprintln!("petshop: trace export shutdown: {e}");
            }
        }
    }
}

fn provider() -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("petshop");
    }
    Ok(SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build(),
        )
        .with_resource(resource.build())
        .build())
}

/// Installs the global subscriber: logs filtered by `log_filter` (JSON lines when
/// `json`), and trace export when the process environment asks for it. Must run inside
/// the tokio runtime. A second call (tests) installs nothing and exports nothing.
pub fn init_with(json: bool, log_filter: &str) -> Telemetry {
    let filter = EnvFilter::try_new(log_filter).unwrap_or_else(|e| {
        eprintln!(
            "petshop: RUST_LOG {log_filter:?} is not a filter ({e}); using {DEFAULT_LOG_FILTER:?}"
        );
        EnvFilter::new(DEFAULT_LOG_FILTER)
    });
    // Colours only on a terminal: a log file or collector gets plain text.
    let fmt = tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal());
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if json {
        fmt.json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let provider = if export_wanted(|name| std::env::var(name).ok()) {
        match provider() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("petshop: trace export is off: {e}");
                None
            }
        }
    } else {
        None
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("petshop"))
            .with_filter(exported())
    });
    if tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_err()
    {
        // Someone installed a subscriber first: this provider would see no span.
        if let Some(p) = provider {
            let _ = p.shutdown();
        }
        return Telemetry::default();
    }
    if provider.is_some() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Telemetry { provider }
}

/// [`init_with`] `RUST_LOG` (or the default filter), for programs that keep no handle:
/// export still follows the environment, but the spans batched at exit are not flushed.
pub fn init(json: bool) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
    // The tracer keeps the provider alive; only the final flush is given up.
    let _telemetry = init_with(json, &filter);
}

#[cfg(test)]
mod tests {
    use super::export_wanted;

    fn wanted(vars: &[(&str, &str)]) -> bool {
        export_wanted(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn export_is_on_only_when_an_endpoint_is_set() {
        assert!(!wanted(&[]));
        assert!(!wanted(&[("OTEL_SERVICE_NAME", "petshop")]));
        assert!(!wanted(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]));
        assert!(wanted(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]));
        assert!(wanted(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces"
        )]));
        assert!(!wanted(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true")
        ]));
        assert!(!wanted(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none")
        ]));
    }
}
