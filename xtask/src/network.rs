//! Calls across a network that misbehaves: two hosts in their own network
//! namespaces, coturn in the core as the only path between them, and host
//! a's access link impaired (see `beckon-netsim`). `cargo xtask test` runs a
//! few short scenarios with checks; `cargo xtask bench network` runs the
//! whole matrix, Beckon and headless Chromium side by side.

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use beckon_netsim::link::Direction;
use beckon_netsim::model::{Impairment, Loss};
use beckon_netsim::turn::Turn;
use beckon_netsim::world::{CORE_ADDR, World};
use serde_json::Value;

use crate::procs::{Line, ServerProc, spawn_peer_cmd, wait_for};

/// The secret coturn and beckon-server share.
pub(crate) const TURN_SECRET: &str = "netsim shared secret";

/// What happens to host a's link during the call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Event {
    /// Nothing gets through for `secs`, starting `at` seconds into the call.
    Outage { at: f64, secs: f64 },
    /// Host a moves to a new address `at` seconds into the call.
    Move { at: f64 },
}

/// One row of the matrix.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// Host a's link, both directions, from before the call starts.
    pub(crate) impairment: Impairment,
    pub(crate) event: Option<Event>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn lossy(p: f64) -> Impairment {
    Impairment {
        loss: Loss::Random(p),
        ..Impairment::clean()
    }
}

fn capped(kbps: u64) -> Impairment {
    Impairment {
        rate_bps: Some(kbps * 1000),
        // A home router's buffer: a quarter of a second at the cap.
        queue: ms(250),
        ..Impairment::clean()
    }
}

/// The bench's matrix (the list), in order.
pub(crate) fn matrix() -> Vec<Scenario> {
    let s = |name, impairment, event| Scenario {
        name,
        impairment,
        event,
    };
    vec![
        s("clean relay", Impairment::clean(), None),
        s("2 % loss", lossy(0.02), None),
        s("5 % loss", lossy(0.05), None),
        s("15 % loss", lossy(0.15), None),
        s("30 % loss", lossy(0.30), None),
        s(
            "bursty loss (5 %, bursts of 4)",
            Impairment {
                loss: Loss::Bursty {
                    enter_bad: 0.0132,
                    leave_bad: 0.25,
                    loss_good: 0.0,
                    loss_bad: 1.0,
                },
                ..Impairment::clean()
            },
            None,
        ),
        s(
            "150 ms ± 40 ms",
            Impairment {
                delay: ms(150),
                jitter: ms(40),
                ..Impairment::clean()
            },
            None,
        ),
        s("500 kbit/s cap", capped(500), None),
        s("250 kbit/s cap", capped(250), None),
        s(
            "3 s outage at 10 s",
            Impairment::clean(),
            Some(Event::Outage {
                at: 10.0,
                secs: 3.0,
            }),
        ),
        s(
            "address change at 10 s",
            Impairment::clean(),
            Some(Event::Move { at: 10.0 }),
        ),
        s(
            "5 % loss + 100 ms ± 30 ms",
            Impairment {
                loss: Loss::Random(0.05),
                delay: ms(100),
                jitter: ms(30),
                ..Impairment::clean()
            },
            None,
        ),
    ]
}

/// The world, the relay and the signaling server.
pub(crate) struct Net {
    // Dropped in this order: server, relay, then the namespaces.
    pub(crate) server: ServerProc,
    pub(crate) turn: Turn,
    pub(crate) world: World,
}

impl Net {
    /// Hosts a and b, coturn and beckon-server (from `bin`) in the core,
    /// handing out TURN credentials for coturn.
    pub(crate) fn start(bin: &Path, dir: &Path, seed: u64) -> anyhow::Result<Self> {
        let mut world = World::new(seed)?;
        world.add_host("a")?;
        world.add_host("b")?;
        let turn = Turn::start(&world, TURN_SECRET)?;
        let mut args = vec!["--turn-secret", TURN_SECRET];
        let urls = Turn::urls();
        for u in &urls {
            args.extend(["--turn-url", u]);
        }
        let server = ServerProc::start_cmd(
            beckon_netsim::world::in_namespace(world.core(), bin.join("beckon-server")),
            &format!("{CORE_ADDR}:0"),
            &dir.join("net.db"),
            &args,
        )?;
        Ok(Self {
            server,
            turn,
            world,
        })
    }

    pub(crate) fn host(&self, name: &str) -> &beckon_netsim::world::Host {
        self.world.host(name).expect("hosts a and b exist")
    }
}

/// Wall-clock µs since the Unix epoch.
pub(crate) fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// What one receiving end got from the other, on the wall clock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    /// Decoded frames: (µs since the epoch, frame number, glass-to-glass ms).
    pub(crate) frames: Vec<(u64, u32, f64)>,
    /// The tone log: when its first 100 ms block began, and each block.
    pub(crate) tone_start_us: u64,
    pub(crate) tone: Vec<bool>,
    /// Frames the other end sent, and how many of them were decoded here.
    pub(crate) sent: u64,
    pub(crate) decoded: u64,
    /// What the other end sent us, kbit/s, averaged over the window.
    pub(crate) send_kbps: Option<f64>,
    /// Offer to first decoded frame, ms.
    pub(crate) connect_ms: Option<f64>,
    /// Our end of the network path.
    pub(crate) path: Option<String>,
}

