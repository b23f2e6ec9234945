//! `cargo xtask bench media`: real calls between `beckon-peer` processes on
//! loopback with synthetic media, measured from the outside (CPU and memory
//! from /proc) and from the inside (every decoded frame's burned-in capture
//! time), and the same calls in headless Chromium (see `chromium.rs`), side
//! by side. Writes `docs/benchmarks.md`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::chromium::{self, ChromiumResult};
use crate::deps;
use crate::procs::{Line, ServerProc, bin_dir, scratch, spawn_peer, wait_for};

struct Scenario {
    name: &'static str,
    size: (u32, u32),
    members: usize,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "1v1 640×480@30",
        size: (640, 480),
        members: 2,
    },
    Scenario {
        name: "1v1 1280×720@30",
        size: (1280, 720),
        members: 2,
    },
    Scenario {
        name: "4-party mesh 640×360@30",
        size: (640, 360),
        members: 4,
    },
];

/// What one scenario measured.
#[derive(Debug, Default)]
struct Result {
    latency_mean: f64,
    latency_p50: f64,
    latency_p95: f64,
    first_frame_ms: u64,
    /// The longest any receiving end waited from the offer of its link
    /// being created to its first decoded frame.
    offer_first_frame_ms: Option<f64>,
    encode_ms: f64,
    decode_ms: f64,
    cpu_pct_total: f64,
    cpu_pct_per_peer: f64,
    rss_mb_mean: f64,
    rss_mb_max: f64,
    /// CPU of the server over the window, seconds.
    server_cpu_secs: f64,
    /// Peers and server, summed at the end of the window, MB.
    pss_mb_total: f64,
    rss_mb_total: f64,
    frames_received: u64,
    frames_sent: u64,
    /// Decoded frames per second of call, per stream received.
    fps_per_stream: f64,
    /// Decoded sizes seen, e.g. "640x480".
    sizes: Vec<String>,
    secs: f64,
    /// CPU of the peers over the window, seconds.
    cpu_secs: f64,
    /// CPU the whole machine used over the window, seconds.
    machine_cpu_secs: f64,
}

/// How many times a side runs again when other processes disturbed it.
const RETRIES: usize = 2;

/// Whether other processes used so much CPU (cores) during a window that
/// it should run again.
fn busy(other: f64, attempt: usize) -> bool {
    let busy = other > 0.2;
    if busy && attempt < RETRIES {
        println!("xtask: other processes used {other:.2} cores during the window; once more");
    }
    busy
}

/// How long a call runs before its measured window starts.
fn warmup(hold: f64) -> Duration {
    Duration::from_secs(3).min(Duration::from_secs_f64(hold / 4.0))
}

/// The number after `--secs`, or `default`.
pub(crate) fn secs_arg(args: &[String], default: f64) -> anyhow::Result<f64> {
    args.iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(default), |s| s.parse())
        .context("--secs takes a number")
}

/// Replaces one benchmark's section of `docs/benchmarks.md` (between its
/// markers), keeping the others.
pub(crate) fn write_section(name: &str, body: &str) -> anyhow::Result<()> {
    let path = crate::root().join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &old[..a], &old[b + end.len()..]),
        _ if old.trim().is_empty() => format!("# Benchmarks\n\n{section}\n"),
        _ => format!("{}\n\n{section}\n", old.trim_end()),
    };
    std::fs::write(&path, new)?;
    println!("xtask: wrote the {name} section of docs/benchmarks.md");
    Ok(())
}

