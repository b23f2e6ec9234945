//! `beckon-peer --help` lists the options.

use beckon_peer::{Options, run};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("BECKON_LOG").unwrap_or_else(|_| {
            EnvFilter::new("warn,rtc=error,rtc_ice=error,rtc_dtls=error,webrtc=error")
        }))
        .with_writer(std::io::stderr)
        .init();
    match run(options, std::io::stdout()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beckon-peer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