/// One side's figures over the measured window.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measured {
    pub(crate) fps: f64,
    pub(crate) delivered: f64,
    pub(crate) freeze_total_ms: f64,
    pub(crate) freeze_max_ms: f64,
    pub(crate) latency_mean: Option<f64>,
    pub(crate) latency_p95: Option<f64>,
    pub(crate) tone_share: f64,
    pub(crate) send_kbps: Option<f64>,
    /// From the end of the outage (or the move) to video at 20 fps and the
    /// tone both back, ms; `None`: never within the call.
    pub(crate) recover_ms: Option<f64>,
    pub(crate) connect_ms: Option<f64>,
    pub(crate) path: Option<String>,
}

/// A gap between decoded frames longer than this is a freeze.
const FREEZE_US: u64 = 200_000;

/// Measures `r` over [`w0`, `w1`] (µs since the epoch); `disrupted_until`
/// is when an outage ended (or a move happened), for the recovery time.
pub(crate) fn measure(r: &Received, w0: u64, w1: u64, disrupted_until: Option<u64>) -> Measured {
    let mut frames: Vec<(u64, u32, f64)> = r
        .frames
        .iter()
        .copied()
        .filter(|f| f.0 >= w0 && f.0 <= w1)
        .collect();
    frames.sort_by_key(|f| f.0);
    let secs = (w1 - w0) as f64 / 1e6;
    let mut edges: Vec<u64> = vec![w0];
    edges.extend(frames.iter().map(|f| f.0));
    edges.push(w1);
    let gaps: Vec<u64> = edges
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&g| g > FREEZE_US)
        .collect();
    let mut lat: Vec<f64> = frames
        .iter()
        .map(|f| f.2)
        .filter(|l| l.is_finite())
        .collect();
    lat.sort_by(f64::total_cmp);
    let mean = (!lat.is_empty()).then(|| lat.iter().sum::<f64>() / lat.len() as f64);
    let p95 = (!lat.is_empty()).then(|| lat[((lat.len() - 1) as f64 * 0.95).round() as usize]);
    // Seconds of the window in which at least half the 100 ms blocks had
    // the tone.
    let block = |i: usize| r.tone_start_us + i as u64 * 100_000;
    let whole = ((w1 - w0) / 1_000_000).max(1);
    let heard_secs = (0..whole)
        .filter(|s| {
            let (a, b) = (w0 + s * 1_000_000, w0 + (s + 1) * 1_000_000);
            let heard = (0..r.tone.len())
                .filter(|&i| block(i) >= a && block(i) < b && r.tone[i])
                .count();
            heard >= 5
        })
        .count();
    let recover_ms = disrupted_until.and_then(|e| {
        let all: Vec<u64> = {
            let mut v: Vec<u64> = r.frames.iter().map(|f| f.0).collect();
            v.sort_unstable();
            v
        };
        let video = all.iter().enumerate().find_map(|(i, &t)| {
            let in_next_second = all[i..].iter().take_while(|&&u| u < t + 1_000_000).count();
            (t >= e && in_next_second >= 20).then_some(t)
        })?;
        let tone = (0..r.tone.len().saturating_sub(2)).find_map(|i| {
            (block(i) >= e && r.tone[i] && r.tone[i + 1] && r.tone[i + 2]).then_some(block(i))
        })?;
        Some(video.max(tone).saturating_sub(e) as f64 / 1000.0)
    });
    Measured {
        fps: frames.len() as f64 / secs,
        delivered: if r.sent > 0 {
            r.decoded as f64 / r.sent as f64
        } else {
            0.0
        },
        freeze_total_ms: gaps.iter().sum::<u64>() as f64 / 1000.0,
        freeze_max_ms: gaps.iter().copied().max().unwrap_or(0) as f64 / 1000.0,
        latency_mean: mean,
        latency_p95: p95,
        tone_share: heard_secs as f64 / whole as f64,
        send_kbps: r.send_kbps,
        recover_ms,
        connect_ms: r.connect_ms,
        path: r.path.clone(),
    }
}

/// A call between a and b: what each received from the other, and when the
/// window and the disruption were.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallRun {
    /// What a received from b, and b from a.
    pub(crate) a_got: Received,
    pub(crate) b_got: Received,
    pub(crate) window: (u64, u64),
    pub(crate) disrupted_until: Option<u64>,
}

impl CallRun {
    /// Both directions measured: (a→b as b sees it, b→a as a sees it).
    pub(crate) fn measured(&self) -> (Measured, Measured) {
        let (w0, w1) = self.window;
        (
            measure(&self.b_got, w0, w1, self.disrupted_until),
            measure(&self.a_got, w0, w1, self.disrupted_until),
        )
    }
}