pub(crate) fn bench(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("media") | None => {}
        Some("app") => return crate::app::bench_app(&args[1..]),
        Some("signaling") => return crate::signaling_bench::bench_signaling(&args[1..]),
        Some("network") => return crate::network::bench(&args[1..]),
        Some(other) => {
            anyhow::bail!(
                "unknown benchmark {other:?}; try `cargo xtask bench media` or `bench app`"
            )
        }
    }
    let hold = secs_arg(args, 15.0)?;
    deps::ensure(deps::Purpose::Run)?;
    chromium::ensure_installed()?;
    crate::procs::build_release(&["beckon-server", "beckon-peer"])?;
    let bin = bin_dir("release");
    let dir = scratch("bench")?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    if load
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|l| l > 0.5)
    {
        println!(
            "xtask: the machine is busy (load average {}); CPU and latency will be pessimistic",
            load.trim()
        );
    }
    let started = Instant::now();
    let server = ServerProc::start(&bin, &dir)?;
    let page = chromium::PageServer::start()?;
    let version = chromium::version();
    let mut results = Vec::new();
    let mut runs = 0;
    for s in SCENARIOS {
        // A side whose window the rest of the machine disturbed runs again
        // (twice at most), and the report says how much else ran.
        let mut r = None;
        for attempt in 0..=RETRIES {
            println!("\nxtask: {} for {hold} s, beckon-peer", s.name);
            let b = run_scenario(&bin, &server, runs, s, hold)?;
            runs += 1;
            println!("{b:#?}");
            let other = (b.machine_cpu_secs - b.cpu_secs - b.server_cpu_secs) / b.secs;
            r = Some(b);
            if !busy(other, attempt) {
                break;
            }
        }
        let mut c = None;
        for attempt in 0..=RETRIES {
            println!("\nxtask: {} for {hold} s, {version}", s.name);
            let run = chromium::run_call(
                &page,
                s.size,
                s.members,
                hold,
                warmup(hold).as_secs_f64(),
                &dir,
            )?;
            println!("{run:#?}");
            let other = (run.machine_cpu_secs - run.cpu_secs) / run.secs;
            c = Some(run);
            if !busy(other, attempt) {
                break;
            }
        }
        results.push((s, r.expect("ran"), c.expect("ran")));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let took = started.elapsed().as_secs_f64();
    println!("\n{}", comparison(&results));
    let report = report(&results, hold, &version, took);
    println!("\n{report}");
    write_section("media", &report)?;
    Ok(())
}

