//! "Host on this computer": the signaling server runs inside the app on a
//! port others on the network can reach, with the echo test contact signed
//! in beside it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;

use beckon_peer::echo::Echo;
use beckon_protocol::{Password, UserId};
use beckon_server::{Server, ServerConfig};

/// The port a hosted server tries first.
pub const DEFAULT_PORT: u16 = 7600;

/// Login name of the echo test contact on hosted servers.
pub const ECHO_USER: &str = "echo";

/// A server running in this process.
#[derive(Debug)]
pub struct Host {
    server: Server,
    echo: Option<Echo>,
}

impl Host {
    /// Starts a server on every interface at `port` (or, when that is taken,
    /// on a free one), keeping its database in `dir`, and signs the echo
    /// contact in with `echo_password`.
    pub async fn start(dir: &Path, port: Option<u16>, echo_password: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut config = ServerConfig {
            database: dir.join("server.db"),
            ..ServerConfig::default()
        };
        let wanted = port.unwrap_or(DEFAULT_PORT);
        config.listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, wanted));
        let server = match Server::start(config.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(port = wanted, error = %e, "port taken; hosting on a free port");
                config.listen.set_port(0);
                Server::start(config).await?
            }
        };
        let mut host = Self { server, echo: None };
        let user: UserId = ECHO_USER.parse()?;
        let password: Password = echo_password.parse()?;
        match Echo::start(host.local_url(), user, password).await {
            Ok(echo) => host.echo = Some(echo),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the echo test contact is unavailable")
            }
        }
        Ok(host)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.local_addr().port()
    }

    /// The URL this app connects to.
    pub fn local_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port())
    }

    /// URLs others on the network can use.
    pub fn lan_urls(&self) -> Vec<String> {
        lan_address()
            .into_iter()
            .map(|ip| format!("ws://{ip}:{}/ws", self.port()))
            .collect()
    }

    /// Whether the echo contact is signed in.
    pub fn has_echo(&self) -> bool {
        self.echo.is_some()
    }

    /// Stops the echo contact and the server.
    pub async fn stop(self) {
        if let Some(echo) = self.echo {
            echo.stop().await;
        }
        self.server.shutdown().await;
    }
}

/// This machine's address on its main network: the source address the
/// system would use towards a public address. A UDP "connect" sends
/// nothing; it only asks the routing table.
fn lan_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// A new random password for the echo contact.
pub fn new_echo_password() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hosted_server_moves_to_a_free_port_when_its_own_is_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Host::start(dir.path(), Some(0), &new_echo_password())
            .await
            .expect("first host");
        let taken = first.port();
        let other = tempfile::tempdir().expect("tempdir");
        let second = Host::start(other.path(), Some(taken), &new_echo_password())
            .await
            .expect("second host");
        assert_ne!(second.port(), taken);
        assert!(first.has_echo() && second.has_echo());
        assert!(second.local_url().starts_with("ws://127.0.0.1:"));
        second.stop().await;
        first.stop().await;
    }

    #[tokio::test]
    async fn the_echo_contact_signs_in_again_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let password = new_echo_password();
        let host = Host::start(dir.path(), Some(0), &password)
            .await
            .expect("host");
        host.stop().await;
        let again = Host::start(dir.path(), Some(0), &password)
            .await
            .expect("again");
        assert!(again.has_echo());
        again.stop().await;
    }
}