/// Plays `event` on host a's link, starting `call_at` (µs since the epoch);
/// returns when it is over and when the disruption ended.
fn play_event(net: &Net, event: Option<Event>, call_at: u64) -> anyhow::Result<Option<u64>> {
    let wait_until = |at: f64| {
        let due = call_at + (at * 1e6) as u64;
        let now = wall_us();
        if due > now {
            std::thread::sleep(Duration::from_micros(due - now));
        }
    };
    let a = net.host("a");
    match event {
        None => Ok(None),
        Some(Event::Outage { at, secs }) => {
            wait_until(at);
            a.link().set_down(true);
            wait_until(at + secs);
            a.link().set_down(false);
            Ok(Some(wall_us()))
        }
        Some(Event::Move { at }) => {
            wait_until(at);
            let new = a.change_address()?;
            println!("xtask: host a moved to {new}");
            Ok(Some(wall_us()))
        }
    }
}

/// Options of a Beckon call in the network.
pub(crate) struct CallOptions<'a> {
    pub(crate) bin: &'a Path,
    pub(crate) hold: f64,
    pub(crate) size: (u32, u32),
    /// Not measured at the start of the call, seconds.
    pub(crate) warmup: f64,
    pub(crate) run: usize,
}

/// Kills peers left running when dropped.
struct Peers(Vec<(String, Child)>);

impl Drop for Peers {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            crate::procs::kill(c);
        }
    }
}

/// One Beckon call from a to b across the network as `sc` sets it up.
pub(crate) fn run_beckon(net: &Net, sc: &Scenario, o: &CallOptions) -> anyhow::Result<CallRun> {
    let a = net.host("a");
    let before = a.link().stats();
    a.link().set(Direction::Both, sc.impairment.clone());
    let result = call(net, sc, o);
    a.link().set(Direction::Both, Impairment::clean());
    let after = a.link().stats();
    let (up, down) = (after.0.minus(&before.0), after.1.minus(&before.1));
    println!("xtask: a's link during the call: up {up}; down {down}");
    result
}

fn call(net: &Net, sc: &Scenario, o: &CallOptions) -> anyhow::Result<CallRun> {
    let (tx, rx) = mpsc::channel::<Line>();
    let size = format!("{}x{}", o.size.0, o.size.1);
    let exit = format!("{}", o.hold + 60.0);
    let common = [
        "--video-size",
        &size,
        "--stats-every-secs",
        "1",
        "--exit-after-call",
        "--exit-after-secs",
        &exit,
    ];
    let (ua, ub) = (format!("net{}a", o.run), format!("net{}b", o.run));
    let peer = |host: &str| net.host(host).command(o.bin.join("beckon-peer"));
    let url = &net.server.url;
    let mut peers = Peers(Vec::new());
    let callee = spawn_peer_cmd(
        peer("b"),
        url,
        &ub,
        &[&common[..], &["--hangup", "stay"]].concat(),
        &tx,
    )?;
    peers.0.push((ub.clone(), callee));
    let mut lines: Vec<Line> = Vec::new();
    wait_for(&rx, &ub, "signed_in", Duration::from_secs(30), |l| {
        lines.push(l.clone())
    })?;
    let hold = format!("{}", o.hold);
    let caller = spawn_peer_cmd(
        peer("a"),
        url,
        &ua,
        &[
            &common[..],
            &["--call", &ub, "--hold-secs", &hold, "--hangup", "end"],
        ]
        .concat(),
        &tx,
    )?;
    peers.0.push((ua.clone(), caller));
    drop(tx);
    wait_for(&rx, &ua, "call_started", Duration::from_secs(30), |l| {
        lines.push(l.clone())
    })?;
    let call_at = wall_us();
    // Lines keep coming while the event plays.
    let collector = std::thread::spawn(move || rx.iter().collect::<Vec<Line>>());
    let disrupted_until = play_event(net, sc.event, call_at)?;
    let deadline = Instant::now() + Duration::from_secs_f64(o.hold + 60.0);
    for (name, child) in &mut peers.0 {
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::ensure!(status.success(), "{name} failed ({status})");
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{name} did not finish");
            std::thread::sleep(ms(100));
        }
    }
    lines.extend(collector.join().map_err(|_| anyhow::anyhow!("collector"))?);
    if let Some(dir) = std::env::var_os("BECKON_NETWORK_LOG") {
        // Every line the peers printed, for a closer look.
        let path = Path::new(&dir).join(format!("run{}.jsonl", o.run));
        let text: String = lines.iter().map(|(w, e)| format!("{w} {e}\n")).collect();
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(&path, text);
        println!("xtask: the peers' lines are in {}", path.display());
    }
    let window = (
        call_at + (o.warmup * 1e6) as u64,
        call_at + ((o.hold - 0.5) * 1e6) as u64,
    );
    let summaries: HashMap<&str, &Value> = lines
        .iter()
        .filter(|(_, e)| e["event"] == "media_summary")
        .map(|(w, e)| (w.as_str(), e))
        .collect();
    let (sa, sb) = (
        summaries
            .get(ua.as_str())
            .with_context(|| format!("{ua} reported no media"))?,
        summaries
            .get(ub.as_str())
            .with_context(|| format!("{ub} reported no media"))?,
    );
    let stats = |who: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|(w, e)| w == who && e["event"] == "stats")
            .map(|(_, e)| e)
            .collect()
    };
    Ok(CallRun {
        a_got: received(sa, sb, &stats(&ub), &ub),
        b_got: received(sb, sa, &stats(&ua), &ua),
        window,
        disrupted_until,
    })
}