fn run_scenario(
    bin: &std::path::Path,
    server: &ServerProc,
    n: usize,
    s: &Scenario,
    hold: f64,
) -> anyhow::Result<Result> {
    let url = &server.url;
    let (tx, rx) = mpsc::channel::<Line>();
    let size = format!("{}x{}", s.size.0, s.size.1);
    let common = [
        "--udp-addr",
        "127.0.0.1:0",
        "--video-size",
        &size,
        "--stats-every-secs",
        "0",
        "--exit-after-call",
        "--exit-after-secs",
        "120",
    ];
    let names: Vec<String> = (0..s.members).map(|i| format!("bench{n}m{i}")).collect();
    let mut children: Vec<(String, Child)> = Vec::new();
    for callee in &names[1..] {
        let child = spawn_peer(
            bin,
            url,
            callee,
            &[&common[..], &["--hangup", "stay"]].concat(),
            &tx,
        )?;
        children.push((callee.clone(), child));
        wait_for(&rx, callee, "signed_in", Duration::from_secs(30), |_| {})?;
    }
    let callees = names[1..].join(",");
    let hold_s = format!("{hold}");
    let caller = spawn_peer(
        bin,
        url,
        &names[0],
        &[
            &common[..],
            &[
                "--call",
                &callees,
                "--hold-secs",
                &hold_s,
                "--hangup",
                "end",
            ],
        ]
        .concat(),
        &tx,
    )?;
    children.insert(0, (names[0].clone(), caller));
    drop(tx);
    let mut lines: Vec<Line> = Vec::new();
    wait_for(
        &rx,
        &names[0],
        "call_started",
        Duration::from_secs(30),
        |l| lines.push(l.clone()),
    )?;
    // Let every member join and the encoders settle, then measure.
    let warmup = warmup(hold);
    collect_for(&rx, warmup, &mut lines);
    let cpu_before: Vec<f64> = children.iter().map(|(_, c)| cpu_secs(c.id())).collect();
    let server_before = cpu_secs(server.pid());
    let machine_before = machine_cpu_secs();
    let t0 = Instant::now();
    let window = Duration::from_secs_f64(hold) - warmup - Duration::from_millis(500);
    collect_for(&rx, window, &mut lines);
    let secs = t0.elapsed().as_secs_f64();
    let cpu: Vec<f64> = children
        .iter()
        .zip(&cpu_before)
        .map(|((_, c), b)| cpu_secs(c.id()) - b)
        .collect();
    let server_cpu_secs = cpu_secs(server.pid()) - server_before;
    let machine_cpu_secs = machine_cpu_secs() - machine_before;
    let rss: Vec<f64> = children.iter().map(|(_, c)| rss_mb(c.id())).collect();
    let pss_mb_total =
        children.iter().map(|(_, c)| pss_mb(c.id())).sum::<f64>() + pss_mb(server.pid());
    let rss_mb_total = rss.iter().sum::<f64>() + rss_mb(server.pid());
    lines.extend(rx.iter());
    for (name, mut c) in children {
        let ok = c.wait()?.success();
        anyhow::ensure!(ok, "{name} failed");
    }
    let summaries: HashMap<String, Value> = lines
        .iter()
        .filter(|(_, e)| e["event"] == "media_summary")
        .map(|(w, e)| (w.clone(), e.clone()))
        .collect();
    anyhow::ensure!(
        summaries.len() == s.members,
        "only {} of {} peers reported media",
        summaries.len(),
        s.members
    );
    let received: Vec<&Value> = summaries
        .values()
        .flat_map(|s| s["members"].as_array().into_iter().flatten())
        .collect();
    anyhow::ensure!(
        received.len() == s.members * (s.members - 1),
        "not every member received every other"
    );
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let mut p50s: Vec<f64> = received.iter().map(|m| f(m, "latency_ms_p50")).collect();
    p50s.sort_by(f64::total_cmp);
    let frames: Vec<f64> = received.iter().map(|m| f(m, "frames")).collect();
    let total_frames: f64 = frames.iter().sum();
    let mean = received
        .iter()
        .zip(&frames)
        .map(|(m, n)| f(m, "latency_ms_mean") * n)
        .sum::<f64>()
        / total_frames;
    let call_secs = summaries.values().map(|s| f(s, "secs")).sum::<f64>() / s.members as f64;
    Ok(Result {
        offer_first_frame_ms: offer_to_first_frame(&summaries),
        server_cpu_secs,
        pss_mb_total,
        rss_mb_total,
        fps_per_stream: total_frames / received.len() as f64 / call_secs,
        sizes: {
            let mut v: Vec<String> = received
                .iter()
                .filter_map(|m| m["size"].as_str().map(str::to_owned))
                .collect();
            v.sort();
            v.dedup();
            v
        },
        cpu_secs: cpu.iter().sum(),
        machine_cpu_secs,
        latency_mean: mean,
        latency_p50: p50s[p50s.len() / 2],
        latency_p95: received
            .iter()
            .map(|m| f(m, "latency_ms_p95"))
            .fold(0.0, f64::max),
        first_frame_ms: received
            .iter()
            .filter_map(|m| m["first_frame_ms"].as_u64())
            .max()
            .unwrap_or(0),
        encode_ms: summaries.values().map(|s| f(s, "encode_ms")).sum::<f64>() / s.members as f64,
        decode_ms: received.iter().map(|m| f(m, "decode_ms")).sum::<f64>() / received.len() as f64,
        cpu_pct_total: cpu.iter().sum::<f64>() / secs * 100.0,
        cpu_pct_per_peer: cpu.iter().sum::<f64>() / secs * 100.0 / s.members as f64,
        rss_mb_mean: rss.iter().sum::<f64>() / rss.len() as f64,
        rss_mb_max: rss.iter().copied().fold(0.0, f64::max),
        frames_received: total_frames as u64,
        frames_sent: summaries
            .values()
            .map(|s| s["sent_frames"].as_u64().unwrap_or(0))
            .sum(),
        secs,
    })
}

/// The longest wait any receiving end had from the offer of its link being
/// created (by either end) to its first decoded frame, from the wall-clock
/// times the peers report.
fn offer_to_first_frame(summaries: &HashMap<String, Value>) -> Option<f64> {
    let mut offers: HashMap<(&str, &str), u64> = HashMap::new();
    let mut firsts: Vec<(&str, &str, u64)> = Vec::new();
    for (me, s) in summaries {
        for m in s["members"].as_array().into_iter().flatten() {
            let who = m["who"].as_str().unwrap_or_default();
            if let Some(t) = m["offered_at_us"].as_u64() {
                offers.insert((me.as_str(), who), t);
            }
            if let Some(t) = m["first_frame_at_us"].as_u64() {
                firsts.push((me.as_str(), who, t));
            }
        }
    }
    firsts
        .iter()
        .map(|&(me, who, first)| {
            let offer = [offers.get(&(me, who)), offers.get(&(who, me))]
                .into_iter()
                .flatten()
                .min()?;
            Some(first.saturating_sub(*offer) as f64 / 1000.0)
        })
        .collect::<Option<Vec<f64>>>()?
        .into_iter()
        .reduce(f64::max)
}

