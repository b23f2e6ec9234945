//! Configuration from flags, environment and an optional TOML file. Flags
//! and environment variables win over the file; the file wins over the
//! defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::{PasswordCost, ServerConfig, TlsFiles};

/// Beckon's signaling server: accounts, presence, call invitations and media
/// signaling for Beckon clients, over one WebSocket endpoint (`/ws`), with
/// `/healthz` and Prometheus `/metrics`.
#[derive(Debug, Clone, Default, Parser, Deserialize)]
#[command(name = "beckon-server", version)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Cli {
    /// A TOML file with any of these settings, named as the flags with `_`
    /// for `-` (e.g. `listen = "0.0.0.0:7600"`). Flags and environment
    /// variables win over it.
    #[arg(long, env = "BECKON_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address and port to listen on. Port 0 picks a free one. Beyond
    /// loopback, serve TLS (see --tls-cert) or put a TLS proxy in front.
    /// [default: 127.0.0.1:7600]
    #[arg(long, env = "BECKON_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// SQLite database for accounts, contacts and call history; created if
    /// missing. `:memory:` keeps nothing. [default: beckon.db]
    #[arg(long, env = "BECKON_DATABASE", value_name = "FILE")]
    pub database: Option<PathBuf>,

    /// PEM certificate chain: serve wss:// instead of ws://. Needs --tls-key.
    #[arg(
        long,
        env = "BECKON_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "BECKON_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// How long a sign-in lasts before the user must sign in again, in hours.
    /// [default: 720]
    #[arg(long, env = "BECKON_SESSION_TTL_HOURS", value_name = "HOURS")]
    pub session_ttl_hours: Option<u64>,

    /// argon2id memory per password hash, in KiB. More is slower to attack
    /// and slower to sign in. [default: 19456]
    #[arg(long, env = "BECKON_ARGON2_MEMORY_KIB", value_name = "KIB")]
    pub argon2_memory_kib: Option<u32>,

    /// argon2id passes per password hash. [default: 2]
    #[arg(long, env = "BECKON_ARGON2_ITERATIONS", value_name = "N")]
    pub argon2_iterations: Option<u32>,

    /// Sign-ins that may wait for a password hash while one runs per core;
    /// more are refused at once with `rate_limited` (clients retry).
    /// [default: 64 per core]
    #[arg(long, env = "BECKON_MAX_WAITING_SIGN_INS", value_name = "N")]
    pub max_waiting_sign_ins: Option<usize>,

    /// Most members in one call, the caller included. [default: 10]
    #[arg(long, env = "BECKON_MAX_CALL_MEMBERS", value_name = "N")]
    pub max_call_members: Option<usize>,

    /// Seconds a dropped client may take to reconnect before it leaves its
    /// call (or its unanswered invitation is cancelled). [default: 20]
    #[arg(long, env = "BECKON_DISCONNECT_GRACE_SECS", value_name = "SECS")]
    pub disconnect_grace_secs: Option<u64>,

    /// Seconds after which an undelivered invitation is reported as
    /// `not_yet_received` (invitee offline). [default: 5]
    #[arg(long, env = "BECKON_NOT_RECEIVED_SECS", value_name = "SECS")]
    pub not_received_secs: Option<u64>,

    /// Messages a connection may send in a burst. [default: 40]
    #[arg(long, env = "BECKON_RATE_BURST", value_name = "N")]
    pub rate_burst: Option<u32>,

    /// Messages a connection may send per second on average. [default: 20]
    #[arg(long, env = "BECKON_RATE_PER_SEC", value_name = "N")]
    pub rate_per_sec: Option<u32>,

    /// A STUN server for clients, e.g. stun:stun.example.org:3478.
    /// Repeat the flag (or separate with commas) for several.
    #[arg(
        long = "stun-url",
        env = "BECKON_STUN_URLS",
        value_name = "URL",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub stun_urls: Vec<String>,

    /// A TURN server for clients, e.g. turn:turn.example.org:3478?transport=udp.
    /// Needs --turn-secret. Repeat for several.
    #[arg(
        long = "turn-url",
        env = "BECKON_TURN_URLS",
        value_name = "URL",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub turn_urls: Vec<String>,

    /// Secret shared with the TURN server (coturn `static-auth-secret`);
    /// clients get time-limited credentials derived from it.
    #[arg(
        long,
        env = "BECKON_TURN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,

    /// How long TURN credentials stay valid, in seconds. [default: 86400]
    #[arg(long, env = "BECKON_TURN_TTL_SECS", value_name = "SECS")]
    pub turn_ttl_secs: Option<u64>,

    /// Log format: `text` for people, `json` for log collectors.
    /// [default: text]
    #[arg(long, env = "BECKON_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("{path}: {message}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Cli {
    /// `self` with every unset setting taken from `file`.
    fn or(self, file: Cli) -> Cli {
        Cli {
            config: self.config,
            listen: self.listen.or(file.listen),
            database: self.database.or(file.database),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            session_ttl_hours: self.session_ttl_hours.or(file.session_ttl_hours),
            argon2_memory_kib: self.argon2_memory_kib.or(file.argon2_memory_kib),
            argon2_iterations: self.argon2_iterations.or(file.argon2_iterations),
            max_waiting_sign_ins: self.max_waiting_sign_ins.or(file.max_waiting_sign_ins),
            max_call_members: self.max_call_members.or(file.max_call_members),
            disconnect_grace_secs: self.disconnect_grace_secs.or(file.disconnect_grace_secs),
            not_received_secs: self.not_received_secs.or(file.not_received_secs),
            rate_burst: self.rate_burst.or(file.rate_burst),
            rate_per_sec: self.rate_per_sec.or(file.rate_per_sec),
            stun_urls: if self.stun_urls.is_empty() {
                file.stun_urls
            } else {
                self.stun_urls
            },
            turn_urls: if self.turn_urls.is_empty() {
                file.turn_urls
            } else {
                self.turn_urls
            },
            turn_secret: self.turn_secret.or(file.turn_secret),
            turn_ttl_secs: self.turn_ttl_secs.or(file.turn_ttl_secs),
            log_format: self.log_format.or(file.log_format),
        }
    }
}