/// What `me` (summary `mine`) received from `them` (summary `theirs`,
/// their per-second stats `their_stats`).
fn received(mine: &Value, theirs: &Value, their_stats: &[&Value], them: &str) -> Received {
    let member = mine["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["who"] == them)
        .cloned()
        .unwrap_or(Value::Null);
    let first = member["first_frame_at_us"].as_u64().unwrap_or(0);
    let frames = member["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some((
                first + f[0].as_u64()? * 1000,
                f[1].as_u64()? as u32,
                f[2].as_f64()?,
            ))
        })
        .collect();
    let tone = member["tone_blocks"]
        .as_str()
        .unwrap_or("")
        .chars()
        .map(|c| c == '1')
        .collect();
    // Their send rate to us, from their per-second stats lines, leaving
    // out the first two seconds (the call connecting) and the last.
    let me = mine["user"].as_str().unwrap_or_default();
    let rates: Vec<f64> = their_stats
        .iter()
        .filter_map(|s| {
            s["members"].as_array()?.iter().find(|m| m["who"] == me)?["send_kbps"].as_f64()
        })
        .collect();
    let n = rates.len();
    let send_kbps = (n > 3).then(|| rates[2..n - 1].iter().sum::<f64>() / (n - 3) as f64);
    // Their summary's entry for us.
    let us = theirs["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["who"] == me)
        .unwrap_or(&Value::Null);
    let offered = [
        member["offered_at_us"].as_u64(),
        us["offered_at_us"].as_u64(),
    ]
    .into_iter()
    .flatten()
    .min();
    Received {
        frames,
        tone_start_us: member["tone_start_us"].as_u64().unwrap_or(0),
        tone,
        sent: theirs["sent_frames"].as_u64().unwrap_or(0),
        decoded: member["frames"].as_u64().unwrap_or(0),
        send_kbps,
        connect_ms: offered.map(|o| first.saturating_sub(o) as f64 / 1000.0),
        path: path_of(&member, us),
    }
}

/// The candidate pair we received over ("local/remote"), from our summary's
/// entry for them (`member`) and theirs for us (`us`). A remote candidate we
/// only learned from their checks is peer-reflexive to us; what it is, their
/// own end says.
fn path_of(member: &Value, us: &Value) -> Option<String> {
    let path = member["path"].as_str()?;
    let Some(local) = path.strip_suffix("/prflx") else {
        return Some(path.to_owned());
    };
    let their_local = us["path"].as_str().and_then(|p| p.split('/').next());
    Some(format!("{local}/{}", their_local.unwrap_or("prflx")))
}

/// A check of one scenario in `cargo xtask test`.
struct Check {
    scenario: Scenario,
    /// What must hold of each direction (a→b, b→a), as a failure message.
    expect: fn(&Measured) -> Result<(), String>,
}

fn relay_pair_works(m: &Measured) -> Result<(), String> {
    if !m.path.as_deref().is_some_and(|p| p.contains("relay")) {
        return Err(format!(
            "the path in use is {:?}, not through the relay",
            m.path
        ));
    }
    if m.fps < 20.0 {
        return Err(format!("{:.1} fps decoded", m.fps));
    }
    if m.tone_share < 0.9 {
        return Err(format!(
            "the tone in {:.0} % of seconds",
            m.tone_share * 100.0
        ));
    }
    Ok(())
}

fn keeps_going_at_10_percent_loss(m: &Measured) -> Result<(), String> {
    if m.fps < 15.0 {
        return Err(format!("{:.1} fps decoded", m.fps));
    }
    if m.tone_share < 0.9 {
        return Err(format!(
            "the tone in {:.0} % of seconds",
            m.tone_share * 100.0
        ));
    }
    Ok(())
}

fn comes_back(m: &Measured) -> Result<(), String> {
    match m.recover_ms {
        Some(ms) if ms <= 2000.0 => Ok(()),
        Some(ms) => Err(format!("video and tone back only {ms:.0} ms after")),
        None => Err("video or tone never came back".into()),
    }
}

fn checks() -> Vec<Check> {
    let check = |name, impairment, event, expect| Check {
        scenario: Scenario {
            name,
            impairment,
            event,
        },
        expect,
    };
    vec![
        check(
            "relay-only call through coturn",
            Impairment::clean(),
            None,
            relay_pair_works,
        ),
        check(
            "10 % loss keeps video decoding and the tone heard",
            lossy(0.10),
            None,
            keeps_going_at_10_percent_loss,
        ),
        check(
            "a 3 s outage recovers",
            Impairment::clean(),
            Some(Event::Outage { at: 3.0, secs: 3.0 }),
            comes_back,
        ),
        check(
            "TURN over TCP when UDP is cut",
            Impairment {
                block_udp: true,
                ..Impairment::clean()
            },
            None,
            relay_pair_works,
        ),
        check(
            "an address change recovers",
            Impairment::clean(),
            Some(Event::Move { at: 3.0 }),
            comes_back,
        ),
    ]
}