fn collect_for(rx: &mpsc::Receiver<Line>, d: Duration, lines: &mut Vec<Line>) {
    let end = Instant::now() + d;
    while let Ok(l) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        lines.push(l);
    }
}

/// User plus system CPU seconds a process has used.
pub(crate) fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clock_ticks()
}

/// CPU seconds the whole machine has been busy (every core, everything but
/// idle and waiting for I/O), from /proc/stat.
pub(crate) fn machine_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: f64 = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| {
            l.split_whitespace()
                .enumerate()
                // user nice system idle iowait irq softirq steal
                .filter(|(i, _)| ![3, 4].contains(i) && *i < 8)
                .filter_map(|(_, v)| v.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The first number on the line that starts with `key` in
/// `/proc/<pid>/<file>` (lines like `VmRSS:    1234 kB`).
pub(crate) fn proc_field(pid: u32, file: &str, key: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Proportional set size of a process (its own pages, plus its share of
/// the pages it shares with others), MB.
pub(crate) fn pss_mb(pid: u32) -> f64 {
    proc_field(pid, "smaps_rollup", "Pss:").map_or(0.0, |kb| kb / 1024.0)
}

/// Resident memory of a process, MB.
pub(crate) fn rss_mb(pid: u32) -> f64 {
    proc_field(pid, "status", "VmRSS:").map_or(0.0, |kb| kb / 1024.0)
}

/// The time now, as `2026-12-02 14:05 UTC`.
pub(crate) fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Cores, CPU model, memory and kernel of this machine.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem:.0} GiB, Linux {kernel}")
}

type Row<'a> = (&'a Scenario, Result, ChromiumResult);

/// One line of the comparison: its name, Beckon's and Chromium's figure as
/// shown, and as numbers for the ratio.
type Measure = (&'static str, String, String, Option<f64>, Option<f64>);

/// Beckon, Chromium and their ratio for every scenario, as a Markdown table.
fn comparison(results: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| scenario | measure | Beckon | Chromium | Beckon/Chromium |\n|---|---|---|---|---|"
    );
    for (sc, b, c) in results {
        let page = &c.page;
        let num = |k: &str| page[k].as_f64();
        let streams = (sc.members * (sc.members - 1)) as f64;
        let c_decoded = num("frames_decoded").unwrap_or(0.0);
        let c_sent = num("frames_sent").unwrap_or(0.0);
        let c_secs = num("secs").unwrap_or(c.secs);
        let b_cpu = (b.cpu_secs + b.server_cpu_secs) / b.secs;
        let c_cpu = c.cpu_secs / c.secs;
        // Beckon encodes a frame once and sends it to every other party;
        // Chromium encodes it once per connection. Both: frames per stream.
        let b_sent = b.frames_sent * (sc.members as u64 - 1);
        let b_delivered = b.frames_received as f64 / b_sent as f64;
        let c_delivered = c_decoded / c_sent;
        let ms = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1} ms"));
        let rows: Vec<Measure> = vec![
            (
                "glass-to-glass mean",
                ms(Some(b.latency_mean)),
                ms(num("latency_ms_mean")),
                Some(b.latency_mean),
                num("latency_ms_mean"),
            ),
            (
                "glass-to-glass p50",
                ms(Some(b.latency_p50)),
                ms(num("latency_ms_p50")),
                Some(b.latency_p50),
                num("latency_ms_p50"),
            ),
            (
                "glass-to-glass p95",
                ms(Some(b.latency_p95)),
                ms(num("latency_ms_p95")),
                Some(b.latency_p95),
                num("latency_ms_p95"),
            ),
            (
                "offer → first decoded frame (slowest end)",
                ms(b.offer_first_frame_ms),
                ms(num("first_frame_ms")),
                b.offer_first_frame_ms,
                num("first_frame_ms"),
            ),
            (
                "CPU seconds per call-second, all processes",
                format!("{b_cpu:.3}"),
                format!("{c_cpu:.3}"),
                Some(b_cpu),
                Some(c_cpu),
            ),
            (
                "memory (PSS), all processes",
                format!("{:.0} MB", b.pss_mb_total),
                format!("{:.0} MB", c.pss_mb),
                Some(b.pss_mb_total),
                Some(c.pss_mb),
            ),
            (
                "memory (RSS summed), all processes",
                format!("{:.0} MB", b.rss_mb_total),
                format!("{:.0} MB", c.rss_mb),
                Some(b.rss_mb_total),
                Some(c.rss_mb),
            ),
            (
                "frames decoded / sent",
                format!(
                    "{} / {b_sent} ({:.1} %)",
                    b.frames_received,
                    b_delivered * 100.0
                ),
                format!(
                    "{c_decoded:.0} / {c_sent:.0} ({:.1} %)",
                    c_delivered * 100.0
                ),
                Some(b_delivered),
                Some(c_delivered),
            ),
            (
                "decoded frames per second, per stream",
                format!("{:.1}", b.fps_per_stream),
                format!("{:.1}", c_decoded / streams / c_secs),
                Some(b.fps_per_stream),
                Some(c_decoded / streams / c_secs),
            ),
        ];
        for (i, (name, bv, cv, bn, cn)) in rows.into_iter().enumerate() {
            let ratio = match (bn, cn) {
                (Some(b), Some(c)) if c > 0.0 => format!("{:.2}", b / c),
                _ => "–".into(),
            };
            let label = if i == 0 { sc.name } else { "" };
            let _ = writeln!(s, "| {label} | {name} | {bv} | {cv} | {ratio} |");
        }
        let c_sizes: Vec<&str> = page["decoded_sizes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            s,
            "|  | decoded resolution | {} | {} | |",
            b.sizes.join(", ").replace('x', "×"),
            c_sizes.join(", ").replace('x', "×")
        );
    }
    s
}

