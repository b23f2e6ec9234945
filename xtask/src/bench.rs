//! `cargo xtask bench media`: real calls between `beckon-peer` processes on
//! loopback with synthetic media, measured from the outside (CPU and memory
//! from /proc) and from the inside (every decoded frame's burned-in capture
//! time). Writes `docs/benchmarks.md`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

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
        name: "4-party 640×480@30",
        size: (640, 480),
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
    encode_ms: f64,
    decode_ms: f64,
    cpu_pct_total: f64,
    cpu_pct_per_peer: f64,
    rss_mb_mean: f64,
    rss_mb_max: f64,
    frames_received: u64,
    frames_sent: u64,
    secs: f64,
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
        Some(other) => {
            anyhow::bail!(
                "unknown benchmark {other:?}; try `cargo xtask bench media` or `bench app`"
            )
        }
    }
    let hold = secs_arg(args, 20.0)?;
    deps::ensure(deps::Purpose::Run)?;
    println!("xtask: building beckon-server and beckon-peer (release)");
    let status = crate::cargo(&[
        "build",
        "--release",
        "-p",
        "beckon-server",
        "-p",
        "beckon-peer",
    ])
    .status()?;
    anyhow::ensure!(status.success(), "build failed");
    let bin = bin_dir("release");
    let dir = scratch("bench")?;
    let server = ServerProc::start(&bin, &dir)?;
    let mut results = Vec::new();
    for (i, s) in SCENARIOS.iter().enumerate() {
        println!("\nxtask: {} for {hold} s", s.name);
        let r = run_scenario(&bin, &server.url, i, s, hold)?;
        println!("{r:#?}");
        results.push((s, r));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let report = report(&results, hold);
    println!("\n{report}");
    write_section("media", &report)?;
    Ok(())
}