/// The network step of `cargo xtask test`: a few short calls across the
/// emulated network, each checked.
pub(crate) fn test() -> anyhow::Result<()> {
    if let Err(e) = beckon_netsim::world::available() {
        if std::env::var_os("BECKON_SKIP_NETWORK").is_some() {
            println!("xtask: network tests skipped (BECKON_SKIP_NETWORK): {e}");
            return Ok(());
        }
        anyhow::bail!(
            "the network tests cannot run here: {e}; run as root, or set BECKON_SKIP_NETWORK=1 to skip them"
        );
    }
    crate::step(
        "network: build",
        crate::cargo(&[
            "build",
            "--locked",
            "-p",
            "beckon-server",
            "-p",
            "beckon-peer",
        ]),
    )?;
    let bin = crate::procs::bin_dir("debug");
    let dir = crate::procs::scratch("network-test")?;
    let net = Net::start(&bin, &dir, 1)?;
    let mut failed = Vec::new();
    let only = std::env::var("BECKON_NETWORK_ONLY").ok();
    for (i, check) in checks().into_iter().enumerate() {
        let sc = &check.scenario;
        if only.as_ref().is_some_and(|o| !sc.name.contains(o.as_str())) {
            continue;
        }
        println!("\n== network: {}", sc.name);
        let options = CallOptions {
            bin: &bin,
            hold: if sc.event.is_some() { 12.0 } else { 8.0 },
            size: (320, 240),
            warmup: 2.0,
            run: i,
        };
        let outcome = run_beckon(&net, sc, &options).and_then(|run| {
            let (ab, ba) = run.measured();
            println!("  a→b {ab:?}\n  b→a {ba:?}");
            for (dir, m) in [("a→b", &ab), ("b→a", &ba)] {
                (check.expect)(m).map_err(|e| anyhow::anyhow!("{dir}: {e}"))?;
            }
            Ok(())
        });
        match outcome {
            Ok(()) => println!("  ok"),
            Err(e) => {
                println!(
                    "  FAILED: {e:#}\n  coturn's last lines:\n{}",
                    net.turn.log_tail()
                );
                failed.push(format!("{}: {e:#}", sc.name));
            }
        }
    }
    drop(net);
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        failed.is_empty(),
        "network tests failed:\n  {}",
        failed.join("\n  ")
    );
    println!("\nxtask: the network tests passed");
    Ok(())
}

/// What a Chromium page reported of what it received, as [`Received`].
fn page_received(
    mine: &Value,
    theirs: &Value,
    offer_at_us: Option<u64>,
    window: (u64, u64),
) -> Received {
    let frames = mine["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some((
                (f[0].as_f64()? * 1000.0) as u64,
                f[1].as_i64().unwrap_or(-1).max(0) as u32,
                f[2].as_f64().unwrap_or(f64::NAN),
            ))
        })
        .collect();
    let rates: Vec<f64> = theirs["send_kbps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let at = (r[0].as_f64()? * 1000.0) as u64;
            (at > window.0 && at <= window.1).then_some(r[1].as_f64()?)
        })
        .collect();
    let first = mine["first_frame_at_us"].as_f64().map(|v| v as u64);
    Received {
        frames,
        tone_start_us: mine["tone_start_us"].as_f64().unwrap_or(0.0) as u64,
        tone: mine["tone"]
            .as_str()
            .unwrap_or("")
            .chars()
            .map(|c| c == '1')
            .collect(),
        sent: theirs["frames_sent"].as_u64().unwrap_or(0),
        decoded: mine["frames_decoded"].as_u64().unwrap_or(0),
        send_kbps: (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64),
        connect_ms: first
            .zip(offer_at_us)
            .map(|(f, o)| f.saturating_sub(o) as f64 / 1000.0),
        path: None,
    }
}

/// The same call as [`run_beckon`], between two headless Chromiums.
fn run_chromium(
    net: &Net,
    page: &crate::chromium::PageServer,
    sc: &Scenario,
    o: &CallOptions,
    dir: &Path,
) -> anyhow::Result<CallRun> {
    let (a, b) = (net.host("a"), net.host("b"));
    a.link().set(Direction::Both, sc.impairment.clone());
    let result = crate::chromium::run_pair(
        page,
        [a.namespace(), b.namespace()],
        o.size,
        o.hold,
        dir,
        |call_at| play_event(net, sc.event, call_at),
    );
    a.link().set(Direction::Both, Impairment::clean());
    let (ra, rb, call_at, disrupted_until) = result?;
    let window = (
        call_at + (o.warmup * 1e6) as u64,
        call_at + ((o.hold - 0.5) * 1e6) as u64,
    );
    let offer = ra["offer_at_us"].as_f64().map(|v| v as u64);
    Ok(CallRun {
        a_got: page_received(&ra, &rb, offer, window),
        b_got: page_received(&rb, &ra, offer, window),
        window,
        disrupted_until,
    })
}

