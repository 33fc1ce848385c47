//! `failoverd serve`: wires configuration, components and the HTTP API together and runs them
//! until the shutdown future (signals, owned by the binary) resolves.
//!
//! Shutdown order: readiness drops to 503 (load balancers stop sending), the listener stops
//! accepting, in-flight requests finish, background components are told to stop and drained —
//! all within `server.shutdown_grace`, after which whatever remains is abandoned so the process
//! exits in bounded time.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{self, AppState, TokenSet};
use crate::config::Config;
use crate::status::StatusBoard;
use crate::telemetry;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tokens(#[from] api::auth::TokensError),
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("HTTP server failed: {0}")]
    Server(std::io::Error),
}

/// A handle background components use to learn that the daemon is stopping.
#[derive(Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Resolves once shutdown has begun.
    pub async fn stopped(&mut self) {
        // An error means the sender is gone, which also means stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// Runs the daemon until `shutdown` resolves, then stops within `server.shutdown_grace`.
pub async fn serve(
    config: Config,
    listen_override: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let tokens = match &config.server.tokens_file {
        Some(path) => TokenSet::load(path)?,
        None => {
            tracing::warn!(
                "server.tokens_file is not set: every /v1 request will be refused with 401"
            );
            TokenSet::default()
        }
    };
    let registry = telemetry::new_registry()?;
    let status = StatusBoard::new(&registry)?;

    let state_dir = &config.state.dir;
    std::fs::create_dir_all(state_dir).map_err(|source| ServeError::StateDir {
        path: state_dir.display().to_string(),
        source,
    })?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = StopSignal(stop_rx);
    let mut components: JoinSet<()> = JoinSet::new();
    let _ = &stop; // components take clones of `stop` as they are added.

    let state = AppState::new(config.clone(), Arc::new(tokens), registry, status);
    let app = api::router(state.clone());

    let addr = listen_override.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);

    state.ready.store(true, Ordering::Release);
    tracing::info!(
        listen = %bound,
        pair = %config.pair,
        hot = config.hot_region(),
        cold = config.cold_region(),
        version = telemetry::VERSION,
        "failoverd is serving"
    );

    let mut server_stop = stop.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { server_stop.stopped().await })
        .into_future();
    tokio::pin!(server);

    let grace = config.server.shutdown_grace.get();
    let result = tokio::select! {
        result = &mut server => result.map_err(ServeError::Server),
        () = shutdown => {
            let deadline = Instant::now() + grace;
            tracing::info!(grace = %humantime::format_duration(grace), "shutting down");
            state.ready.store(false, Ordering::Release);
            let _ = stop_tx.send(true);
            let result = match tokio::time::timeout_at(deadline.into(), &mut server).await {
                Ok(result) => result.map_err(ServeError::Server),
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish within the grace period; closing them");
                    Ok(())
                }
            };
            drain(&mut components, deadline).await;
            result
        }
    };
    tracing::info!("failoverd stopped");
    result
}

/// Waits for the background components to stop, abandoning them at the deadline.
async fn drain(components: &mut JoinSet<()>, deadline: Instant) {
    let all = async { while components.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline.into(), all).await.is_err() {
        tracing::warn!(
            remaining = components.len(),
            "components did not stop within the grace period; aborting them"
        );
        components.abort_all();
    }
}
