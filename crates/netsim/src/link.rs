//! One host's access link, emulated: two TUN devices, one in the host's
//! namespace and one in the core's, and a thread per direction moving IP
//! packets between them through a [`Path`].

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::NetError;
use crate::model::{Impairment, Path, PathStats};
use crate::sys;

/// Which way packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the host to the network.
    Up,
    /// From the network to the host.
    Down,
    /// Both.
    Both,
}

/// A running link; stops (and its devices go) when dropped.
#[derive(Debug)]
pub struct Link {
    up: Arc<Mutex<Path>>,
    down: Arc<Mutex<Path>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn lock(p: &Mutex<Path>) -> MutexGuard<'_, Path> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl Link {
    /// Carries packets between the devices `host` and `core` (already
    /// attached), each direction seeded from `seed`.
    pub(crate) fn start(host: File, core: File, seed: u64) -> Result<Self, NetError> {
        let up = Arc::new(Mutex::new(Path::new(Impairment::clean(), seed)));
        let down = Arc::new(Mutex::new(Path::new(
            Impairment::clean(),
            seed ^ 0x5eed_d0d0,
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let (host, core) = (Arc::new(host), Arc::new(core));
        let mut threads = Vec::new();
        for (name, from, to, path) in [
            ("beckon-link-up", host.clone(), core.clone(), up.clone()),
            ("beckon-link-down", core, host, down.clone()),
        ] {
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || carry(&from, &to, &path, &stop))
                    .map_err(|e| NetError::Io(format!("spawning the link thread: {e}")))?,
            );
        }
        Ok(Self {
            up,
            down,
            stop,
            threads,
        })
    }

    /// Impairs `direction` like this from now on.
    pub fn set(&self, direction: Direction, profile: Impairment) {
        if matches!(direction, Direction::Up | Direction::Both) {
            lock(&self.up).set_profile(profile.clone());
        }
        if matches!(direction, Direction::Down | Direction::Both) {
            lock(&self.down).set_profile(profile);
        }
    }

    /// Cuts the link (`true`) or brings it back, keeping the rest of each
    /// direction's profile.
    pub fn set_down(&self, down: bool) {
        for p in [&self.up, &self.down] {
            let mut p = lock(p);
            let profile = Impairment {
                down,
                ..p.profile().clone()
            };
            p.set_profile(profile);
        }
    }

    /// What each direction has done so far: (up, down).
    pub fn stats(&self) -> (PathStats, PathStats) {
        (lock(&self.up).stats(), lock(&self.down).stats())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Moves packets from `from` to `to` through `path` until told to stop.
fn carry(from: &File, to: &File, path: &Mutex<Path>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let wait = lock(path)
            .next_due()
            .map_or(Duration::from_millis(50), |due| {
                due.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(50));
        // Round up, so a packet due in 0.3 ms is not polled for in a spin.
        let wait_ms = wait.as_micros().div_ceil(1000) as i32;
        match sys::wait_readable(from, wait_ms) {
            Ok(true) => loop {
                match (&*from).read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => lock(path).push(Instant::now(), buf[..n].to_vec()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "link device read failed");
                        break;
                    }
                }
            },
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "link device poll failed; the link stops");
                return;
            }
        }
        let now = Instant::now();
        loop {
            let Some(packet) = lock(path).poll(now) else {
                break;
            };
            // A full device queue (nobody reading in the namespace yet)
            // loses the packet, as a real link would.
            if let Err(e) = (&*to).write(&packet)
                && e.kind() != ErrorKind::WouldBlock
            {
                tracing::debug!(error = %e, "link device write failed");
            }
        }
    }
}