/// coturn credentials in its REST scheme, as beckon-server makes them.
fn turn_credentials(user: &str) -> (String, String) {
    use base64::Engine;
    use hmac::Mac;
    let expiry = wall_us() / 1_000_000 + 24 * 3600;
    let username = format!("{expiry}:{user}");
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(TURN_SECRET.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

type Row = (Scenario, (Measured, Measured), (Measured, Measured));

/// `cargo xtask bench network [--secs N] [--only TEXT] [--beckon-only]`:
/// the matrix (or the scenarios whose name has TEXT), each scenario a
/// Beckon call and a Chromium call, and the report.
pub(crate) fn bench(args: &[String]) -> anyhow::Result<()> {
    let hold = crate::bench::secs_arg(args, 30.0)?;
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    // While working on Beckon: leave Chromium out (and the docs alone).
    let beckon_only = args.iter().any(|a| a == "--beckon-only");
    crate::deps::ensure(crate::deps::Purpose::Test)?;
    crate::chromium::ensure_installed()?;
    beckon_netsim::world::available()?;
    crate::procs::build_release(&["beckon-server", "beckon-peer"])?;
    let bin = crate::procs::bin_dir("release");
    let dir = crate::procs::scratch("bench-network")?;
    let started = Instant::now();
    let net = Net::start(&bin, &dir, 42)?;
    let listener = beckon_netsim::world::spawn_in(net.world.core(), || {
        std::net::TcpListener::bind((CORE_ADDR, 0))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("binding the page server panicked"))???;
    let page = crate::chromium::PageServer::on(listener)?;
    let (username, credential) = turn_credentials("chromium");
    page.set_ice(serde_json::json!([{
        "urls": Turn::urls(),
        "username": username,
        "credential": credential,
    }]));
    let version = crate::chromium::version();
    let mut rows: Vec<Row> = Vec::new();
    let mut chromium_failed: Vec<String> = Vec::new();
    for (i, sc) in matrix().into_iter().enumerate() {
        if only.as_ref().is_some_and(|o| !sc.name.contains(o.as_str())) {
            continue;
        }
        let options = CallOptions {
            bin: &bin,
            hold,
            size: (640, 480),
            warmup: 3.0,
            run: i,
        };
        println!("\nxtask: {} for {hold} s, beckon-peer", sc.name);
        let b = run_beckon(&net, &sc, &options)?.measured();
        println!("  a→b {:?}\n  b→a {:?}", b.0, b.1);
        let c = if beckon_only {
            Default::default()
        } else {
            println!("xtask: {} for {hold} s, {version}", sc.name);
            // Chromium's side sometimes does not finish through heavy loss
            // (its call never connects in time): once more, then the row
            // says so instead of the whole matrix failing.
            let run = run_chromium(&net, &page, &sc, &options, &dir).or_else(|e| {
                println!("xtask: Chromium's call failed ({e:#}); once more");
                run_chromium(&net, &page, &sc, &options, &dir)
            });
            match run {
                Ok(run) => {
                    let c = run.measured();
                    println!("  a→b {:?}\n  b→a {:?}", c.0, c.1);
                    c
                }
                Err(e) => {
                    println!("xtask: Chromium's call failed again ({e:#})");
                    chromium_failed.push(format!("{}: {e:#}", sc.name));
                    Default::default()
                }
            }
        };
        rows.push((sc, b, c));
    }
    drop(net);
    let _ = std::fs::remove_dir_all(&dir);
    let mut report = report(&rows, hold, &version, started.elapsed().as_secs_f64());
    if !chromium_failed.is_empty() {
        report.push_str(
            "\nChromium's call did not complete (twice) in these rows, which show no Chromium \
             figures and no comparison:\n\n",
        );
        for f in &chromium_failed {
            report.push_str(&format!("- {f}\n"));
        }
    }
    println!("\n{report}");
    if only.is_none() && !beckon_only {
        crate::bench::write_section("network", &report)?;
    }
    Ok(())
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("–".into(), |v| format!("{v:.0}{unit}"))
}

/// The worse of two figures (`lower_is_worse`: fps, tone) of the two
/// directions.
fn worse(a: f64, b: f64, lower_is_worse: bool) -> f64 {
    if lower_is_worse { a.min(b) } else { a.max(b) }
}

fn worse_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

/// One engine's row: a→b and b→a folded into one line (both fps, and the
/// worse direction for the rest).
fn row_cells(name: &str, (ab, ba): &(Measured, Measured), event: bool) -> Vec<String> {
    vec![
        name.to_owned(),
        format!("{:.1} / {:.1}", ab.fps, ba.fps),
        format!("{:.0} %", worse(ab.delivered, ba.delivered, true) * 100.0),
        format!(
            "{:.1} s",
            worse(ab.freeze_total_ms, ba.freeze_total_ms, false) / 1000.0
        ),
        format!("{:.0} ms", worse(ab.freeze_max_ms, ba.freeze_max_ms, false)),
        format!(
            "{} / {}",
            opt(worse_opt(ab.latency_mean, ba.latency_mean), ""),
            opt(worse_opt(ab.latency_p95, ba.latency_p95), " ms")
        ),
        format!("{:.0} %", worse(ab.tone_share, ba.tone_share, true) * 100.0),
        format!("{} / {}", opt(ab.send_kbps, ""), opt(ba.send_kbps, "")),
        if event {
            opt(worse_opt(ab.recover_ms, ba.recover_ms), " ms")
        } else {
            String::new()
        },
        opt(worse_opt(ab.connect_ms, ba.connect_ms), " ms"),
    ]
}

fn ratio(b: f64, c: f64) -> String {
    if c > 0.0 && b.is_finite() && c.is_finite() {
        format!("{:.2}", b / c)
    } else {
        "–".into()
    }
}

fn report(rows: &[Row], hold: f64, version: &str, took: f64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "## Calls across a network that misbehaves\n");
    let _ = writeln!(
        s,
        "Regenerated by `cargo xtask bench network` (release build; {:.1} min). Last run: {}, on {}; \
         Beckon's `beckon-peer`s against {version}.\n",
        took / 60.0,
        crate::bench::now_utc(),
        crate::bench::machine()
    );
    let _ = writeln!(
        s,
        "Each scenario is a 1v1 video call of {hold:.0} s at 640×480@30 between two hosts, each in \
         its own network namespace (`crates/netsim`). The hosts reach the core, where beckon-server \
         and coturn run, through their own access link; the core does not forward, so coturn is the \
         only path between them (it hands out relay candidates; the pair in use has at least one \
         relay end). Host a's access link is impaired in both directions from before the call \
         starts: a TUN device on each side and a userspace path between them (seeded loss, bursty \
         loss as a Gilbert-Elliott chain, delay and uniform jitter that reorders, a rate cap with a \
         250 ms tail-drop queue, outages, a move to a new address). Both engines run the same \
         call through the same world, one after the other: Beckon between two `beckon-peer`s \
         (signaling through beckon-server, ICE servers from it); Chromium as two headless pages \
         (`bench/chromium/net.html`, one per host, signaling through xtask, the same coturn), with \
         its defaults but VP8 forced, restarting ICE when its connection stays disconnected for \
         2 s.\n"
    );
    let _ = writeln!(
        s,
        "Measured over the call from {:.0} s after it starts to half a second before it ends, in \
         each direction (a→b as b decodes it, b→a as a decodes it); where one figure stands for \
         both, it is the worse direction:\n\n\
         - **decoded fps**: frames out of the decoder per second, a→b / b→a;\n\
         - **decoded / sent**: frames decoded of frames sent, over the whole call;\n\
         - **freezes**: gaps of more than 200 ms between decoded frames (also from the window's \
         start to the first frame and from the last to its end), their total and the longest;\n\
         - **glass-to-glass**: capture (the time burned into the frame) to decoded, mean / p95, of \
         frames whose stamp reads (frames at the full size);\n\
         - **tone**: share of the window's seconds in which at least half of the 100 ms blocks \
         had the other party's tone standing out (Goertzel, over 60 % of the power);\n\
         - **sent**: what a and b sent, kbit/s (Beckon: RTP payload; Chromium: payload and headers);\n\
         - **back after**: from the end of the outage (or the move) to both video at 20 fps and \
         the tone (300 ms of it) again;\n\
         - **connect**: from the offer to the first decoded frame.\n",
        3.0
    );
    let _ = writeln!(
        s,
        "| scenario | engine | decoded fps | decoded / sent | freezes, total | longest freeze | \
         glass-to-glass mean / p95 | tone | sent kbit/s a / b | back after | connect |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (sc, b, c) in rows {
        let event = sc.event.is_some();
        for (i, (engine, m)) in [("Beckon", b), ("Chromium", c)].into_iter().enumerate() {
            let cells = row_cells(engine, m, event);
            let label = if i == 0 { sc.name } else { "" };
            let _ = writeln!(s, "| {label} | {} |", cells.join(" | "));
        }
        let fps = |m: &(Measured, Measured)| m.0.fps.min(m.1.fps);
        let freeze = |m: &(Measured, Measured)| m.0.freeze_max_ms.max(m.1.freeze_max_ms);
        let p95 = |m: &(Measured, Measured)| worse_opt(m.0.latency_p95, m.1.latency_p95);
        let tone = |m: &(Measured, Measured)| m.0.tone_share.min(m.1.tone_share);
        let _ = writeln!(
            s,
            "| | Beckon/Chromium | {} | | | {} | {} | {} | | | |",
            ratio(fps(b), fps(c)),
            ratio(freeze(b), freeze(c)),
            ratio(p95(b).unwrap_or(f64::NAN), p95(c).unwrap_or(f64::NAN)),
            ratio(tone(b), tone(c)),
        );
    }
    let _ = writeln!(
        s,
        "\nRatios: fps and tone above 1, freezes and latency below 1 mean Beckon does better."
    );
    s.push_str(&targets(rows));
    s
}

/// Shows one target's figure for a row and says whether it is met.
type Show<'a> = &'a dyn Fn(&(Measured, Measured)) -> (String, bool);

/// The targets, each checked against this run.
fn targets(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let find = |name: &str| rows.iter().find(|r| r.0.name == name);
    let both = |m: &(Measured, Measured), f: fn(&Measured) -> f64, lower_is_worse: bool| {
        worse(f(&m.0), f(&m.1), lower_is_worse)
    };
    let fps = |m: &Measured| m.fps;
    let freeze = |m: &Measured| m.freeze_max_ms;
    let tone = |m: &Measured| m.tone_share;
    let p95 = |m: &Measured| m.latency_p95.unwrap_or(f64::INFINITY);
    let recover = |m: &Measured| m.recover_ms.unwrap_or(f64::INFINITY);
    let connect = |m: &Measured| m.connect_ms.unwrap_or(f64::INFINITY);
    let sent = |m: &Measured| m.send_kbps.unwrap_or(f64::INFINITY);
    let mut lines: Vec<(String, String, String, bool)> = Vec::new();
    let mut check = |what: &str, name: &str, show: Show| {
        if let Some((_, b, c)) = find(name) {
            let (bv, ok) = show(b);
            let (cv, _) = show(c);
            lines.push((what.to_owned(), bv, cv, ok));
        }
    };
    check("5 % loss: ≥ 25 fps", "5 % loss", &|m| {
        let v = both(m, fps, true);
        (format!("{v:.1} fps"), v >= 25.0)
    });
    check("5 % loss: no freeze over 300 ms", "5 % loss", &|m| {
        let v = both(m, freeze, false);
        (format!("{v:.0} ms"), v <= 300.0)
    });
    check("15 % loss: ≥ 15 fps", "15 % loss", &|m| {
        let v = both(m, fps, true);
        (format!("{v:.1} fps"), v >= 15.0)
    });
    check(
        "30 % loss: tone in ≥ 90 % of seconds",
        "30 % loss",
        &|m| {
            let v = both(m, tone, true);
            (format!("{:.0} %", v * 100.0), v >= 0.9)
        },
    );
    check(
        "back within 1 s after a 3 s outage",
        "3 s outage at 10 s",
        &|m| {
            let v = both(m, recover, false);
            (opt(v.is_finite().then_some(v), " ms"), v <= 1000.0)
        },
    );
    check(
        "back within 1 s after an address change",
        "address change at 10 s",
        &|m| {
            let v = both(m, recover, false);
            (opt(v.is_finite().then_some(v), " ms"), v <= 1000.0)
        },
    );
    check(
        "connects through the relay in under 500 ms",
        "clean relay",
        &|m| {
            let v = both(m, connect, false);
            (opt(v.is_finite().then_some(v), " ms"), v < 500.0)
        },
    );
    for name in [
        "2 % loss",
        "5 % loss",
        "15 % loss",
        "30 % loss",
        "bursty loss (5 %, bursts of 4)",
        "5 % loss + 100 ms ± 30 ms",
    ] {
        check(
            &format!("{name}: glass-to-glass p95 under 300 ms"),
            name,
            &|m| {
                let v = both(m, p95, false);
                (opt(v.is_finite().then_some(v), " ms"), v < 300.0)
            },
        );
    }
    check(
        "500 kbit/s cap: sends under the cap",
        "500 kbit/s cap",
        &|m| {
            let v = both(m, sent, false);
            (opt(v.is_finite().then_some(v), " kbit/s"), v < 500.0)
        },
    );
    check(
        "500 kbit/s cap: no freeze over 500 ms",
        "500 kbit/s cap",
        &|m| {
            let v = both(m, freeze, false);
            (format!("{v:.0} ms"), v <= 500.0)
        },
    );
    let mut s = String::from(
        "\n### Targets (issue: networks)\n\nEach figure is the worse of the two directions.\n\n\
         | target | Beckon | | Chromium |\n|---|---|---|---|\n",
    );
    for (what, b, c, ok) in &lines {
        let _ = writeln!(
            s,
            "| {what} | {b} | {} | {c} |",
            if *ok { "met" } else { "NOT met" }
        );
    }
    // At least as good as Chromium, row by row, on what a user sees.
    let _ = writeln!(
        s,
        "\n| at least as good as Chromium | fps | longest freeze | glass-to-glass p95 | tone |\n|---|---|---|---|---|"
    );
    for (sc, b, c) in rows {
        // No Chromium figures (not run, or its call failed): nothing to
        // compare with.
        if c.0.fps == 0.0 && c.1.fps == 0.0 {
            let _ = writeln!(s, "| {} | – | – | – | – |", sc.name);
            continue;
        }
        let mark = |ok: bool| if ok { "yes" } else { "**no**" };
        let (bf, cf) = (both(b, fps, true), both(c, fps, true));
        let (bz, cz) = (both(b, freeze, false), both(c, freeze, false));
        let (bp, cp) = (both(b, p95, false), both(c, p95, false));
        let (bt, ct) = (both(b, tone, true), both(c, tone, true));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            sc.name,
            mark(bf >= cf * 0.97),
            mark(bz <= cz.max(200.0)),
            mark(bp <= cp),
            mark(bt >= ct - 0.02),
        );
    }
    let _ = writeln!(
        s,
        "\nWithin 3 % of Chromium's fps and 2 points of its tone share counts as as good (runs vary by \
         more than that); a longest freeze under 200 ms is no freeze."
    );
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::path_of;

    #[test]
    fn a_peer_reflexive_remote_is_named_by_its_own_end() {
        let relay = json!({"path": "relay/host"});
        assert_eq!(
            path_of(&json!({"path": "host/prflx"}), &relay).as_deref(),
            Some("host/relay")
        );
        assert_eq!(
            path_of(&json!({"path": "host/prflx"}), &json!({})).as_deref(),
            Some("host/prflx"),
            "their end said nothing"
        );
        assert_eq!(
            path_of(
                &json!({"path": "relay/host"}),
                &json!({"path": "host/srflx"})
            )
            .as_deref(),
            Some("relay/host")
        );
        assert_eq!(path_of(&json!({}), &relay), None);
    }
}
