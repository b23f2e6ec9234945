//! `cargo xtask run`: a server and two headless users, alice and bob, on
//! loopback. Alice calls bob, bob answers, they see and hear each other (a
//! test pattern and a tone, over WebRTC) for a few seconds, alice hangs up.
//! Every event both see is printed as it happens.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::deps;
use crate::procs::{ServerProc, bin_dir, scratch, spawn_peer, wait_for};

pub(crate) fn run() -> anyhow::Result<()> {
    deps::ensure(deps::Purpose::Run)?;
    println!("xtask: building beckon-server and beckon-peer");
    let status = crate::cargo(&["build", "-p", "beckon-server", "-p", "beckon-peer"]).status()?;
    anyhow::ensure!(status.success(), "build failed");
    let bin = bin_dir("debug");
    let dir = scratch("run")?;
    let server = ServerProc::start(&bin, &dir)?;
    println!(
        "xtask: server at {} (database in {})\n",
        server.url,
        dir.display()
    );

    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let common = [
        "--exit-after-call",
        "--exit-after-secs",
        "30",
        "--video-size",
        "640x480",
        "--stats-every-secs",
        "1",
    ];
    let mut bob = spawn_peer(
        &bin,
        &server.url,
        "bob",
        &[
            &common[..],
            &[
                "--name",
                "Bob",
                "--on-incoming",
                "accept",
                "--answer-after-ms",
                "800",
                "--hangup",
                "stay",
            ],
        ]
        .concat(),
        &tx,
    )?;
    wait_for(
        &rx,
        "bob",
        "signed_in",
        Duration::from_secs(30),
        |(w, e)| print_event(start, w, e),
    )?;
    let mut alice = spawn_peer(
        &bin,
        &server.url,
        "alice",
        &[
            &common[..],
            &[
                "--name",
                "Alice",
                "--call",
                "bob",
                "--hold-secs",
                "4",
                "--hangup",
                "end",
            ],
        ]
        .concat(),
        &tx,
    )?;
    drop(tx);

    let mut seen: Vec<(String, String)> = Vec::new();
    for (who, event) in rx.iter() {
        print_event(start, &who, &event);
        seen.push((who, event["event"].as_str().unwrap_or("").to_string()));
    }
    let alice_ok = alice.wait()?.success();
    let bob_ok = bob.wait()?.success();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let saw = |who: &str, what: &str| seen.iter().any(|(w, e)| w == who && e == what);
    let completed = ["alice", "bob"]
        .iter()
        .all(|u| saw(u, "call_started") && saw(u, "call_ended"));
    anyhow::ensure!(
        alice_ok && bob_ok && completed,
        "the demo call did not complete"
    );
    println!("\nxtask: alice and bob completed a video call through the Beckon server");
    Ok(())
}

fn print_event(start: Instant, who: &str, e: &Value) {
    let s = |k: &str| e[k].as_str().unwrap_or("?").to_string();
    let text = match e["event"].as_str().unwrap_or("") {
        "signed_in" => "signed in".to_string(),
        "invited" => format!(
            "calls {} (call {})",
            list(&e["results"], "who"),
            short(&s("call_id"))
        ),
        "incoming" => format!("is rung by {} ({} call)", s("by"), s("kind")),
        "accepted" => "answers".to_string(),
        "rejected" => format!("declines ({})", s("reason")),
        "member" => format!("sees {} → {} ({})", s("who"), s("state"), s("reason")),
        "call_started" => format!("is in the call with {}", list(&e["in_call"], "")),
        "media_started" => format!("starts camera and microphone ({} call)", s("kind")),
        "peer_state" => format!("media to {}: {}", s("who"), s("state")),
        "media_state" => format!(
            "sees {}'s mic {} and camera {}",
            s("who"),
            on(&e["mic"]),
            on(&e["camera"])
        ),
        "stats" => stats_text(e),
        "media_summary" => summary_text(e),
        "call_ended" => format!(
            "call ended: {} by {}",
            s("reason"),
            e["by"].as_str().unwrap_or("nobody")
        ),
        "busy" => (if e["busy"] == true {
            "is busy"
        } else {
            "is free"
        })
        .to_string(),
        "exit" | "stopped" => format!("stops ({})", e["reason"]),
        other => format!("{other} {e}"),
    };
    let at = start.elapsed().as_secs_f64();
    println!("{at:7.3}s  {who:>5}  {text}");
}

fn on(v: &Value) -> &'static str {
    if v == true { "on" } else { "off" }
}

fn stats_text(e: &Value) -> String {
    let members: Vec<String> = e["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    format!(
                        "{}: {} frames (#{}, {} ms), tone {} Hz, {} kbit/s",
                        m["who"].as_str().unwrap_or("?"),
                        m["frames"],
                        m["last_frame"],
                        m["latency_ms_p50"],
                        m["tone_hz"],
                        m["recv_kbps"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!("receives {}", members.join("; "))
}

fn summary_text(e: &Value) -> String {
    let members: Vec<String> = e["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    format!(
                        "{} frames from {} (latency p50 {} ms, first after {} ms)",
                        m["frames"],
                        m["who"].as_str().unwrap_or("?"),
                        m["latency_ms_p50"],
                        m["first_frame_ms"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "media done: sent {} frames; {}",
        e["sent_frames"],
        members.join("; ")
    )
}

fn list(v: &Value, key: &str) -> String {
    let items: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    if key.is_empty() {
                        x.clone()
                    } else {
                        x[key].clone()
                    }
                })
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    items.join(", ")
}

fn short(id: &str) -> String {
    id.chars().take(8).collect::<String>() + "…"
}
