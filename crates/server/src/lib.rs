//! Beckon's signaling server: accounts, presence, contacts, call history,
//! call invitations (through `core`'s registry) and media signaling relay,
//! over one WebSocket endpoint.
//!
//! ```no_run
//! # async fn run() -> Result<(), beckon_server::ServerError> {
//! use beckon_server::{Server, ServerConfig};
//! let server = Server::start(ServerConfig::default()).await?;
//! println!("clients connect to {}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! `/ws` speaks the protocol of `beckon-protocol`; `/healthz` answers `ok`;
//! `/metrics` serves Prometheus text.

mod auth;
mod config;
mod conn;
mod hub;
mod ice;
mod metrics;
mod ratelimit;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use beckon_core::registry::RegistryConfig;
use beckon_protocol::limits;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use auth::PasswordCost;
pub use config::{Cli, ConfigError, LogFormat, load_config};
pub use hub::{ConnId, Hub, LocalHub, Outbox};
pub use ice::IceConfig;
pub use metrics::Metrics;
pub use store::{Store, StoreError};

/// Certificate and key files (PEM) for `wss://`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Everything the server can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// SQLite file; `:memory:` keeps nothing.
    pub database: PathBuf,
    /// Serve `wss://` with these; plain `ws://` without.
    pub tls: Option<TlsFiles>,
    /// How long a session token works.
    pub session_ttl: Duration,
    /// argon2id cost.
    pub password_cost: PasswordCost,
    /// Sign-ins (`login`, `register`) that may wait for a password hash
    /// while as many run as there are cores; more are refused at once with
    /// `rate_limited`.
    pub max_waiting_sign_ins: usize,
    /// Call rules: member cap, grace period, `not_yet_received` delay.
    pub registry: RegistryConfig,
    /// Messages a connection may send at once.
    pub rate_burst: u32,
    /// Messages a connection may send per second on average.
    pub rate_per_sec: u32,
    /// STUN/TURN for clients.
    pub ice: IceConfig,
    /// How often the server pings an idle connection; three silent periods
    /// drop it.
    pub ping_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7600)),
            database: PathBuf::from("beckon.db"),
            tls: None,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            password_cost: PasswordCost::default(),
            max_waiting_sign_ins: 64 * cores(),
            registry: RegistryConfig::default(),
            rate_burst: 40,
            rate_per_sec: 20,
            ice: IceConfig {
                turn_ttl_secs: 24 * 3600,
                ..IceConfig::default()
            },
            ping_interval: Duration::from_secs(20),
        }
    }
}

/// Cores this process may use (1 when unknown).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The database could not be opened or migrated.
    #[error("database {path}: {source}")]
    Store {
        /// Which file.
        path: PathBuf,
        /// What failed.
        source: StoreError,
    },
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(std::io::Error),
}

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct AppState<H: Hub> {
    pub(crate) hub: H,
    pub(crate) store: Store,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) next_conn: Arc<AtomicU64>,
    /// One password hash per core at once, a bounded queue behind them.
    pub(crate) hash_gate: Arc<auth::HashGate>,
}

impl<H: Hub> Clone for AppState<H> {
    fn clone(&self) -> Self {
        Self {
            hub: self.hub.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
            next_conn: self.next_conn.clone(),
            hash_gate: self.hash_gate.clone(),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
}

impl Server {
    /// Opens the store, binds, and serves in the background.
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        let store = Store::open(&config.database).map_err(|source| ServerError::Store {
            path: config.database.clone(),
            source,
        })?;
        let metrics = Arc::new(Metrics::default());
        let hub = LocalHub::spawn(config.registry.clone(), store.clone(), metrics.clone());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let tls = config.tls.clone();
        let is_tls = tls.is_some();
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "serving plain ws:// beyond loopback; give --tls-cert and --tls-key for wss://");
        }
        let hash_gate = Arc::new(auth::HashGate::new(cores(), config.max_waiting_sign_ins));
        let state = AppState {
            hash_gate,
            hub,
            store,
            config: Arc::new(config),
            metrics: metrics.clone(),
            shutdown: shutdown_rx.clone(),
            next_conn: Arc::new(AtomicU64::new(1)),
        };
        let app = router(state);
        let task = match tls {
            None => {
                // Without TCP_NODELAY a reply followed at once by an event
                // waits for the client's delayed ACK (40 ms on Linux).
                // Thin-stream timeouts: signaling has too few packets in
                // flight for fast retransmit, so a loss waits for the
                // retransmission timer; this keeps it from doubling for the
                // first six retransmissions (the client sets it too).
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|source| ServerError::Bind { addr, source })?
                    .tap_io(|tcp| {
                        if let Err(e) = tcp.set_nodelay(true) {
                            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                        }
                        #[cfg(target_os = "linux")]
                        if let Err(e) =
                            socket2::SockRef::from(&*tcp).set_tcp_thin_linear_timeouts(true)
                        {
                            tracing::debug!(error = %e, "cannot set TCP_THIN_LINEAR_TIMEOUTS");
                        }
                    });
                let mut stop = shutdown_rx;
                tokio::spawn(async move {
                    let serve = axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    });
                    if let Err(e) = serve.await {
                        tracing::error!(error = %e, "server stopped");
                    }
                })
            }
            Some(files) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let rustls =
                    axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                        .await
                        .map_err(ServerError::Tls)?;
                let handle = axum_server::Handle::new();
                let mut stop = shutdown_rx;
                let h = handle.clone();
                tokio::spawn(async move {
                    let _ = stop.wait_for(|s| *s).await;
                    h.graceful_shutdown(Some(Duration::from_secs(5)));
                });
                tokio::spawn(async move {
                    let serve = axum_server::from_tcp_rustls(listener, rustls)
                        .handle(handle)
                        .serve(app.into_make_service_with_connect_info::<SocketAddr>());
                    if let Err(e) = serve.await {
                        tracing::error!(error = %e, "server stopped");
                    }
                })
            }
        };
        tracing::info!(%addr, tls = is_tls, "listening");
        Ok(Self {
            addr,
            tls: is_tls,
            shutdown,
            task,
            metrics,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL clients connect to.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", self.addr)
    }

    /// The server's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Tells every client the server is going away, closes their
    /// connections, and waits for the listener to stop.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

fn router<H: Hub>(state: AppState<H>) -> Router {
    Router::new()
        .route("/ws", get(ws_upgrade::<H>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text::<H>))
        .with_state(state)
}

async fn ws_upgrade<H: Hub>(
    ws: WebSocketUpgrade,
    State(state): State<AppState<H>>,
) -> impl IntoResponse {
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(limits::MAX_FRAME_BYTES)
        .max_frame_size(limits::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| conn::serve(socket, state))
}

async fn metrics_text<H: Hub>(State(state): State<AppState<H>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}
