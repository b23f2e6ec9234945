//! Headless Chromium holding the same loopback calls as the media benchmark,
//! for a side-by-side comparison.
//!
//! The page (`bench/chromium/`) runs the whole call inside one tab: every
//! party draws Beckon's test pattern on a canvas and sends it with a tone to
//! every other party over its own `RTCPeerConnection`s. A small HTTP server
//! here serves the page and receives what it reports; CPU and memory come
//! from /proc, summed over every process Chromium started.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::bench::{cpu_secs, machine_cpu_secs, pss_mb, rss_mb};

/// The flags Chromium runs with (plus a fresh `--user-data-dir`).
pub(crate) const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    // The tones come from WebAudio, which otherwise waits for a click.
    "--autoplay-policy=no-user-gesture-required",
];

/// Installs Chromium if it is missing (Debian's `chromium` package).
pub(crate) fn ensure_installed() -> anyhow::Result<()> {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        crate::deps::install(&["chromium"])?;
    }
    Ok(())
}

/// `chromium --version`, e.g. "Chromium 156.0.8078.114 built on Debian …".
pub(crate) fn version() -> String {
    Command::new("chromium")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// What the page says.
enum PageMsg {
    Log(String),
    Mark(String),
    Result(Value),
}

/// Serves `bench/chromium/` and hands over what the pages post; relays
/// signaling between two pages and tells them their ICE servers.
pub(crate) struct PageServer {
    pub(crate) addr: SocketAddr,
    rx: mpsc::Receiver<PageMsg>,
    shared: Arc<Shared>,
}

/// What the pages share through the server.
#[derive(Default)]
struct Shared {
    /// Signaling messages waiting for each page, by role.
    mail: Mutex<HashMap<String, Vec<Value>>>,
    arrived: Condvar,
    /// `{ iceServers: [...] }` for `RTCPeerConnection`.
    ice: Mutex<Value>,
}

impl PageServer {
    /// On a free loopback port.
    pub(crate) fn start() -> anyhow::Result<Self> {
        Self::on(TcpListener::bind("127.0.0.1:0")?)
    }

    /// On a listener made elsewhere (e.g. in a network namespace).
    pub(crate) fn on(listener: TcpListener) -> anyhow::Result<Self> {
        let dir = crate::root().join("bench/chromium");
        anyhow::ensure!(
            dir.join("call.html").is_file(),
            "{} is missing",
            dir.join("call.html").display()
        );
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        // Lives as long as xtask does.
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (tx, dir, s) = (tx.clone(), dir.clone(), s.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &dir, &tx, &s);
                });
            }
        });
        Ok(Self { addr, rx, shared })
    }

    /// The ICE servers pages get from `/ice`.
    pub(crate) fn set_ice(&self, servers: Value) {
        *self.shared.ice.lock().unwrap_or_else(|p| p.into_inner()) =
            serde_json::json!({ "iceServers": servers });
    }

    /// Forgets signaling of an earlier call, and anything pages posted.
    pub(crate) fn reset(&self) {
        self.shared
            .mail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        while self.rx.try_recv().is_ok() {}
    }
}

/// The value of `key` in a query string.
fn query<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    target
        .split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// `GET /signal?me=…`: what is waiting for that page, after up to 20 s.
fn take_mail(shared: &Shared, me: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut mail = shared.mail.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let waiting = mail.get_mut(me).map(std::mem::take).unwrap_or_default();
        let left = deadline.saturating_duration_since(Instant::now());
        if !waiting.is_empty() || left.is_zero() {
            return waiting;
        }
        mail = shared
            .arrived
            .wait_timeout(mail, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// One HTTP/1.1 request, answered and closed.
fn serve(
    stream: TcpStream,
    dir: &Path,
    tx: &mpsc::Sender<PageMsg>,
    shared: &Shared,
) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split('?').next().unwrap_or("/");
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(16 << 20)];
    reader.read_exact(&mut body)?;
    let (status, kind, content) = match method {
        "GET" if path == "/signal" => {
            let mail = take_mail(shared, query(target, "me").unwrap_or(""));
            ("200 OK", "application/json", serde_json::to_vec(&mail)?)
        }
        "GET" if path == "/ice" => {
            let ice = shared.ice.lock().unwrap_or_else(|p| p.into_inner()).clone();
            ("200 OK", "application/json", serde_json::to_vec(&ice)?)
        }
        "POST" if path == "/signal" => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let to = query(target, "to").unwrap_or("").to_owned();
            shared
                .mail
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(to)
                .or_default()
                .push(v);
            shared.arrived.notify_all();
            ("200 OK", "text/plain", Vec::new())
        }
        "GET" => {
            let name = path.trim_start_matches('/');
            let name = if name.is_empty() { "call.html" } else { name };
            // Only files right in the page's folder.
            let safe = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                && !name.starts_with('.');
            match std::fs::read(dir.join(name)).ok().filter(|_| safe) {
                Some(bytes) => ("200 OK", content_type(name), bytes),
                None => ("404 Not Found", "text/plain", b"not found".to_vec()),
            }
        }
        "POST" => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let msg = match path {
                "/log" => Some(PageMsg::Log(v["msg"].as_str().unwrap_or("").to_owned())),
                "/mark" => Some(PageMsg::Mark(v["phase"].as_str().unwrap_or("").to_owned())),
                "/result" => Some(PageMsg::Result(v)),
                _ => None,
            };
            match msg {
                Some(m) => {
                    let _ = tx.send(m);
                    ("200 OK", "text/plain", Vec::new())
                }
                None => ("404 Not Found", "text/plain", b"not found".to_vec()),
            }
        }
        _ => ("405 Method Not Allowed", "text/plain", Vec::new()),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        content.len()
    )?;
    out.write_all(&content)?;
    out.flush()?;
    Ok(())
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// What one Chromium call measured: the page's figures, and CPU and memory
/// of every Chromium process over the same window.
#[derive(Debug)]
pub(crate) struct ChromiumResult {
    /// What the page posted (see `bench/chromium/call.js`).
    pub(crate) page: Value,
    /// CPU seconds of all Chromium processes over the window.
    pub(crate) cpu_secs: f64,
    /// The window as xtask timed it, seconds.
    pub(crate) secs: f64,
    /// Proportional set size summed over Chromium's processes at the end of
    /// the window, MB.
    pub(crate) pss_mb: f64,
    /// Resident set size, summed the same way, MB.
    pub(crate) rss_mb: f64,
    /// How many processes Chromium had.
    pub(crate) processes: usize,
    /// CPU the whole machine used over the window, seconds.
    pub(crate) machine_cpu_secs: f64,
}

