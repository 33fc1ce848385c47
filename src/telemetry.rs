//! Metrics registry and tracing setup.
//!
//! One [`prometheus::Registry`] per process, created here and handed to every component that
//! exports metrics, so the `/metrics` endpoint serves exactly what was registered and tests can
//! build as many independent registries as they like.

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The build information exported as `failoverd_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Creates the process registry with the metrics every failoverd exports: build information and
/// the standard `process_*` metrics (CPU, memory, open file descriptors, start time).
pub fn new_registry() -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    let build_info = IntGaugeVec::new(
        Opts::new(
            "failoverd_build_info",
            "Always 1; the labels say which failoverd build is running.",
        ),
        &["version", "target_arch", "target_os"],
    )?;
    build_info
        .with_label_values(&[VERSION, std::env::consts::ARCH, std::env::consts::OS])
        .set(1);
    registry.register(Box::new(build_info))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let start = IntGauge::new(
        "failoverd_start_time_seconds",
        "Unix time at which this failoverd process started.",
    )?;
    start.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    );
    registry.register(Box::new(start))?;
    Ok(registry)
}

/// Renders the registry in the Prometheus text exposition format.
pub fn render(registry: &Registry) -> Result<String, prometheus::Error> {
    let encoder = prometheus::TextEncoder::new();
    encoder.encode_to_string(&registry.gather())
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    #[error("invalid log filter {filter:?}: {reason}")]
    Filter { filter: String, reason: String },
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Installs the global tracing subscriber: JSON lines (the default, for log shippers) or a
/// human-readable format, filtered by a `RUST_LOG`-style directive string.
pub fn init_tracing(format: LogFormat, filter: &str) -> Result<(), TracingError> {
    let env_filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| TracingError::Filter {
            filter: filter.to_owned(),
            reason: e.to_string(),
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    result.map_err(|_| TracingError::AlreadyInitialised)
}
