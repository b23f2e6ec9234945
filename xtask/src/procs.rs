//! Starting the server and headless peers as processes and reading what
//! they print.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::describe;

/// A JSON line a peer printed, with the peer's name.
pub(crate) type Line = (String, Value);

/// A running `beckon-server`; stopped (SIGTERM, then killed if it lingers)
/// when dropped.
pub(crate) struct ServerProc {
    child: Child,
    pub(crate) url: String,
}

impl ServerProc {
    /// Starts the server on a free loopback port with a database in `dir`.
    pub(crate) fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(&bin.join("beckon-server"), &dir.join("beckon.db"), &[])
    }

    /// Starts this server binary on a free loopback port with this
    /// database and extra flags.
    pub(crate) fn start_with(server: &Path, db: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_cmd(Command::new(server), "127.0.0.1:0", db, extra)
    }

    /// Starts the server `cmd` runs (the binary, or `ip netns exec … binary`)
    /// listening on `listen`, with this database and extra flags.
    pub(crate) fn start_cmd(
        mut cmd: Command,
        listen: &str,
        db: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let server = describe(&cmd);
        let mut child = cmd
            .args(["--listen", listen, "--database"])
            .arg(db)
            .args(extra)
            .env(
                "BECKON_LOG",
                std::env::var("BECKON_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {server}"))?;
        let out = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(out).lines();
        // From here on the child is ours to stop, even on error.
        let mut server = Self {
            child,
            url: String::new(),
        };
        let first = lines
            .next()
            .context("the server exited before listening")??;
        server.url = first.rsplit(' ').next().unwrap_or_default().to_string();
        anyhow::ensure!(
            server.url.starts_with("ws"),
            "unexpected server output: {first}"
        );
        // Keep draining so the server never blocks on a full pipe.
        thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Ok(server)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait: the server closes its connections and the
    /// database (which checkpoints the WAL).
    pub(crate) fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let sent = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        while sent && Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        kill(&mut self.child);
    }
}

/// Ends a child now: killed, and waited for so that no zombie is left.
pub(crate) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A child that is killed when dropped.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Starts a `beckon-peer` signed in as `user` (registering it), sending
/// each JSON line it prints to `lines`.
pub(crate) fn spawn_peer(
    bin: &Path,
    url: &str,
    user: &str,
    extra: &[&str],
    lines: &mpsc::Sender<Line>,
) -> anyhow::Result<Child> {
    spawn_peer_cmd(
        Command::new(bin.join("beckon-peer")),
        url,
        user,
        extra,
        lines,
    )
}

/// [`spawn_peer`], with the peer started by `cmd` (e.g. in a namespace).
pub(crate) fn spawn_peer_cmd(
    mut cmd: Command,
    url: &str,
    user: &str,
    extra: &[&str],
    lines: &mpsc::Sender<Line>,
) -> anyhow::Result<Child> {
    let mut child = cmd
        .args([
            "--server",
            url,
            "--user",
            user,
            "--password",
            "demo password",
            "--register",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting beckon-peer {user}"))?;
    let out = child.stdout.take().expect("piped");
    let tx = lines.clone();
    let name = user.to_string();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send((name.clone(), v));
            }
        }
    });
    Ok(child)
}

/// Waits for `who` to print event `what`, handing every line read on the
/// way to `seen`.
pub(crate) fn wait_for(
    rx: &mpsc::Receiver<Line>,
    who: &str,
    what: &str,
    timeout: Duration,
    mut seen: impl FnMut(&Line),
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen(&line);
        if line.0 == who && line.1["event"] == what {
            return Ok(());
        }
    }
    anyhow::bail!("{who} never reported {what}")
}

/// Where cargo puts binaries of `profile` (`debug` or `release`).
pub(crate) fn bin_dir(profile: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"))
        .join(profile)
}

/// A fresh scratch directory under the system's temporary directory.
pub(crate) fn scratch(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("beckon-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Builds these packages' release binaries.
pub(crate) fn build_release(packages: &[&str]) -> anyhow::Result<()> {
    println!("xtask: building {} (release)", packages.join(", "));
    let mut args = vec!["build", "--release"];
    for p in packages {
        args.extend(["-p", p]);
    }
    let status = crate::cargo(&args).status()?;
    anyhow::ensure!(
        status.success(),
        "the release build of {} failed",
        packages.join(", ")
    );
    Ok(())
}
