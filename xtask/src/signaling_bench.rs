//! `cargo xtask bench signaling`: the signaling server under load.
//!
//! Several `beckon-server` processes (release) on their own loopback ports,
//! each with its own copy of one database of pre-registered accounts, and
//! several `beckon-load` processes, each talking to one server. A process
//! may hold at most 20,000 open files here, so each holds at most
//! `PER_PROCESS` connections.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::bench::{cpu_secs, machine, proc_field, rss_mb, secs_arg, write_section};
use crate::procs::{ServerProc, bin_dir, scratch};

/// Connections one process holds at most (the open-file limit is 20,000).
const PER_PROCESS: usize = 17_000;
/// Idle steps, connections in all.
const IDLE_STEPS: [usize; 3] = [10_000, 50_000, 100_000];
/// Accounts registered once, for every scenario.
const ACCOUNTS: usize = 100_000;
/// Users connected for the invite test (half call the other half).
const INVITE_USERS: usize = 10_000;
/// Offered invite rates, per second.
const INVITE_RATES: [f64; 3] = [100.0, 1_000.0, 5_000.0];
/// The login storm: offered rate and for how long, then how long to wait.
const STORM_RATE: f64 = 1_000.0;
const STORM_SECS: f64 = 3.0;
const STORM_WAIT: f64 = 30.0;
/// How long a login storm account's password is, and how many accounts.
const STORM_USERS: usize = 16;
/// Cheap argon2 for bulk registration only.
const CHEAP_ARGON2: [&str; 4] = ["--argon2-memory-kib", "8", "--argon2-iterations", "1"];
/// Idle CPU is measured over this long: the server's ping interval, so
/// that every connection is pinged once in the window.
const IDLE_WINDOW: Duration = Duration::from_secs(20);

