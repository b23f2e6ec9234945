//! `beckon-load`: many Beckon clients in one process, for load tests of the
//! signaling server. Every mode prints JSON lines on stdout (one object per
//! line, with an `event` field); `cargo xtask bench signaling` drives it.
//!
//! - `register`: creates accounts `load{i}` and writes `user<TAB>token` lines.
//! - `idle`: connects users of a token file (resume) and holds them.
//! - `invites`: pairs of users call each other at an offered rate.
//! - `logins`: password sign-ins at an offered rate.
//! - `echo-server`, `echo`: the floor, a bare WebSocket echo at the same
//!   rates, sizes and connection counts.
//!
//! `invites` and `echo` read commands from stdin once connected: a line
//! `RATE SECS` runs one window; end of input ends the process.

mod echo;
mod invites;
mod logins;
mod stats;
mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio::io::AsyncBufReadExt;
use tracing_subscriber::EnvFilter;

/// Load generator for Beckon's signaling server.
#[derive(Debug, Parser)]
#[command(name = "beckon-load", version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Creates accounts `{prefix}{i}` for i in [from, to) and writes
    /// `user<TAB>token` lines to `out`.
    Register {
        /// `ws://host:port/ws`.
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 0)]
        from: usize,
        #[arg(long)]
        to: usize,
        #[arg(long, default_value = "load")]
        prefix: String,
        #[arg(long, default_value = "load password")]
        password: String,
        /// Sign-ups in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// The token file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Connects the users on lines [from, to) of the token file (resume)
    /// and holds the connections until stdin closes.
    Idle {
        #[command(flatten)]
        users: SignedIn,
    },
    /// Connects users [from, to) as pairs (caller, callee); then for each
    /// `RATE SECS` line on stdin, places RATE calls a second for SECS
    /// seconds spread over the pairs: invite, the callee accepts, the caller
    /// ends.
    Invites {
        #[command(flatten)]
        users: SignedIn,
    },
    /// Password sign-ins at RATE a second for SECS seconds, each on its own
    /// connection, as users `{prefix}{i % users}`; waits at most `max_wait`
    /// seconds after the last one started.
    Logins {
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "load")]
        prefix: String,
        #[arg(long, default_value = "load password")]
        password: String,
        /// How many accounts to cycle through.
        #[arg(long)]
        users: usize,
        #[arg(long)]
        rate: f64,
        #[arg(long)]
        secs: f64,
        #[arg(long, default_value_t = 30.0)]
        max_wait: f64,
    },
    /// A bare WebSocket echo server with the signaling server's buffer
    /// sizes. Prints `listening ws://…` and serves until killed.
    EchoServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Holds `conns` WebSocket connections to an echo server; for each
    /// `RATE SECS` line on stdin, one connection of each pair sends RATE
    /// messages a second in all, of `bytes` bytes, and times the echo.
    Echo {
        #[arg(long)]
        url: String,
        #[arg(long)]
        conns: usize,
        #[arg(long, default_value_t = 400)]
        bytes: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

/// The signed-in users a mode connects: lines [from, to) of a token file.
#[derive(Debug, clap::Args)]
struct SignedIn {
    /// `ws://host:port/ws`.
    #[arg(long)]
    url: String,
    /// The `user<TAB>token` file that `register` wrote.
    #[arg(long)]
    tokens: PathBuf,
    #[arg(long, default_value_t = 0)]
    from: usize,
    #[arg(long)]
    to: usize,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

impl SignedIn {
    /// Connects every user of the range with its token (see
    /// `users::connect_all`).
    async fn connect(&self) -> anyhow::Result<Vec<Option<users::Conn>>> {
        let tokens = users::read_tokens(&self.tokens, self.from..self.to)?;
        Ok(users::connect_all(&self.url, tokens, self.concurrency).await)
    }
}

/// Prints one JSON line.
pub(crate) fn emit(value: serde_json::Value) {
    println!("{value}");
}

/// Resident memory of this process, KiB.
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Reads `RATE SECS` lines from stdin until it closes.
pub(crate) async fn windows(mut each: impl AsyncFnMut(f64, f64)) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut f = line.split_whitespace().map(str::parse::<f64>);
        match (f.next(), f.next()) {
            (Some(Ok(rate)), Some(Ok(secs))) if rate > 0.0 && secs > 0.0 => each(rate, secs).await,
            _ => tracing::warn!(%line, "expected `RATE SECS`"),
        }
    }
}

/// Waits until stdin closes.
pub(crate) async fn until_stdin_closes() {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("BECKON_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // One socket per connection: take every descriptor the system allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open files"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.mode {
            Mode::Register {
                url,
                from,
                to,
                prefix,
                password,
                concurrency,
                out,
            } => users::register(&url, from..to, &prefix, &password, concurrency, &out).await,
            Mode::Idle { users: u } => users::idle(u.connect().await?).await,
            Mode::Invites { users: u } => invites::run(u.connect().await?).await,
            Mode::Logins {
                url,
                prefix,
                password,
                users,
                rate,
                secs,
                max_wait,
            } => logins::run(&url, &prefix, &password, users, rate, secs, max_wait).await,
            Mode::EchoServer { listen } => echo::serve(listen).await,
            Mode::Echo {
                url,
                conns,
                bytes,
                concurrency,
            } => echo::run(&url, conns, bytes, concurrency).await,
        }
    })
}