/// The environment variable that marks the processes of one run.
const MARK: &str = "BECKON_BENCH_CHROMIUM";

/// Every process under `root` (its children, theirs, …), and `root`, plus
/// any process whose environment has `MARK=marker` (Chromium's crash
/// handlers detach from the tree, but inherit the environment).
pub(crate) fn tree(root: u32, marker: &str) -> Vec<u32> {
    let mut parent: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut marked = Vec::new();
    let wanted = format!("{MARK}={marker}");
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
            marked.push(pid);
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(children) = parent.get(&out[i]) {
            out.extend(children);
        }
        i += 1;
    }
    for pid in marked {
        if !out.contains(&pid) {
            out.push(pid);
        }
    }
    out
}

fn cpu_of(pids: &[u32]) -> HashMap<u32, f64> {
    pids.iter().map(|&p| (p, cpu_secs(p))).collect()
}

/// Holds one call of `members` parties at `size` in a fresh headless
/// Chromium for `hold` seconds (the first `warmup` not measured).
pub(crate) fn run_call(
    server: &PageServer,
    size: (u32, u32),
    members: usize,
    hold: f64,
    warmup: f64,
    scratch: &Path,
) -> anyhow::Result<ChromiumResult> {
    while server.rx.try_recv().is_ok() {}
    let profile = scratch.join(format!("chromium-profile-{members}-{}x{}", size.0, size.1));
    let log_path = scratch.join("chromium.log");
    let url = format!(
        "http://{}/call.html?w={}&h={}&members={members}&secs={hold}&warmup={warmup}",
        server.addr, size.0, size.1
    );
    let mut running = launch(None, &url, &profile, &log_path)?;
    let result = measure(server, &mut running, hold);
    if result.is_err() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("xtask: chromium's last lines:");
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
    }
    drop(running);
    let _ = std::fs::remove_file(&log_path);
    result
}

/// What /proc said about the measured window.
struct Window {
    secs: f64,
    cpu: f64,
    pss: f64,
    rss: f64,
    processes: usize,
    machine: f64,
}

fn measure(server: &PageServer, run: &mut Running, hold: f64) -> anyhow::Result<ChromiumResult> {
    let deadline = Instant::now() + Duration::from_secs_f64(hold + 60.0);
    let root = run.child.id();
    let marker = run.profile.to_string_lossy().into_owned();
    let child = &mut run.child;
    let mut start: Option<(Instant, f64, HashMap<u32, f64>)> = None;
    let mut end: Option<Window> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        anyhow::ensure!(!left.is_zero(), "the page did not finish in time");
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("chromium exited early ({status})");
        }
        let msg = match server.rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(e) => return Err(e.into()),
        };
        match msg {
            PageMsg::Log(m) => println!("  chromium: {m}"),
            PageMsg::Mark(phase) if phase == "start" => {
                start = Some((
                    Instant::now(),
                    machine_cpu_secs(),
                    cpu_of(&tree(root, &marker)),
                ));
            }
            PageMsg::Mark(phase) if phase == "end" => {
                let (t0, machine_before, before) =
                    start.take().context("window end before its start")?;
                let secs = t0.elapsed().as_secs_f64();
                let machine = machine_cpu_secs() - machine_before;
                // Processes may have come since the start: walk again.
                let pids = tree(root, &marker);
                let cpu: f64 = cpu_of(&pids)
                    .iter()
                    .map(|(p, c)| c - before.get(p).copied().unwrap_or(0.0))
                    .sum();
                let pss = pids.iter().map(|&p| pss_mb(p)).sum();
                let rss = pids.iter().map(|&p| rss_mb(p)).sum();
                end = Some(Window {
                    secs,
                    cpu,
                    pss,
                    rss,
                    processes: pids.len(),
                    machine,
                });
            }
            PageMsg::Mark(other) => println!("  chromium: mark {other:?}?"),
            PageMsg::Result(page) => {
                if let Some(e) = page["error"].as_str() {
                    anyhow::bail!("the page failed: {e}");
                }
                let w = end.context("the page posted its result without a measured window")?;
                return Ok(ChromiumResult {
                    page,
                    cpu_secs: w.cpu,
                    secs: w.secs,
                    pss_mb: w.pss,
                    rss_mb: w.rss,
                    processes: w.processes,
                    machine_cpu_secs: w.machine,
                });
            }
        }
    }
}