/// Runs the signaling benchmarks and rewrites their section of
/// `docs/benchmarks.md`.
pub(crate) fn bench_signaling(args: &[String]) -> anyhow::Result<()> {
    let secs = secs_arg(args, 10.0)?;
    let unbounded = args
        .iter()
        .position(|a| a == "--compare-server")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let started = Instant::now();
    crate::procs::build_release(&["beckon-server", "beckon-load"])?;
    let bin = bin_dir("release");
    let tmp = TempDir(scratch("signaling")?);
    let bench_started = Instant::now();

    let accounts = accounts(&bin, &tmp.0)?;
    let servers_needed = IDLE_STEPS
        .iter()
        .map(|n| n.div_ceil(PER_PROCESS))
        .max()
        .unwrap_or(1);
    let dbs = (0..servers_needed)
        .map(|i| copy_db(&accounts.db, &tmp.0.join(format!("server{i}"))))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut idle = Vec::new();
    for n in IDLE_STEPS {
        println!("xtask: {n} idle connections");
        idle.push(idle_step(&bin, &dbs, &accounts.tokens, n)?);
    }
    println!("xtask: invites, {INVITE_USERS} users on one server");
    let invites = invite_steps(&bin, &dbs[0], &accounts.tokens, secs)?;
    println!("xtask: echo floor, {INVITE_USERS} connections");
    let bytes = invites
        .iter()
        .find_map(|r| r.load["invite_bytes"].as_u64())
        .unwrap_or(400);
    let echo = echo_steps(&bin, bytes, secs)?;
    println!("xtask: login storm, default argon2 cost");
    let storm = storm(&bin.join("beckon-server"), &bin, &tmp.0.join("storm"))?;
    let before = match &unbounded {
        Some(old) => {
            println!("xtask: login storm against {}", old.display());
            let mut r = storm_with(old, &bin, &tmp.0.join("storm-old"))?;
            r.label = "unbounded (`--compare-server`, the build before the bound)".into();
            Some(r)
        }
        None => None,
    };
    let wall = bench_started.elapsed();

    let body = report(&Report {
        accounts: &accounts,
        idle: &idle,
        invites: &invites,
        echo: &echo,
        storm: &storm,
        before: before.as_ref(),
        secs,
        wall,
    });
    println!("\n{body}");
    write_section("signaling", &body)?;
    println!(
        "xtask: signaling bench took {:.0} s ({:.0} s with the build)",
        wall.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// --- processes --------------------------------------------------------------

/// A `beckon-load` process and the JSON lines it prints.
struct Load {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
}

impl Load {
    fn start(bin: &Path, args: &[String]) -> anyhow::Result<Self> {
        let mut child = Command::new(bin.join("beckon-load"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting beckon-load")?;
        let stdin = child.stdin.take();
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        let _ = tx.send(v);
                    }
                    Err(_) => println!("beckon-load: {line}"),
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            lines,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line with `event` (other lines are skipped).
    fn expect(&self, event: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v["event"] == event => return Ok(v),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    anyhow::bail!("beckon-load did not report {event} within {timeout:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("beckon-load exited before reporting {event}")
                }
            }
        }
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes stdin (the process exits) and waits; kills it if it lingers.
    fn finish(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        crate::procs::kill(&mut self.child);
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            crate::procs::kill(&mut self.child);
        }
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Peak resident memory of a process, MB.
fn peak_rss_mb(pid: u32) -> f64 {
    proc_field(pid, "status", "VmHWM:").map_or(0.0, |kb| kb / 1024.0)
}

// --- accounts ---------------------------------------------------------------

struct Accounts {
    db: PathBuf,
    tokens: PathBuf,
    /// Seconds registration took, or `None` when taken from the cache.
    register_secs: Option<f64>,
}

/// `ACCOUNTS` accounts and their tokens, registered once against a server
/// with cheap argon2 and cached under `target/bench-cache`, keyed by the
/// store's schema (its source and migrations) so a schema change registers
/// afresh.
fn accounts(bin: &Path, tmp: &Path) -> anyhow::Result<Accounts> {
    let mut h = DefaultHasher::new();
    std::fs::read_to_string(crate::root().join("crates/server/src/store.rs"))?.hash(&mut h);
    let mut migrations: Vec<_> = std::fs::read_dir(crate::root().join("crates/server/migrations"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    migrations.sort();
    for m in migrations {
        std::fs::read_to_string(m)?.hash(&mut h);
    }
    ACCOUNTS.hash(&mut h);
    let cache = bin
        .parent()
        .unwrap_or(bin)
        .join("bench-cache")
        .join(format!("signaling-{:016x}", h.finish()));
    let (db, tokens) = (cache.join("beckon.db"), cache.join("tokens.tsv"));
    // Tokens last 30 days; a cache older than 20 is registered again.
    let fresh = std::fs::metadata(&tokens)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(20 * 24 * 3600));
    let lines = std::fs::read_to_string(&tokens)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    if fresh && lines == ACCOUNTS && db.exists() {
        println!("xtask: {ACCOUNTS} accounts from {}", cache.display());
        return Ok(Accounts {
            db,
            tokens,
            register_secs: None,
        });
    }
    println!("xtask: registering {ACCOUNTS} accounts (cheap argon2)");
    let work = tmp.join("register");
    std::fs::create_dir_all(&work)?;
    let work_db = work.join("beckon.db");
    let work_tokens = work.join("tokens.tsv");
    let server = ServerProc::start_with(&bin.join("beckon-server"), &work_db, &CHEAP_ARGON2)?;
    let t0 = Instant::now();
    let mut load = Load::start(
        bin,
        &[
            args(&["register", "--url", &server.url, "--to"]),
            vec![ACCOUNTS.to_string()],
            args(&["--concurrency", "128", "--out"]),
            vec![work_tokens.display().to_string()],
        ]
        .concat(),
    )?;
    let done = load.expect("registered", Duration::from_secs(600))?;
    let secs = t0.elapsed().as_secs_f64();
    load.finish();
    anyhow::ensure!(
        done["ok"].as_u64() == Some(ACCOUNTS as u64),
        "registration failed: {done}"
    );
    println!(
        "xtask: registered {ACCOUNTS} accounts in {secs:.1} s ({:.0}/s)",
        ACCOUNTS as f64 / secs
    );
    server.stop();
    std::fs::create_dir_all(&cache)?;
    copy_db(&work_db, &cache)?;
    std::fs::copy(&work_tokens, &tokens)?;
    Ok(Accounts {
        db,
        tokens,
        register_secs: Some(secs),
    })
}

/// Copies a database (and its WAL, if the server left one) into `dir`.
fn copy_db(db: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let to = dir.join("beckon.db");
    if db != to {
        std::fs::copy(db, &to).with_context(|| format!("copying {}", db.display()))?;
        for ext in ["-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{ext}", db.display()));
            let dest = PathBuf::from(format!("{}{ext}", to.display()));
            if from.exists() {
                std::fs::copy(&from, &dest)?;
            } else {
                let _ = std::fs::remove_file(&dest);
            }
        }
    }
    Ok(to)
}

// --- idle connections -------------------------------------------------------

struct IdleResult {
    conns: usize,
    servers: usize,
    loads: usize,
    connected: u64,
    failed: u64,
    first_error: Option<String>,
    connect_secs: f64,
    server_rss_mb: f64,
    server_base_mb: f64,
    idle_cpu_pct: f64,
    load_rss_mb: f64,
    load_base_mb: f64,
}

fn idle_step(bin: &Path, dbs: &[PathBuf], tokens: &Path, n: usize) -> anyhow::Result<IdleResult> {
    let k = n.div_ceil(PER_PROCESS);
    let servers = dbs[..k]
        .iter()
        .map(|db| ServerProc::start_with(&bin.join("beckon-server"), db, &[]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    thread::sleep(Duration::from_millis(500));
    let server_base_mb: f64 = servers.iter().map(|s| rss_mb(s.pid())).sum();
    let t0 = Instant::now();
    let mut loads = Vec::new();
    for (j, s) in servers.iter().enumerate() {
        let (from, to) = (j * n / k, (j + 1) * n / k);
        loads.push(Load::start(
            bin,
            &[
                args(&["idle", "--url", &s.url, "--tokens"]),
                vec![tokens.display().to_string()],
                args(&["--concurrency", "64", "--from"]),
                vec![from.to_string(), "--to".into(), to.to_string()],
            ]
            .concat(),
        )?);
    }
    let mut connected = 0;
    let mut failed = 0;
    let mut first_error = None;
    let mut load_base_mb = 0.0;
    for l in &loads {
        let v = l.expect("connected", Duration::from_secs(300))?;
        connected += v["ok"].as_u64().unwrap_or(0);
        failed += v["failed"].as_u64().unwrap_or(0);
        load_base_mb += v["rss_before_kib"].as_f64().unwrap_or(0.0) / 1024.0;
        if first_error.is_none() {
            first_error = v["first_error"].as_str().map(str::to_string);
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    thread::sleep(Duration::from_secs(1));
    let server_rss_mb: f64 = servers.iter().map(|s| rss_mb(s.pid())).sum();
    let load_rss_mb: f64 = loads.iter().map(|l| rss_mb(l.pid())).sum();
    let cpu0: f64 = servers.iter().map(|s| cpu_secs(s.pid())).sum();
    let w0 = Instant::now();
    thread::sleep(IDLE_WINDOW);
    let cpu1: f64 = servers.iter().map(|s| cpu_secs(s.pid())).sum();
    let idle_cpu_pct = (cpu1 - cpu0) / w0.elapsed().as_secs_f64() * 100.0;
    for l in &mut loads {
        l.finish();
    }
    // Let the servers see the disconnects before they are stopped.
    thread::sleep(Duration::from_secs(1));
    for s in servers {
        s.stop();
    }
    println!(
        "xtask:   {connected} connected ({failed} failed) in {connect_secs:.1} s; servers {:.0} MB over {server_base_mb:.0} MB; idle CPU {idle_cpu_pct:.1} %",
        server_rss_mb - server_base_mb
    );
    Ok(IdleResult {
        conns: n,
        servers: k,
        loads: k,
        connected,
        failed,
        first_error,
        connect_secs,
        server_rss_mb,
        server_base_mb,
        idle_cpu_pct,
        load_rss_mb,
        load_base_mb,
    })
}

// --- invites and their floor --------------------------------------------------

struct RateResult {
    rate: f64,
    load: Value,
    /// CPU of the server (or echo server) over the window, % of one core.
    server_cpu_pct: f64,
    /// CPU of the load generator over the window, % of one core.
    load_cpu_pct: f64,
}

/// Runs each rate through a connected `invites` or `echo` process.
fn rate_steps(
    server_pid: u32,
    load: &mut Load,
    event: &str,
    secs: f64,
) -> anyhow::Result<Vec<RateResult>> {
    let mut out = Vec::new();
    for rate in INVITE_RATES {
        let (s0, l0, t0) = (cpu_secs(server_pid), cpu_secs(load.pid()), Instant::now());
        load.send(&format!("{rate} {secs}"))?;
        let v = load.expect(event, Duration::from_secs_f64(secs + 90.0))?;
        let dt = t0.elapsed().as_secs_f64();
        let r = RateResult {
            rate,
            server_cpu_pct: (cpu_secs(server_pid) - s0) / dt * 100.0,
            load_cpu_pct: (cpu_secs(load.pid()) - l0) / dt * 100.0,
            load: v,
        };
        let lat = if event == "invites" {
            &r.load["incoming"]
        } else {
            &r.load["round_trip"]
        };
        println!(
            "xtask:   {event} at {rate}/s: {} done, p50 {} ms, p99 {} ms, server CPU {:.0} %",
            r.load["completed"], lat["p50_ms"], lat["p99_ms"], r.server_cpu_pct
        );
        out.push(r);
    }
    load.finish();
    Ok(out)
}

fn invite_steps(
    bin: &Path,
    db: &Path,
    tokens: &Path,
    secs: f64,
) -> anyhow::Result<Vec<RateResult>> {
    let server = ServerProc::start_with(&bin.join("beckon-server"), db, &[])?;
    let mut load = Load::start(
        bin,
        &[
            args(&["invites", "--url", &server.url, "--tokens"]),
            vec![tokens.display().to_string()],
            args(&["--concurrency", "64", "--to"]),
            vec![INVITE_USERS.to_string()],
        ]
        .concat(),
    )?;
    let c = load.expect("connected", Duration::from_secs(300))?;
    anyhow::ensure!(
        c["ok"].as_u64() == Some(INVITE_USERS as u64),
        "not every user connected: {c}"
    );
    let out = rate_steps(server.pid(), &mut load, "invites", secs)?;
    // Let the server see the disconnects before it is stopped.
    thread::sleep(Duration::from_secs(1));
    server.stop();
    Ok(out)
}

fn echo_steps(bin: &Path, bytes: u64, secs: f64) -> anyhow::Result<Vec<RateResult>> {
    let mut server = Command::new(bin.join("beckon-load"))
        .args(["echo-server", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the echo server")?;
    let guard = KillOnDrop(&mut server);
    let out = guard.0.stdout.take().expect("piped");
    let mut lines = BufReader::new(out).lines();
    let first = lines
        .next()
        .context("the echo server exited before listening")??;
    thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    let url = first.rsplit(' ').next().unwrap_or_default().to_string();
    let mut load = Load::start(
        bin,
        &[
            args(&["echo", "--url", &url, "--conns"]),
            vec![
                INVITE_USERS.to_string(),
                "--bytes".into(),
                bytes.to_string(),
            ],
        ]
        .concat(),
    )?;
    load.expect("connected", Duration::from_secs(120))?;
    rate_steps(guard.0.id(), &mut load, "echo", secs)
}

struct KillOnDrop<'a>(&'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        crate::procs::kill(self.0);
    }
}

// --- login storm ---------------------------------------------------------------

struct StormResult {
    label: String,
    logins: Value,
    cpu_pct: f64,
    base_rss_mb: f64,
    peak_rss_mb: f64,
    threads_peak: u64,
    wall_secs: f64,
}

fn storm(server_bin: &Path, bin: &Path, dir: &Path) -> anyhow::Result<StormResult> {
    let mut r = storm_with(server_bin, bin, dir)?;
    r.label = "bounded (this build)".into();
    Ok(r)
}

/// A fresh server with the default argon2 cost, `STORM_USERS` accounts
/// registered at that cost, then `STORM_RATE` logins a second for
/// `STORM_SECS` seconds.
fn storm_with(server_bin: &Path, bin: &Path, dir: &Path) -> anyhow::Result<StormResult> {
    std::fs::create_dir_all(dir)?;
    let server = ServerProc::start_with(server_bin, &dir.join("beckon.db"), &[])?;
    let mut reg = Load::start(
        bin,
        &[
            args(&["register", "--url", &server.url, "--prefix", "storm"]),
            args(&[
                "--to",
                &STORM_USERS.to_string(),
                "--concurrency",
                "2",
                "--out",
            ]),
            vec![dir.join("tokens.tsv").display().to_string()],
        ]
        .concat(),
    )?;
    reg.expect("registered", Duration::from_secs(120))?;
    reg.finish();
    thread::sleep(Duration::from_millis(500));
    let base_rss_mb = rss_mb(server.pid());
    let (c0, t0) = (cpu_secs(server.pid()), Instant::now());
    let mut load = Load::start(
        bin,
        &[
            args(&["logins", "--url", &server.url, "--prefix", "storm"]),
            args(&["--users", &STORM_USERS.to_string()]),
            args(&["--rate", &STORM_RATE.to_string()]),
            args(&["--secs", &STORM_SECS.to_string()]),
            args(&["--max-wait", &STORM_WAIT.to_string()]),
        ]
        .concat(),
    )?;
    // Sample the server's threads while the storm lasts.
    let pid = server.pid();
    let mut threads_peak = 0;
    let logins = loop {
        match load.lines.recv_timeout(Duration::from_millis(100)) {
            Ok(v) if v["event"] == "logins" => break v,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("beckon-load logins exited without a report")
            }
        }
        threads_peak = threads_peak.max(threads(pid));
        anyhow::ensure!(
            t0.elapsed().as_secs_f64() < STORM_SECS + STORM_WAIT + 30.0,
            "the login storm never reported"
        );
    };
    let wall_secs = t0.elapsed().as_secs_f64();
    let cpu_pct = (cpu_secs(pid) - c0) / wall_secs * 100.0;
    let peak_rss_mb = peak_rss_mb(pid);
    load.finish();
    server.stop();
    let r = StormResult {
        label: server_bin.display().to_string(),
        logins,
        cpu_pct,
        base_rss_mb,
        peak_rss_mb,
        threads_peak,
        wall_secs,
    };
    println!(
        "xtask:   {} of {} logins served ({:.0}/s), CPU {:.0} %, peak RSS {:.0} MB, {} threads at most",
        r.logins["ok"],
        r.logins["offered"],
        r.logins["achieved_per_sec"].as_f64().unwrap_or(0.0),
        r.cpu_pct,
        r.peak_rss_mb,
        r.threads_peak
    );
    Ok(r)
}

fn threads(pid: u32) -> u64 {
    proc_field(pid, "status", "Threads:").map_or(0, |n| n as u64)
}

// --- report -------------------------------------------------------------------

struct Report<'a> {
    accounts: &'a Accounts,
    idle: &'a [IdleResult],
    invites: &'a [RateResult],
    echo: &'a [RateResult],
    storm: &'a StormResult,
    before: Option<&'a StormResult>,
    secs: f64,
    wall: Duration,
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => "–".into(),
    }
}

fn errors(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "0".into(),
    }
}

fn report(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Signaling under load\n");
    let _ = writeln!(
        s,
        "`cargo xtask bench signaling` (`--secs {}` per rate), on {}. The whole run took {:.0} s{}.\n",
        r.secs,
        machine(),
        r.wall.as_secs_f64(),
        match r.accounts.register_secs {
            Some(t) => format!(", registering the {ACCOUNTS} accounts included ({t:.0} s)"),
            None => format!(" (the {ACCOUNTS} accounts came from `target/bench-cache`)"),
        }
    );
    let _ = writeln!(
        s,
        "How: release `beckon-server` processes on their own loopback ports, each with its own copy of one SQLite database, \
         and `beckon-load` processes (crates/load) that connect through `beckon-client` itself, each load process talking to one server. \
         A process may hold 20,000 open files on this machine, so each holds at most {PER_PROCESS} connections. \
         Both sides read WebSockets through a 4 KiB buffer and do not buffer writes (tungstenite's default read buffer is 128 KiB per connection). \
         The {ACCOUNTS} accounts `load0`… are registered once against a server with **cheap argon2** (`--argon2-memory-kib 8 --argon2-iterations 1`), \
         only to make registration fast; the servers under test then run with the defaults, and clients sign in with `resume` (no password hash). \
         Memory is resident set size from `/proc`, less each process's own before connecting; CPU is utime+stime from `/proc`, in % of one core.\n"
    );

    let _ = writeln!(s, "### Idle signed-in connections\n");
    let _ = writeln!(
        s,
        "| connections | servers / load processes | connected (failed) | connect time | server RSS (added) | per connection | server CPU idle ({} s) | load generator per connection |",
        IDLE_WINDOW.as_secs()
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for i in r.idle {
        let added = i.server_rss_mb - i.server_base_mb;
        let per = added * 1024.0 / i.connected.max(1) as f64;
        let load_per = (i.load_rss_mb - i.load_base_mb) * 1024.0 / i.connected.max(1) as f64;
        let _ = writeln!(
            s,
            "| {} | {} / {} | {}{} | {:.1} s | {:.0} MB (+{:.0} MB) | {:.1} KiB | {:.1} % | {:.1} KiB |",
            i.conns,
            i.servers,
            i.loads,
            i.connected,
            if i.failed > 0 {
                format!(
                    " ({}: {})",
                    i.failed,
                    i.first_error.as_deref().unwrap_or("?")
                )
            } else {
                String::new()
            },
            i.connect_secs,
            i.server_rss_mb,
            added,
            per,
            i.idle_cpu_pct,
            load_per
        );
    }

    let _ = writeln!(
        s,
        "\nIdle CPU is measured over {} s, the server's ping interval: each connection is pinged once in the window \
         (the ping and the client's pong are all the traffic there is), so it is the cost of keep-alive, e.g. {:.0} pings a second at {} connections.",
        IDLE_WINDOW.as_secs(),
        IDLE_STEPS[IDLE_STEPS.len() - 1] as f64 / IDLE_WINDOW.as_secs_f64(),
        IDLE_STEPS[IDLE_STEPS.len() - 1]
    );

    let bytes = r
        .invites
        .iter()
        .find_map(|x| x.load["invite_bytes"].as_u64())
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "\n### Invites on one server process\n\n\
         {INVITE_USERS} signed-in users on one server ({} pairs, all in one load process). At each offered rate, for {} s, each pair places calls in turn: \
         the caller invites, the callee accepts on its incoming-call notice, the caller ends, and the callee hears the call ended. \
         *Invite→incoming* is from just before `Client::invite` to the callee's `Notice::IncomingReceived` on its event stream (same process, same clock); \
         *full call* is from the invite to the callee's `CallEnded`. The echo floor is a bare tokio-tungstenite echo server (same buffers) with the same number of connections, \
         one of each pair sending {bytes}-byte messages (the size of the real `call_invited` event) at the same rate, timed client→server→client: the same two hops.\n",
        INVITE_USERS / 2,
        r.secs
    );
    let _ = writeln!(
        s,
        "| offered/s | achieved/s | failed | invite→incoming p50 / p99 / max | full call p50 / p99 | server CPU | load CPU | echo floor p50 / p99 / max | echo server CPU |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for (i, e) in r
        .invites
        .iter()
        .zip(r.echo.iter().map(Some).chain(std::iter::repeat(None)))
    {
        let l = &i.load;
        let (floor, floor_cpu) = match e {
            Some(e) => (
                format!(
                    "{} / {} / {} ms",
                    num(&e.load["round_trip"]["p50_ms"]),
                    num(&e.load["round_trip"]["p99_ms"]),
                    num(&e.load["round_trip"]["max_ms"])
                ),
                format!("{:.0} %", e.server_cpu_pct),
            ),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            s,
            "| {:.0} | {} | {} | {} / {} / {} ms | {} / {} ms | {:.0} % | {:.0} % | {} | {} |",
            i.rate,
            num(&l["achieved_per_sec"]),
            errors(&l["errors"]),
            num(&l["incoming"]["p50_ms"]),
            num(&l["incoming"]["p99_ms"]),
            num(&l["incoming"]["max_ms"]),
            num(&l["full_call"]["p50_ms"]),
            num(&l["full_call"]["p99_ms"]),
            i.server_cpu_pct,
            i.load_cpu_pct,
            floor,
            floor_cpu
        );
    }

    let _ = writeln!(
        s,
        "\nWhere fewer calls are achieved than offered, the server is past what this machine gives it: server, load generator \
         (and whatever else runs) share 2 cores, calls queue, and the latency measures the queue."
    );

    let _ = writeln!(
        s,
        "\n### Login storm\n\n\
         One fresh server with the default argon2 cost (19456 KiB, 2 passes); {STORM_USERS} accounts registered at that cost; \
         then {STORM_RATE:.0} password logins a second offered for {STORM_SECS:.0} s, each on its own connection, \
         waiting at most {STORM_WAIT:.0} s more for answers (what is still unanswered then counts as *not served*). \
         The server hashes at most one password per core at once and lets at most 64 sign-ins per core wait \
         (`--max-waiting-sign-ins`); beyond that a sign-in gets `rate_limited` at once and the client retries later.\n"
    );
    let _ = writeln!(
        s,
        "| server | offered | served | served/s | refused and failed | latency p50 / p99 / max (served) | server CPU | server RSS before → peak | threads at most |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for st in std::iter::once(r.storm).chain(r.before) {
        let l = &st.logins;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} / {} / {} ms | {:.0} % over {:.0} s | {:.0} → {:.0} MB | {} |",
            st.label,
            l["offered"],
            l["ok"],
            num(&l["achieved_per_sec"]),
            errors(&l["errors"]),
            num(&l["latency"]["p50_ms"]),
            num(&l["latency"]["p99_ms"]),
            num(&l["latency"]["max_ms"]),
            st.cpu_pct,
            st.wall_secs,
            st.base_rss_mb,
            st.peak_rss_mb,
            st.threads_peak
        );
    }
    if r.before.is_none() {
        let _ = writeln!(
            s,
            "\nBefore the bound (every hash on its own blocking thread, up to 512 at once; measured once on 2026-12-02 with `--compare-server` and the previous server build): \
             over two runs 98 and 139 of 3000 served (3–4/s), the rest not served within 33 s, served p50 21–27 s, 515 threads, peak RSS 13.7 and 16.8 GB."
        );
    }
    let _ = writeln!(
        s,
        "\nFixed on the way, found by this benchmark: the server did not set `TCP_NODELAY` on plain `ws://` connections, so a reply followed at once by an event \
         waited for the client's delayed ACK (a whole call took 43 ms instead of under 1 ms); every sign-in swept expired sessions with a full scan of the sessions table \
         (registration slowed from 1,100/s to 450/s between 20k and 40k accounts; migration 002 adds the index); and argon2's memory, allocated afresh per hash, was kept by the allocator."
    );
    let per_core = r.storm.logins["achieved_per_sec"].as_f64().unwrap_or(0.0)
        / std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let _ = writeln!(
        s,
        "\n**What to set.** A password sign-in costs one argon2id hash: at the default cost this machine serves about {per_core:.0} logins a second per core, \
         and each hash in flight holds 19 MiB. Sign-ins are rare next to everything else (a client signs in with its password once, then resumes with its token), \
         so keep the default cost and plan cores for the peak login rate you expect: cores ≥ peak logins/s ÷ {per_core:.0}. \
         A server holds one argon2 working memory per core once it has hashed (reused, not freed: a fresh 19 MiB allocation per hash was kept by the C allocator, \
         which grew the server by ~16 MB per sign-in before). Halving `--argon2-memory-kib` roughly doubles the rate but weakens stolen hashes against cracking; OWASP's floor is 19 MiB with 2 passes. \
         The defaults of `--max-waiting-sign-ins` (64 per core) bound a storm's queue to a few seconds of work: clients further back are told to retry rather than wait. \
         Idle connections and invites are cheap by comparison: size for memory (per connection, above) and the open-file limit (one descriptor per connection; \
         raise `LimitNOFILE` past the connection count)."
    );
    s
}