fn run_scenario(
    bin: &std::path::Path,
    url: &str,
    n: usize,
    s: &Scenario,
    hold: f64,
) -> anyhow::Result<Result> {
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
    let warmup = Duration::from_secs(3).min(Duration::from_secs_f64(hold / 4.0));
    collect_for(&rx, warmup, &mut lines);
    let cpu_before: Vec<f64> = children.iter().map(|(_, c)| cpu_secs(c.id())).collect();
    let t0 = Instant::now();
    let window = Duration::from_secs_f64(hold) - warmup - Duration::from_millis(500);
    collect_for(&rx, window, &mut lines);
    let secs = t0.elapsed().as_secs_f64();
    let cpu: Vec<f64> = children
        .iter()
        .zip(&cpu_before)
        .map(|((_, c), b)| cpu_secs(c.id()) - b)
        .collect();
    let rss: Vec<f64> = children.iter().map(|(_, c)| rss_mb(c.id())).collect();
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
    Ok(Result {
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

fn collect_for(rx: &mpsc::Receiver<Line>, d: Duration, lines: &mut Vec<Line>) {
    let end = Instant::now() + d;
    while let Ok(l) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        lines.push(l);
    }
}

/// User plus system CPU seconds a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident memory of a process, MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn machine() -> String {
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

fn report(results: &[(&Scenario, Result)], hold: f64) -> String {
    let mut s = String::new();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(s, "## Media engine: calls between beckon-peer processes\n");
    let _ = writeln!(
        s,
        "Regenerated by `cargo xtask bench media` (release build). Last run: {date}, on {}.\n",
        machine()
    );
    let _ = writeln!(
        s,
        "Each scenario is a real call between `beckon-peer` processes through a local `beckon-server`, \
         media over WebRTC on loopback (127.0.0.1), synthetic camera (test pattern) and tone microphone, \
         held {hold} s. Glass-to-glass latency is each decoded frame's burned-in capture time subtracted \
         from the time it was decoded, over every frame of the call. CPU is user+system time of all peer \
         processes of the call (from /proc) over the measured window after a warm-up, as percent of one \
         core. Memory is resident set size per peer process at the end of the window. First frame is \
         the longest wait any member had from its answer (or, for the caller, from the answer reaching \
         it) to the first decoded frame of another member.\n"
    );
    let _ = writeln!(
        s,
        "| scenario | window | g2g mean | g2g p50 | g2g p95 | first frame | encode/frame | decode/frame | CPU, all peers | CPU per peer | RSS per peer (mean / max) | frames sent / decoded |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (sc, r) in results {
        let _ = writeln!(
            s,
            "| {} | {:.0} s | {:.1} ms | {:.1} ms | {:.1} ms | {} ms | {:.2} ms | {:.2} ms | {:.1} % | {:.1} % | {:.1} / {:.1} MB | {} / {} |",
            sc.name,
            r.secs,
            r.latency_mean,
            r.latency_p50,
            r.latency_p95,
            r.first_frame_ms,
            r.encode_ms,
            r.decode_ms,
            r.cpu_pct_total,
            r.cpu_pct_per_peer,
            r.rss_mb_mean,
            r.rss_mb_max,
            r.frames_sent,
            r.frames_received
        );
    }
    let _ = writeln!(s, "\n### Targets (issue: media engine)\n");
    let _ = writeln!(
        s,
        "Headless Chromium's WebRTC, measured on this kind of machine on the same kind of loopback call: 55 ms glass-to-glass at 640×480@30, 300 ms to first frame, about 41 % of a core for both ends together. Beckon's targets: glass-to-glass mean under 30 ms, accept to first decoded frame under 200 ms, the whole 1v1 call under 25 % of one core, under 50 MB resident per peer.\n\n"
    );
    if let Some((_, r)) = results.first() {
        let check = |ok: bool| if ok { "met" } else { "NOT met" };
        let _ = writeln!(s, "| target (1v1 640×480) | measured | |");
        let _ = writeln!(s, "|---|---|---|");
        let _ = writeln!(
            s,
            "| glass-to-glass mean < 30 ms | {:.1} ms | {} |",
            r.latency_mean,
            check(r.latency_mean < 30.0)
        );
        let _ = writeln!(
            s,
            "| accept → first frame < 200 ms | {} ms | {} |",
            r.first_frame_ms,
            check(r.first_frame_ms < 200)
        );
        let _ = writeln!(
            s,
            "| both peers < 25 % of a core | {:.1} % | {} |",
            r.cpu_pct_total,
            check(r.cpu_pct_total < 25.0)
        );
        let _ = writeln!(
            s,
            "| < 50 MB per peer | {:.1} MB | {} |",
            r.rss_mb_max,
            check(r.rss_mb_max < 50.0)
        );
    }
    if let (Some((_, one)), Some((_, four))) = (results.first(), results.get(2)) {
        let per_connection = (four.rss_mb_mean - one.rss_mb_mean) / 2.0;
        let _ = writeln!(
            s,
            "\nMemory per additional peer connection (4-party peer has 3, 1v1 peer has 1): about {per_connection:.1} MB."
        );
    }
    let _ = writeln!(
        s,
        "\n### How to read and rerun\n\n\
         `cargo xtask bench media [--secs N]` builds release binaries and runs the calls above \
         (about 3 minutes on this machine). Figures vary by a few percent between runs on a shared \
         2-core machine; the CPU share is the most sensitive.\n\n\
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
        Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default(),
        machine()
    );
    let _ = writeln!(
        s,
        "The real app in a real window (Xvfb, no GPU: WebKit draws in software; the app turns \
         WebKit's compositing off when there is no GPU), driven through tauri-driver, against a \
         local `beckon-server` and `beckon-peer`s that send a 30 fps test pattern. The app uses \
         the synthetic camera and tone too. CPU is user+system time of the app and every process it \
         started (WebKit's web and network processes), over {hold} s, as percent of one core; memory is \
         their resident set size summed. Frames per second are frames drawn by each tile's canvas \
         (WebGL), counted in the page. Peers run on the same 2 cores and take their share.\n"
    );
    let _ = writeln!(
        s,
        "| measurement | value |\n|---|---|\n| start to interactive (first view shown) | {:.0} ms |\n\
         | idle at home: CPU | {} ({}) |\n| idle at home: memory | {} ({}) |\n\
         | 1v1 video call (640×480@30): remote tile | {:.1} fps |\n| 1v1 video call: self view | {:.1} fps |\n\
         | 1v1 video call: CPU | {} ({}) |\n| 1v1 video call: memory | {} ({}) |",
        num(&r["startToInteractiveMs"]),
        pct(&r["idle"]["cpuPct"]),
        split(&r["idle"]["cpuByProcess"], " %"),
        mb(&r["idle"]["rssMb"]),
        split(&r["idle"]["byProcessMb"], " MB"),
        num(&r["call1v1"]["fps"]),
        num(&r["call1v1"]["selfFps"]),
        pct(&r["call1v1"]["cpuPct"]),
        split(&r["call1v1"]["cpuByProcess"], " %"),
        mb(&r["call1v1"]["rssMb"]),
        split(&r["call1v1"]["byProcessMb"], " MB"),
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
         | remote tiles | fps per remote tile | self view fps | CPU, app processes | memory |\n|---|---|---|---|---|"
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
            mb(&t["rssMb"]),
        );
    }
    s
}