/// Merges flags, environment and the config file over the defaults.
pub fn load_config(cli: Cli) -> Result<(ServerConfig, LogFormat), ConfigError> {
    let cli = match cli.config.clone() {
        Some(path) => cli.or(read_file(&path)?),
        None => cli,
    };
    let mut c = ServerConfig::default();
    if let Some(v) = cli.listen {
        c.listen = v;
    }
    if let Some(v) = cli.database {
        c.database = v;
    }
    c.tls = match (cli.tls_cert, cli.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together".into(),
            ));
        }
    };
    if let Some(h) = cli.session_ttl_hours {
        positive("session_ttl_hours", h)?;
        c.session_ttl = Duration::from_secs(h * 3600);
    }
    c.password_cost = PasswordCost {
        memory_kib: cli.argon2_memory_kib.unwrap_or(c.password_cost.memory_kib),
        iterations: cli.argon2_iterations.unwrap_or(c.password_cost.iterations),
    };
    if c.password_cost.memory_kib < 8 || c.password_cost.iterations < 1 {
        return Err(ConfigError::Invalid(
            "argon2 needs at least 8 KiB and 1 iteration".into(),
        ));
    }
    if let Some(n) = cli.max_waiting_sign_ins {
        c.max_waiting_sign_ins = n;
    }
    if let Some(n) = cli.max_call_members {
        if n < 2 {
            return Err(ConfigError::Invalid(
                "max_call_members must be at least 2".into(),
            ));
        }
        c.registry.max_members = n;
    }
    if let Some(s) = cli.disconnect_grace_secs {
        c.registry.disconnect_grace = Duration::from_secs(s);
    }
    if let Some(s) = cli.not_received_secs {
        positive("not_received_secs", s)?;
        c.registry.not_received_after = Duration::from_secs(s);
    }
    if let Some(n) = cli.rate_burst {
        positive("rate_burst", u64::from(n))?;
        c.rate_burst = n;
    }
    if let Some(n) = cli.rate_per_sec {
        positive("rate_per_sec", u64::from(n))?;
        c.rate_per_sec = n;
    }
    c.ice.stun_urls = cli.stun_urls;
    c.ice.turn_urls = cli.turn_urls;
    c.ice.turn_secret = cli.turn_secret;
    if !c.ice.turn_urls.is_empty() && c.ice.turn_secret.is_none() {
        return Err(ConfigError::Invalid("turn_url needs turn_secret".into()));
    }
    if let Some(s) = cli.turn_ttl_secs {
        positive("turn_ttl_secs", s)?;
        c.ice.turn_ttl_secs = s;
    }
    Ok((c, cli.log_format.unwrap_or_default()))
}

fn positive(name: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(ConfigError::Invalid(format!(
            "{name} must be greater than 0"
        )));
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Cli, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("beckon.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\ndatabase = \"/tmp/x.db\"\nmax_call_members = 4\nstun_urls = [\"stun:a\"]\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "beckon-server",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9100",
        ])
        .unwrap();
        let (c, _) = load_config(cli).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(c.database, PathBuf::from("/tmp/x.db"));
        assert_eq!(c.registry.max_members, 4);
        assert_eq!(c.ice.stun_urls, vec!["stun:a".to_string()]);
        assert_eq!(c.session_ttl, Duration::from_secs(720 * 3600));
    }

    #[test]
    fn unknown_file_settings_and_bad_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("beckon.toml");
        std::fs::write(&file, "lisen = \"0.0.0.0:9000\"\n").unwrap();
        let cli = Cli {
            config: Some(file),
            ..Cli::default()
        };
        let err = load_config(cli).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        let cli = Cli {
            max_call_members: Some(1),
            ..Cli::default()
        };
        assert!(load_config(cli).is_err());
        let cli = Cli {
            turn_urls: vec!["turn:x".into()],
            ..Cli::default()
        };
        assert!(
            load_config(cli)
                .unwrap_err()
                .to_string()
                .contains("turn_secret")
        );
    }

    #[test]
    fn tls_flags_go_together() {
        assert!(Cli::try_parse_from(["beckon-server", "--tls-cert", "c.pem"]).is_err());
    }
}
