//! The composition root: one replica of Agentry, assembled from plain values.
//!
//! [`App::build`] opens (and migrates) the store, sets up a new installation once, starts the
//! engine (its bus, dispatcher and workers) and the HTTP state; [`App::serve`] answers on a
//! listener until a shutdown signal, then stops the way a replica should: no new turns, running
//! ones finish or are handed over, sockets close cleanly, confirmed positions are saved. A test
//! runs two or three replicas in one process by building several `App`s on one database.

use std::future::Future;
use std::time::Duration;

use agentry_engine::{Engine, EngineConfig};
use agentry_llm::ProviderRegistry;
use agentry_store::{Store, StoreLocation};
use axum::Router;

use crate::bootstrap::{self, Bootstrap, SuppliedSecrets};
use crate::{AppState, ServerOptions};

/// Everything one replica is made of.
#[derive(Clone)]
pub struct AppConfig {
    /// Where the state lives.
    pub store: StoreLocation,
    /// The engine's limits, leases and replica id.
    pub engine: EngineConfig,
    /// The HTTP surface's limits.
    pub server: ServerOptions,
    /// The model providers.
    pub providers: ProviderRegistry,
    /// Set up a new installation on an empty store (with its default agent on this model).
    pub bootstrap: Option<BootstrapConfig>,
    /// How long running turns get to finish at shutdown before they are handed over.
    pub shutdown_grace: Duration,
}

/// What a first start creates.
#[derive(Debug, Clone)]
pub struct BootstrapConfig {
    /// Secrets the operator chose (`AGENTRY_SERVICE_SECRET`, `AGENTRY_API_KEY`).
    pub supplied: SuppliedSecrets,
    /// Model of the built-in default agent.
    pub default_model: String,
}

impl AppConfig {
    /// A replica on `store` with every default.
    pub fn new(store: StoreLocation) -> Self {
        AppConfig {
            store,
            engine: EngineConfig::default(),
            server: ServerOptions::default(),
            providers: ProviderRegistry::default(),
            bootstrap: None,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened or migrated.
    #[error("cannot open the store at {location}: {source}")]
    Store {
        /// Where (without credentials).
        location: String,
        /// Why.
        source: agentry_store::StoreError,
    },
    /// The first-start setup failed.
    #[error("cannot set up the installation: {0}")]
    Bootstrap(#[from] bootstrap::BootstrapError),
    /// The engine could not start.
    #[error("cannot start the turn engine: {0}")]
    Engine(agentry_store::StoreError),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// One running replica.
pub struct App {
    /// Its store.
    pub store: Store,
    /// Its engine.
    pub engine: Engine,
    /// The state its handlers share.
    pub state: AppState,
    /// What the first start created (generated secrets, shown once), if this was it.
    pub bootstrap: Option<Bootstrap>,
    shutdown: tokio::sync::watch::Sender<bool>,
    grace: Duration,
}

impl App {
    /// Assembles a replica: store, first-start setup, engine, HTTP state.
    pub async fn build(config: AppConfig) -> Result<App, AppError> {
        let store = Store::open(&config.store)
            .await
            .map_err(|source| AppError::Store { location: config.store.describe(), source })?;
        let bootstrap = match &config.bootstrap {
            Some(setup) => Some(bootstrap::bootstrap(&store, &setup.supplied, &setup.default_model).await?),
            None => None,
        };
        let engine = Engine::start(store.clone(), config.providers, config.engine).await.map_err(AppError::Engine)?;
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let state = AppState::new(engine.clone(), config.server, shutdown_rx);
        Ok(App { store, engine, state, bootstrap, shutdown, grace: config.shutdown_grace })
    }

    /// The HTTP application of this replica.
    pub fn router(&self) -> Router {
        crate::router(self.state.clone())
    }

    /// Serves on `listener` until `signal` completes, then shuts down gracefully: running turns
    /// get the grace period and are then handed over (resumed elsewhere from their checkpoint),
    /// queued turns stay queued, sockets close with a handshake that confirms what their
    /// clients have, and the store is closed.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let engine = self.engine.clone();
        let shutdown = self.shutdown.clone();
        let grace = self.grace;
        let stopping = async move {
            signal.await;
            // Running turns end or are handed over first, then streams close.
            engine.shutdown(grace).await;
            let _ = shutdown.send(true);
        };
        let limits = self.state.options.connections.clone();
        let served = crate::listen::serve(listener, self.router(), limits, stopping).await;
        // Upgraded connections (sockets) outlive the HTTP server: let them finish their close
        // handshake, which confirms what their clients have, before the store goes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.state.sockets.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.state.sockets.flush().await;
        self.store.close().await;
        tracing::info!("agentry stopped");
        served.map_err(AppError::Serve)
    }
}
