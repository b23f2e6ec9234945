//! `cargo xtask run`: a server and two headless users, alice and bob, on
//! loopback. Alice calls bob, bob answers, they talk for two seconds, alice
//! hangs up. Every event both see is printed as it happens.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::deps;

pub(crate) fn run() -> anyhow::Result<()> {
    deps::ensure(deps::Purpose::Run)?;
    println!("xtask: building beckon-server and beckon-peer");
    let status = crate::cargo(&["build", "-p", "beckon-server", "-p", "beckon-peer"]).status()?;
    anyhow::ensure!(status.success(), "build failed");
    let bin = target_dir().join("debug");
    let dir = std::env::temp_dir().join(format!("beckon-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let mut server = Command::new(bin.join("beckon-server"))
        .args(["--listen", "127.0.0.1:0", "--database"])
        .arg(dir.join("beckon.db"))
        .env(
            "BECKON_LOG",
            std::env::var("BECKON_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting beckon-server")?;
    let url = server_url(&mut server)?;
    println!("xtask: server at {url} (database in {})\n", dir.display());

    let (tx, rx) = mpsc::channel::<(String, Value)>();
    let start = Instant::now();
    let peer = |user: &str, extra: &[&str]| -> anyhow::Result<Child> {
        let mut child = Command::new(bin.join("beckon-peer"))
            .args([
                "--server",
                &url,
                "--user",
                user,
                "--password",
                "demo password",
                "--register",
            ])
            .args([
                "--name",
                &capitalise(user),
                "--exit-after-call",
                "--exit-after-secs",
                "30",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting beckon-peer {user}"))?;
        let out = child.stdout.take().expect("piped");
        let tx = tx.clone();
        let name = user.to_string();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send((name.clone(), v));
                }
            }
        });
        Ok(child)
    };
    let mut bob = peer(
        "bob",
        &[
            "--on-incoming",
            "accept",
            "--answer-after-ms",
            "800",
            "--hangup",
            "stay",
        ],
    )?;
    wait_for(&rx, start, "bob", "signed_in")?;
    let mut alice = peer(
        "alice",
        &["--call", "bob", "--hold-secs", "2", "--hangup", "end"],
    )?;
    drop(tx);

    let mut seen: Vec<(String, String)> = Vec::new();
    for (who, event) in rx.iter() {
        print_event(start, &who, &event);
        seen.push((who, event["event"].as_str().unwrap_or("").to_string()));
    }
    let alice_ok = alice.wait()?.success();
    let bob_ok = bob.wait()?.success();
    stop(&mut server);
    let _ = std::fs::remove_dir_all(&dir);

    let saw = |who: &str, what: &str| seen.iter().any(|(w, e)| w == who && e == what);
    let completed = ["alice", "bob"]
        .iter()
        .all(|u| saw(u, "call_started") && saw(u, "call_ended"));
    anyhow::ensure!(
        alice_ok && bob_ok && completed,
        "the demo call did not complete"
    );
    println!("\nxtask: alice and bob completed a call through the Beckon server");
    Ok(())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Reads the server's first line, `beckon-server listening on <url>`.
fn server_url(server: &mut Child) -> anyhow::Result<String> {
    let out = server.stdout.take().expect("piped");
    let mut lines = BufReader::new(out).lines();
    let first = lines
        .next()
        .context("the server exited before listening")??;
    let url = first.rsplit(' ').next().unwrap_or_default().to_string();
    anyhow::ensure!(url.starts_with("ws"), "unexpected server output: {first}");
    // Keep draining so the server never blocks on a full pipe.
    thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Ok(url)
}

fn wait_for(
    rx: &mpsc::Receiver<(String, Value)>,
    start: Instant,
    who: &str,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok((w, event)) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        print_event(start, &w, &event);
        if w == who && event["event"] == what {
            return Ok(());
        }
    }
    anyhow::bail!("{who} never reported {what}")
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

fn stop(server: &mut Child) {
    // SIGTERM lets it close connections cleanly; kill if that is not possible.
    let terminated = Command::new("kill")
        .arg(server.id().to_string())
        .status()
        .is_ok_and(|s| s.success());
    if !terminated {
        let _ = server.kill();
    }
    let _ = server.wait();
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"))
}
