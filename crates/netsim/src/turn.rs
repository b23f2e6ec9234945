//! coturn in the core: the only path between hosts. It takes the
//! time-limited credentials beckon-server hands out (the TURN REST scheme,
//! a shared `static-auth-secret`).

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::NetError;
use crate::world::{CORE_ADDR, World, in_namespace, spawn_in};

/// The port coturn listens on (UDP and TCP).
pub const TURN_PORT: u16 = 3478;

/// A running coturn; stopped when dropped.
#[derive(Debug)]
pub struct Turn {
    child: Child,
    dir: PathBuf,
}

impl Turn {
    /// Starts coturn in `world`'s core with `secret` as its
    /// `static-auth-secret`, and waits until it listens.
    pub fn start(world: &World, secret: &str) -> Result<Self, NetError> {
        let dir = std::env::temp_dir().join(format!("{}-turn", world.core()));
        std::fs::create_dir_all(&dir).map_err(|e| NetError::Io(format!("{e}")))?;
        let log = std::fs::File::create(dir.join("turnserver.log"))
            .map_err(|e| NetError::Io(format!("{e}")))?;
        let addr = CORE_ADDR.to_string();
        let child = in_namespace(world.core(), "turnserver")
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint"])
            .args(["--listening-ip", &addr, "--relay-ip", &addr])
            .args(["--listening-port", &TURN_PORT.to_string()])
            .args(["--min-port", "40000", "--max-port", "60000"])
            .args(["--use-auth-secret", "--static-auth-secret", secret])
            .args(["--realm", "beckon"])
            // Relayed media goes from one allocation to another on the
            // core's own address.
            .args(["--allowed-peer-ip", &addr, "--no-multicast-peers"])
            .arg("--pidfile")
            .arg(dir.join("turnserver.pid"))
            .arg("--userdb")
            .arg(dir.join("turndb"))
            .args(["--log-file", "stdout", "--simple-log", "--no-rfc5780"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                NetError::Setup(format!(
                    "starting turnserver: {e} (install Debian's coturn)"
                ))
            })?;
        let mut turn = Self { child, dir };
        let target = SocketAddr::from((CORE_ADDR, TURN_PORT));
        let ready = spawn_in(world.core(), move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
        .join()
        .map_err(|_| NetError::Setup("the readiness check panicked".into()))??;
        if let Ok(Some(status)) = turn.child.try_wait() {
            return Err(NetError::Setup(format!(
                "turnserver exited ({status}): {}",
                turn.log_tail()
            )));
        }
        if !ready {
            return Err(NetError::Setup(format!(
                "turnserver did not listen within 10 s: {}",
                turn.log_tail()
            )));
        }
        Ok(turn)
    }

    /// The URLs clients use: UDP first, then TCP for networks that block UDP.
    pub fn urls() -> Vec<String> {
        vec![
            format!("turn:{CORE_ADDR}:{TURN_PORT}?transport=udp"),
            format!("turn:{CORE_ADDR}:{TURN_PORT}?transport=tcp"),
        ]
    }

    /// The last lines coturn logged.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Everything coturn logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
