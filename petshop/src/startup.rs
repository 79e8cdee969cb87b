//! Building the app from a [`Config`] and running it.
//!
//! [`build_state`] connects the database (running migrations) and the cache; [`app`]
//! wraps the routes in the middleware; [`Application`] binds the listener (port 0 in
//! tests) and serves until a shutdown signal, letting requests in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, Route, Server};

use crate::api::rate_limit::{Limiter, RateLimitLayer};
use crate::api::{self, error::json_error, middleware::Observe};
use crate::cache_layer::CacheLayer;
use crate::config::{Config, redact_url};
use crate::metrics::Metrics;
use crate::service::db;
use crate::service::pets::PetService;
use crate::state::{AppState, Draining};

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long start-up waits for the cache backplane (`l1+l2`) when Redis answers.
pub const BACKPLANE_WAIT: Duration = Duration::from_secs(2);

/// Connects the database (migrating it) and builds the cache.
pub async fn build_state(config: &Config) -> anyhow::Result<AppState> {
    let metrics = Metrics::new();
    let counter = metrics.clone();
    let db = db::connect(&config.database_url, move |info| {
        counter.db_query(info.elapsed, info.failed);
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot open the database (DATABASE_URL={}): {e}",
            redact_url(&config.database_url)
        )
    })?;
    let cache = CacheLayer::new(config)?;
    metrics.register_cache(cache.clone());
    let redis = config
        .redis_url
        .as_deref()
        .map(redact_url)
        .unwrap_or_else(|| {
            config
                .redis_cluster_nodes
                .iter()
                .flatten()
                .map(|n| redact_url(n))
                .collect::<Vec<_>>()
                .join(",")
        });
    match cache.redis_health().await {
        Some(health) if health.certificate_rejected => tracing::warn!(
            redis = %redis,
            error = health.error.as_deref().unwrap_or_default(),
            "{}'s server certificate is not vouched for by {}: serving from L1 and the database without Redis",
            if config.redis_url.is_some() { "REDIS_URL" } else { "REDIS_CLUSTER_NODES" },
            config.redis_tls_ca_file.as_ref().map_or_else(
                || "the public roots (set REDIS_TLS_CA_FILE for a private CA)".to_owned(),
                |ca| format!("REDIS_TLS_CA_FILE ({})", ca.display()),
            ),
        ),
        Some(health) if !health.up => tracing::warn!(
            redis = %redis,
            "redis is not answering: serving from L1 and the database until it does"
        ),
        // L1 stays bypassed until the backplane has subscribed: give it a moment so the
        // first reads already use L1.
        Some(_) if !cache.wait_for_backplane(BACKPLANE_WAIT).await => {
            tracing::warn!("backplane not subscribed yet: L1 is bypassed until it is");
        }
        _ => {}
    }
    let rate_limit = config
        .rate_limit
        .map(|rate| {
            Limiter::new(
                rate,
                config.rate_limit_key_header.as_deref(),
                config.rate_limit_api_keys.clone(),
                cache.redis_tier(),
            )
        })
        .transpose()?;
    if let Some(limiter) = &rate_limit {
        metrics.rate_limit_on();
        tracing::info!(
            requests = config.rate_limit.map(|r| r.requests),
            window = ?config.rate_limit.map(|r| r.window),
            counted = if limiter.is_shared() { "on redis (shared)" } else { "in process (local)" },
            api_keys = config.rate_limit_api_keys.as_ref().map_or(0, |k| k.len()),
            "rate limit on"
        );
    }
    Ok(AppState {
        rate_limit,
        pets: PetService::new(db.clone(), cache.clone()),
        draining: Draining::default(),
        db,
        cache,
        metrics,
        admin_token: config.admin_token.as_deref().map(Arc::from),
        trusted_proxies: config.trusted_proxies.clone(),
    })
}

/// Every route, behind the middleware, with `state` attached.
pub fn app(state: AppState) -> impl Endpoint<Output = poem::Response> + use<> {
    app_with(state, |route, _| route)
}

/// More routes for a program that embeds the service (the benchmarks add their
/// ceiling): they get the same middleware as every route of the service.
pub type ExtraRoutes = Box<dyn FnOnce(Route, &AppState) -> Route + Send>;

/// [`app`] with `extra` routes behind the same middleware.
pub fn app_with<F>(state: AppState, extra: F) -> impl Endpoint<Output = poem::Response> + use<F>
where
    F: FnOnce(Route, &AppState) -> Route,
{
    let service = api::service();
    let docs = service.swagger_ui();
    let metrics = state.metrics.clone();
    let limits = RateLimitLayer::new(state.rate_limit.clone(), metrics.clone());
    let observe = Observe::new(metrics, state.trusted_proxies.clone());
    let responses = api::cached::response_cache(&state.cache, state.pets.clone());
    extra(Route::new(), &state)
        .at("/openapi.json", api::spec_endpoint())
        .nest("/docs", docs)
        .at("/ui/:file", api::ui::files())
        .nest("/", api::ui::with_page(service))
        .data(state)
        .with(responses)
        .with(CatchPanic::new().with_handler(|_| {
            json_error(
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
                None,
            )
        }))
        .with(limits)
        .with(observe)
}

/// Why the service stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Ctrl-C (SIGINT): someone at a terminal; stop now.
    Interrupt,
    /// SIGTERM (an orchestrator, `docker stop`): drain first, so the load balancer
    /// stops sending before the listener closes.
    Terminate,
}

/// A bound, not yet serving, app.
pub struct Application {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    state: AppState,
    drain: Duration,
    extra: Option<ExtraRoutes>,
}

impl Application {
    /// Builds the state and binds `config.bind` (port 0 picks a free port).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let state = build_state(config).await?;
        let acceptor = TcpListener::bind(config.bind.to_string())
            .into_acceptor()
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| anyhow::anyhow!("the listener has no socket address"))?;
        Ok(Self {
            acceptor,
            addr,
            state,
            drain: config.shutdown_drain,
            extra: None,
        })
    }

    /// The address actually bound.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `extra` routes too, behind the same middleware (see [`app_with`]).
    #[must_use]
    pub fn with_routes(mut self, extra: ExtraRoutes) -> Self {
        self.extra = Some(extra);
        self
    }

    /// The shared state (database, cache, metrics).
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish. On
    /// [`Shutdown::Terminate`], `/ready` answers 503 at once and the listener keeps
    /// serving for `SHUTDOWN_DRAIN` before it closes.
    pub async fn run_until(self, shutdown: impl Future<Output = Shutdown>) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, "listening");
        let (draining, drain) = (self.state.draining.clone(), self.drain);
        let stop = async move {
            let signal = shutdown.await;
            draining.start();
            if signal == Shutdown::Terminate && !drain.is_zero() {
                tracing::info!(
                    ?drain,
                    "draining: /ready answers 503 until the listener closes"
                );
                tokio::time::sleep(drain).await;
            }
        };
        let extra = self.extra.unwrap_or_else(|| Box::new(|route, _| route));
        let cache = self.state.cache.clone();
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app_with(self.state, extra), stop, Some(SHUTDOWN_GRACE))
            .await;
        // Strict writes on the other instances stop waiting for this one.
        cache.close().await;
        served
    }
}

/// Resolves on Ctrl-C or SIGTERM, saying which.
pub async fn shutdown_signal() -> Shutdown {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    let signal = tokio::select! {
        () = ctrl_c => Shutdown::Interrupt,
        () = term => Shutdown::Terminate,
    };
    tracing::info!(?signal, "shutdown signal received");
    signal
}