fn report(results: &[Row], hold: f64, version: &str, took: f64) -> String {
    let mut s = String::new();
    let date = now_utc();
    let warm = warmup(hold).as_secs_f64();
    let window = hold - warm - 0.5;
    let _ = writeln!(s, "## Media engine: Beckon against headless Chromium\n");
    let _ = writeln!(
        s,
        "Regenerated by `cargo xtask bench media` (release build). Last run: {date}, on {}; \
         {version}. The calls took {:.0} s in all.\n",
        machine(),
        took
    );
    let _ = writeln!(
        s,
        "Each scenario is held twice on the same machine in the same run, {hold} s each: once as \
         a real call between `beckon-peer` processes through a local `beckon-server`, and once \
         in headless Chromium. Both send VP8 and Opus over WebRTC on loopback (127.0.0.1): a \
         synthetic camera (the same test pattern, with the frame number and the capture time \
         burned in as a 72-bit stamp) and a tone. A 4-party call is a full mesh: every party \
         sends its own stream to each of the other three (6 connections, 12 streams).\n\n\
         - **Beckon**: one `beckon-peer` process per party, `--video-size` at the scenario's \
         size, synthetic camera and tone microphone.\n\
         - **Chromium**: one page (`bench/chromium/call.html`, `call.js`), served by xtask on \
         127.0.0.1, holds the whole call: per party a canvas redrawn 30 times a second with the \
         pattern and `canvas.captureStream(30)`, a WebAudio oscillator into a \
         `MediaStreamAudioDestinationNode`, received audio played silently (a muted media element \
         and WebAudio at gain 0, as Beckon's peers decode and mix into a null speaker), and per pair of parties two `RTCPeerConnection`s, \
         one at each end (no ICE servers). VP8 is forced with `setCodecPreferences`; each video \
         sender gets `scaleResolutionDownBy: 1`, `maxBitrate` 0.12 bit per pixel at 30 fps and \
         `degradationPreference: 'maintain-resolution'`, so it keeps the full size. Every \
         received video track is read with `MediaStreamTrackProcessor`; the stamp's rows of \
         every decoded frame are copied out (`VideoFrame.copyTo`) and read like Beckon reads \
         them (mean of each block's middle, threshold 128, CRC-8). Chromium runs as \
         `chromium {} --user-data-dir=<fresh directory> <page>`; `--autoplay-policy` lets \
         WebAudio start without a click.\n",
        chromium::FLAGS.join(" ")
    );
    let _ = writeln!(
        s,
        "What is measured, the same way on both sides where it can be:\n\n\
         - **Glass-to-glass**: each decoded frame's burned-in capture time subtracted from the \
         time it came out of the decoder (same clock, same machine). Beckon: every frame of the \
         call; Chromium: every frame of the measured window (its first seconds, while its \
         bandwidth estimate ramps up, are left out).\n\
         - **Offer → first decoded frame**: per connection, from the moment its offer is \
         created (Beckon: the offering peer asks its connection for an offer, right after the \
         call starts; Chromium: `createOffer()`) to the first decoded frame at each receiving \
         end; the slowest end of any connection. Beckon's signaling goes through the server, \
         Chromium's is a function call in the page.\n\
         - **CPU seconds per call-second**: user+system time from /proc over the measured \
         window ({window:.1} s, after a {warm:.0} s warm-up), of all processes involved: Beckon's \
         peers and the server; every process Chromium started (browser, zygotes, renderer, GPU, \
         network, storage and audio utility processes, crash handlers), walked from /proc at the window's start and end. \
         1.0 is one core fully busy; this machine has {} cores.\n\
         - **Memory**: at the end of the window, summed over the same processes: PSS (each \
         process's share of shared pages, from `/proc/<pid>/smaps_rollup`, so that what \
         Chromium's processes share is counted once) and RSS summed (which counts shared pages \
         once per process).\n\
         - **Frames**: Beckon counts over the whole call, Chromium over the measured window \
         (getStats: `framesSent` of every outbound and `framesDecoded` of every inbound video \
         stream). Sent counts frames per stream: Beckon encodes each frame once and sends it to \
         every other party (in a 4-party call: encoded frames × 3), Chromium encodes it once per \
         connection. Decoded frames per second is per stream received.\n\
         - **Decoded resolution**: Beckon, from its decoded frames; Chromium, `frameWidth` × \
         `frameHeight` of its inbound streams.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        s,
        "Where the two differ, beyond the engine itself: Chromium's camera is a 2D canvas \
         that the page draws (the stamp's time is taken as it draws) and Chromium then captures, \
         a path of its own that a real camera would not take; Beckon's synthetic camera hands its \
         frames straight to the encoder. The whole Chromium call is one page, so every party \
         shares one renderer and one browser process; Beckon runs a process per party. Both encode \
         and decode in software (libvpx; Chromium has `--disable-gpu`), on the same 2 cores.\n\n\
         A ratio below 1 means Beckon needs less (time, CPU, memory); for frames, above 1 means \
         Beckon delivers more.\n"
    );
    let _ = writeln!(s, "{}", comparison(results));
    let _ = writeln!(s, "### Beckon in detail\n");
    let _ = writeln!(
        s,
        "Encode and decode times are per frame, as the peers measure them. CPU is of the peers \
         alone (the server's is in the table above); RSS per peer at the end of the window. First \
         frame here is from accept: the longest wait any member had from its answer (or, for the \
         caller, from the answer reaching it) to the first decoded frame of another member.\n"
    );
    let _ = writeln!(
        s,
        "| scenario | window | first frame from accept | encode/frame | decode/frame | CPU, all peers | CPU per peer | server CPU | RSS per peer (mean / max) | other load |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for (sc, r, _) in results {
        let _ = writeln!(
            s,
            "| {} | {:.0} s | {} ms | {:.2} ms | {:.2} ms | {:.1} % | {:.1} % | {:.1} % | {:.1} / {:.1} MB | {:.2} |",
            sc.name,
            r.secs,
            r.first_frame_ms,
            r.encode_ms,
            r.decode_ms,
            r.cpu_pct_total,
            r.cpu_pct_per_peer,
            r.server_cpu_secs / r.secs * 100.0,
            r.rss_mb_mean,
            r.rss_mb_max,
            ((r.machine_cpu_secs - r.cpu_secs - r.server_cpu_secs) / r.secs).max(0.0),
        );
    }
    let _ = writeln!(s, "\n### Chromium in detail\n");
    let _ = writeln!(
        s,
        "| scenario | window | processes | frames read / stamp read | frame format | quality limited by | audio played, per stream | other load |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for (sc, _, c) in results {
        let list = |k: &str| {
            c.page[k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "| {} | {:.0} s | {} | {} / {} | {} | {} | {:.1} kHz | {:.2} |",
            sc.name,
            c.secs,
            c.processes,
            c.page["frames_read"],
            c.page["frames_stamped"],
            list("frame_formats"),
            list("quality_limitation"),
            c.page["audio_samples_per_sec_per_stream"]
                .as_f64()
                .unwrap_or(0.0)
                / 1000.0,
            ((c.machine_cpu_secs - c.cpu_secs) / c.secs).max(0.0),
        );
    }
    let _ = writeln!(
        s,
        "\nFrames read and stamps read count every frame the page got from the receivers over \
         the whole call; a stamp that does not check out is left out of the latency. Audio played \
         is the samples per second each received audio stream's jitter buffer handed out over the \
         window (getStats `totalSamplesReceived`): 48 kHz is real time, more means it caught up \
         after a stall.\n\n\
         Other load is the CPU the rest of the machine used during the window (all of /proc/stat \
         minus the processes measured), in cores: near 0 when nothing else ran. A side that saw \
         more than 0.2 runs again, twice at most; a figure still well above 0 means the run shared \
         the machine and its CPU and latency figures are pessimistic."
    );
    let _ = writeln!(s, "\n### Targets (issue: media engine)\n");
    let _ = writeln!(
        s,
        "Beckon's targets: glass-to-glass mean under 30 ms, accept to first decoded frame under \
         200 ms, the whole 1v1 call under 25 % of one core, under 50 MB resident per peer. Headless \
         Chromium on the same call, in this run: see the table above.\n"
    );
    if let Some((_, r, c)) = results.first() {
        let check = |ok: bool| if ok { "met" } else { "NOT met" };
        let _ = writeln!(s, "| target (1v1 640×480) | Beckon | | Chromium |");
        let _ = writeln!(s, "|---|---|---|---|");
        let _ = writeln!(
            s,
            "| glass-to-glass mean < 30 ms | {:.1} ms | {} | {:.1} ms |",
            r.latency_mean,
            check(r.latency_mean < 30.0),
            c.page["latency_ms_mean"].as_f64().unwrap_or(f64::NAN)
        );
        let _ = writeln!(
            s,
            "| accept → first frame < 200 ms | {} ms | {} | {:.0} ms (from the offer) |",
            r.first_frame_ms,
            check(r.first_frame_ms < 200),
            c.page["first_frame_ms"].as_f64().unwrap_or(f64::NAN)
        );
        let _ = writeln!(
            s,
            "| both peers < 25 % of a core | {:.1} % | {} | {:.1} % (every process) |",
            r.cpu_pct_total,
            check(r.cpu_pct_total < 25.0),
            c.cpu_secs / c.secs * 100.0
        );
        let _ = writeln!(
            s,
            "| < 50 MB per peer | {:.1} MB | {} | {:.0} MB PSS (both parties) |",
            r.rss_mb_max,
            check(r.rss_mb_max < 50.0),
            c.pss_mb
        );
    }
    let _ = writeln!(
        s,
        "\n### How to read and rerun\n\n\
         `cargo xtask bench media [--secs N]` (default 15) builds release binaries, installs \
         Debian's `chromium` if it is missing, and runs the calls above. Figures vary by a few \
         percent between runs on a shared 2-core machine; the CPU share is the most sensitive. \
         Chromium here has no GPU and draws and encodes in software, as Beckon does.\n\n\
         Profiled before tuning (perf, `cpu-clock` sampling, one peer of a 1v1 640×480 call): libvpx \
         took 59 % of the peer's CPU, the synthetic test pattern 7 %, Opus's encoder 8 %, the kernel \
         (UDP, scheduling) about 10 %. Tuned since: VP8 `cpu-used` 16 on machines with up to four \
         cores (encode 0.9 ms instead of 1.7 ms a frame), Opus complexity 5, the test pattern's still \
         background drawn once. `cargo run --release -p beckon-media --example vp8_speed -- 640x480 16` \
         measures the codec alone."
    );
    s
}

/// The app benchmark's section of `docs/benchmarks.md`, from what
/// `e2e/bench-app.mjs` measured.
pub(crate) fn app_report(r: &Value, hold: f64, bundle_dir: &std::path::Path) -> String {
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mb = |v: &Value| format!("{:.0} MB", num(v));
    let pct = |v: &Value| format!("{:.0} %", num(v));
    let split = |v: &Value, unit: &str| {
        v.as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, x)| format!("{k} {:.0}{unit}", num(x)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let mut s = String::new();
    let _ = writeln!(s, "## The desktop app: footprint and the video path\n");
    let _ = writeln!(
        s,
        "Regenerated by `cargo xtask bench app` (release build). Last run: {}, on {}.\n",
        now_utc(),
        machine()
    );
    let _ = writeln!(
        s,
        "The real app in a real window (Xvfb, no GPU: WebKit draws in software; the app turns \
         WebKit's compositing off when there is no GPU), driven through tauri-driver, against a \
         local `beckon-server` and `beckon-peer`s that send a 30 fps test pattern. The app uses \
         the synthetic camera and tone too. CPU is user+system time of the app and every process it \
         started (WebKit's web and network processes), over {hold} s, as percent of one core; memory is \
         their proportional set size (PSS: resident memory with pages shared between the processes \
         counted once) summed, and beside it the plain sum of their resident set sizes (RSS), \
         which counts WebKit's shared libraries once per process. Frames per second are frames drawn by each tile's canvas \
         (WebGL), counted in the page. Peers run on the same 2 cores and take their share.\n"
    );
    let _ = writeln!(
        s,
        "| measurement | value |\n|---|---|\n| first start to interactive (fresh profile, first view shown) | {:.0} ms |\n\
         | cold start to interactive home view (signed-in profile, session resumed{}) | {:.0} ms |\n\
         | idle at home: CPU | {} ({}) |\n| idle at home: memory | {} PSS ({}); {:.0} MB RSS summed |\n\
         | 1v1 video call (640×480@30): remote tile | {:.1} fps |\n| 1v1 video call: self view | {:.1} fps |\n\
         | 1v1 video call: CPU | {} ({}) |\n| 1v1 video call: memory | {} PSS ({}); {:.0} MB RSS summed |",
        num(&r["startToInteractiveMs"]),
        if r["pageCacheDropped"].as_bool() == Some(true) {
            ", kernel page cache dropped first"
        } else {
            "; the page cache could not be dropped, so files were cached"
        },
        num(&r["coldStartToHomeMs"]),
        pct(&r["idle"]["cpuPct"]),
        split(&r["idle"]["cpuByProcess"], " %"),
        mb(&r["idle"]["pssMb"]),
        split(&r["idle"]["byProcessMb"], " MB"),
        num(&r["idle"]["rssMb"]),
        num(&r["call1v1"]["fps"]),
        num(&r["call1v1"]["selfFps"]),
        pct(&r["call1v1"]["cpuPct"]),
        split(&r["call1v1"]["cpuByProcess"], " %"),
        mb(&r["call1v1"]["pssMb"]),
        split(&r["call1v1"]["byProcessMb"], " MB"),
        num(&r["call1v1"]["rssMb"]),
    );
    let size = |p: std::path::PathBuf| {
        std::fs::metadata(&p)
            .map(|m| format!("{:.1} MB", m.len() as f64 / 1e6))
            .unwrap_or_else(|_| "not built".into())
    };
    let deb = std::fs::read_dir(bundle_dir)
        .ok()
        .and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "deb"))
        })
        .map_or("not built (`cargo xtask bundle`)".to_owned(), size);
    let _ = writeln!(
        s,
        "| release binary | {} |\n| `.deb` | {deb} |\n",
        size(bin_dir("release").join("beckon"))
    );
    let _ = writeln!(
        s,
        "### Frames per second delivered to the window\n\nRemote 640×360@30 streams in a group call, plus the self view (captured at 640×480, sent to the window at 320×240).\n\n\
         | remote tiles | fps per remote tile | self view fps | CPU, app processes | memory (PSS) |\n|---|---|---|---|---|"
    );
    for t in r["tiles"].as_array().into_iter().flatten() {
        let tiles: Vec<String> = t["fpsPerTile"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| format!("{:.1}", num(f)))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} ({}) | {} |",
            t["remote"],
            tiles.join(" / "),
            num(&t["selfFps"]),
            pct(&t["cpuPct"]),
            split(&t["cpuByProcess"], " %"),
            mb(&t["pssMb"]),
        );
    }
    s
}