/// A Chromium that is killed, with everything it started, and whose
/// profile is removed when dropped.
struct Running {
    child: Child,
    profile: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let pid = self.child.id();
        let pids: Vec<String> = tree(pid, &self.profile.to_string_lossy())
            .iter()
            .map(u32::to_string)
            .collect();
        let _ = Command::new("kill").arg("-KILL").args(&pids).status();
        // And anything left in its process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        // Its children may still be writing the profile as they die.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts a headless Chromium in `namespace` (or here) on `url`, its
/// processes marked by `profile`, in a process group of its own so that
/// nothing it starts outlives the run.
fn launch(
    namespace: Option<&str>,
    url: &str,
    profile: &Path,
    log: &Path,
) -> anyhow::Result<Running> {
    let _ = std::fs::remove_dir_all(profile);
    std::fs::create_dir_all(profile)?;
    let mut cmd = match namespace {
        Some(ns) => beckon_netsim::world::in_namespace(ns, "chromium"),
        None => Command::new("chromium"),
    };
    let child = cmd
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .env(MARK, profile)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .process_group(0)
        .spawn()
        .context("starting chromium")?;
    Ok(Running {
        child,
        profile: profile.to_path_buf(),
    })
}

/// A 1v1 call between two Chromiums, one per namespace (`a` offers):
/// `during` runs once a's call starts (with its wall-clock start, µs) and
/// returns when whatever it plays is over. Returns both pages' results,
/// a's, then b's, the call's start and what `during` returned.
pub(crate) fn run_pair<T>(
    page: &PageServer,
    namespaces: [&str; 2],
    size: (u32, u32),
    hold: f64,
    scratch: &Path,
    during: impl FnOnce(u64) -> anyhow::Result<T>,
) -> anyhow::Result<(Value, Value, u64, T)> {
    page.reset();
    let mut running = Vec::new();
    for (role, ns) in ["a", "b"].into_iter().zip(namespaces) {
        let url = format!(
            "http://{}/net.html?role={role}&w={}&h={}&secs={hold}",
            page.addr, size.0, size.1
        );
        let profile = scratch.join(format!("chromium-net-{role}"));
        let log = scratch.join(format!("chromium-net-{role}.log"));
        running.push((role, log.clone(), launch(Some(ns), &url, &profile, &log)?));
    }
    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs_f64(hold + 60.0);
        let mut results: HashMap<String, Value> = HashMap::new();
        let mut call: Option<(u64, T)> = None;
        let mut during = Some(during);
        while results.len() < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            anyhow::ensure!(!left.is_zero(), "the pages did not finish in time");
            for (role, _, r) in &mut running {
                if let Some(status) = r.child.try_wait()? {
                    anyhow::bail!("chromium {role} exited early ({status})");
                }
            }
            match page.rx.recv_timeout(left.min(Duration::from_millis(500))) {
                Ok(PageMsg::Log(m)) => println!("  chromium: {m}"),
                Ok(PageMsg::Mark(phase)) if phase == "call-a" => {
                    let at = crate::network::wall_us();
                    let f = during.take().context("a second call start")?;
                    call = Some((at, f(at)?));
                }
                Ok(PageMsg::Mark(_)) => {}
                Ok(PageMsg::Result(v)) => {
                    if let Some(e) = v["error"].as_str() {
                        anyhow::bail!("page {} failed: {e}", v["role"]);
                    }
                    results.insert(v["role"].as_str().unwrap_or("?").to_owned(), v);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let (at, t) = call.context("the call never started")?;
        Ok((
            results.remove("a").context("no result from a")?,
            results.remove("b").context("no result from b")?,
            at,
            t,
        ))
    })();
    if result.is_err() {
        for (role, log, _) in &running {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            eprintln!("xtask: chromium {role}'s last lines:");
            for l in tail.iter().rev() {
                eprintln!("  {l}");
            }
        }
    }
    for (_, log, r) in running {
        drop(r);
        let _ = std::fs::remove_file(log);
    }
    result
}
