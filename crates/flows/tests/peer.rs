//! Headless peers against a real server: what they print is what happened.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beckon_peer::{Options, run};
use beckon_server::{PasswordCost, Server, ServerConfig};
use clap::Parser;
use serde_json::Value;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn events(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    }

    fn kinds(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    }
}

async fn server(dir: &tempfile::TempDir) -> Server {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("beckon.db"),
        password_cost: PasswordCost {
            memory_kib: 64,
            iterations: 1,
        },
        ..ServerConfig::default()
    };
    Server::start(config).await.unwrap()
}

fn options(url: &str, args: &[&str]) -> Options {
    let mut all = vec![
        "beckon-peer",
        "--server",
        url,
        "--password",
        "correct horse",
        "--register",
    ];
    all.extend_from_slice(args);
    Options::parse_from(all)
}

async fn spawn_peer(opts: Options) -> (Lines, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let lines = Lines::default();
    let out = lines.clone();
    let task = tokio::spawn(run(opts, out));
    (lines, task)
}

async fn wait_for(lines: &Lines, kind: &str) {
    for _ in 0..200 {
        if lines.kinds().iter().any(|k| k == kind) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {kind} in {:?}", lines.kinds());
}

#[tokio::test]
async fn two_peers_complete_a_call_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let url = server.url();
    let (bob, bob_task) = spawn_peer(options(
        &url,
        &[
            "--user",
            "bob",
            "--on-incoming",
            "accept",
            "--hangup",
            "stay",
            "--exit-after-call",
        ],
    ))
    .await;
    wait_for(&bob, "signed_in").await;
    let (alice, alice_task) = spawn_peer(options(
        &url,
        &[
            "--user",
            "alice",
            "--call",
            "bob",
            "--hold-secs",
            "0.3",
            "--exit-after-call",
        ],
    ))
    .await;
    tokio::time::timeout(Duration::from_secs(10), alice_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), bob_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let a = alice.kinds();
    let b = bob.kinds();
    for k in [
        "signed_in",
        "invited",
        "member",
        "call_started",
        "call_ended",
    ] {
        assert!(a.contains(&k.to_string()), "alice: {a:?}");
    }
    for k in ["incoming", "accepted", "call_started", "call_ended"] {
        assert!(b.contains(&k.to_string()), "bob: {b:?}");
    }
    let ended = bob
        .events()
        .into_iter()
        .find(|e| e["event"] == "call_ended")
        .unwrap();
    assert_eq!(ended["reason"], "ended");
    assert_eq!(ended["by"], "alice");
    let started = alice
        .events()
        .into_iter()
        .find(|e| e["event"] == "call_started")
        .unwrap();
    assert_eq!(started["in_call"], serde_json::json!(["alice", "bob"]));
}

#[tokio::test]
async fn a_busy_peer_declines_as_busy() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let url = server.url();
    let (bob, bob_task) = spawn_peer(options(
        &url,
        &[
            "--user",
            "bob",
            "--on-incoming",
            "busy",
            "--exit-after-call",
        ],
    ))
    .await;
    wait_for(&bob, "signed_in").await;
    let (alice, alice_task) = spawn_peer(options(
        &url,
        &["--user", "alice", "--call", "bob", "--exit-after-call"],
    ))
    .await;
    tokio::time::timeout(Duration::from_secs(10), alice_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), bob_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let member = alice
        .events()
        .into_iter()
        .find(|e| e["event"] == "member")
        .unwrap();
    assert_eq!(
        (
            member["who"].as_str(),
            member["state"].as_str(),
            member["reason"].as_str()
        ),
        (Some("bob"), Some("rejected"), Some("busy"))
    );
    let ended = alice
        .events()
        .into_iter()
        .find(|e| e["event"] == "call_ended")
        .unwrap();
    assert_eq!(ended["reason"], "busy");
}

#[tokio::test]
async fn an_unanswered_call_times_out_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let url = server.url();
    let (bob, bob_task) = spawn_peer(options(
        &url,
        &[
            "--user",
            "bob",
            "--on-incoming",
            "ignore",
            "--exit-after-call",
        ],
    ))
    .await;
    wait_for(&bob, "signed_in").await;
    let (alice, alice_task) = spawn_peer(options(
        &url,
        &[
            "--user",
            "alice",
            "--call",
            "bob",
            "--timeout-secs",
            "1",
            "--exit-after-call",
        ],
    ))
    .await;
    tokio::time::timeout(Duration::from_secs(10), alice_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), bob_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        bob.kinds().contains(&"ring_timeout".to_string()),
        "{:?}",
        bob.kinds()
    );
    let ended = alice
        .events()
        .into_iter()
        .find(|e| e["event"] == "call_ended")
        .unwrap();
    assert_eq!(ended["reason"], "timeout");
}

#[tokio::test]
async fn a_wrong_password_is_reported_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let url = server.url();
    let (first, t) = spawn_peer(options(
        &url,
        &["--user", "carol", "--exit-after-secs", "0.1"],
    ))
    .await;
    t.await.unwrap().unwrap();
    assert!(first.kinds().contains(&"signed_in".to_string()));
    let opts = Options::parse_from([
        "beckon-peer",
        "--server",
        &url,
        "--user",
        "carol",
        "--password",
        "not the one",
    ]);
    let (lines, task) = spawn_peer(opts).await;
    assert!(task.await.unwrap().is_err());
    let err = lines
        .events()
        .into_iter()
        .find(|e| e["event"] == "error")
        .unwrap();
    assert_eq!(err["code"], "unauthorized");
}

fn media_options(url: &str, args: &[&str]) -> Options {
    let mut all = vec![
        "beckon-peer",
        "--server",
        url,
        "--password",
        "correct horse",
        "--register",
        "--udp-addr",
        "127.0.0.1:0",
        "--video-size",
        "320x240",
        "--stats-every-secs",
        "0.5",
    ];
    all.extend_from_slice(args);
    Options::parse_from(all)
}

/// The last `stats` line's entry for member `who`.
fn last_stats_of(lines: &Lines, who: &str) -> Value {
    lines
        .events()
        .into_iter()
        .filter(|e| e["event"] == "stats")
        .filter_map(|e| {
            e["members"]
                .as_array()?
                .iter()
                .find(|m| m["who"] == who)
                .cloned()
        })
        .next_back()
        .unwrap_or_else(|| panic!("no stats about {who}: {:?}", lines.kinds()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_see_and_hear_each_other_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let url = server.url();
    let (bob, bob_task) = spawn_peer(media_options(
        &url,
        &["--user", "bob", "--hangup", "stay", "--exit-after-call"],
    ))
    .await;
    wait_for(&bob, "signed_in").await;
    let (alice, alice_task) = spawn_peer(media_options(
        &url,
        &[
            "--user",
            "alice",
            "--call",
            "bob",
            "--hold-secs",
            "3",
            "--exit-after-call",
        ],
    ))
    .await;
    tokio::time::timeout(Duration::from_secs(20), alice_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), bob_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    for (lines, other) in [(&alice, "bob"), (&bob, "alice")] {
        let s = last_stats_of(lines, other);
        assert!(s["frames"].as_u64().unwrap() >= 30, "{s}");
        assert!(s["last_frame"].as_u64().unwrap() >= 30, "{s}");
        assert_eq!(s["size"], "320x240");
        let tone = beckon_media::source::synthetic::tone_for(other);
        assert_eq!(s["tone_hz"].as_f64(), Some(f64::from(tone)), "{s}");
        assert_eq!(s["state"], "connected");
        assert!(s["latency_ms_p50"].as_f64().unwrap() < 500.0, "{s}");
    }
    let kinds = alice.kinds();
    assert!(
        kinds.contains(&"media_started".to_string()) && kinds.contains(&"peer_state".to_string()),
        "{kinds:?}"
    );
    let state = bob
        .events()
        .into_iter()
        .find(|e| e["event"] == "media_state")
        .expect("alice's media state");
    assert_eq!(
        (state["mic"].as_bool(), state["camera"].as_bool()),
        (Some(true), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_devices_are_reported_and_the_call_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let url = server.url();
    // This machine has no camera, and no microphone by that name.
    let (bob, bob_task) = spawn_peer(media_options(
        &url,
        &[
            "--user",
            "bob",
            "--hangup",
            "stay",
            "--exit-after-call",
            "--camera",
            "default",
            "--mic",
            "no-such-mic",
        ],
    ))
    .await;
    wait_for(&bob, "signed_in").await;
    let (alice, alice_task) = spawn_peer(media_options(
        &url,
        &[
            "--user",
            "alice",
            "--call",
            "bob",
            "--hold-secs",
            "2",
            "--exit-after-call",
        ],
    ))
    .await;
    tokio::time::timeout(Duration::from_secs(20), alice_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), bob_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let failures: Vec<String> = bob
        .events()
        .into_iter()
        .filter(|e| e["event"] == "device_failed")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        failures.iter().any(|m| m.contains("camera not found")),
        "{failures:?}"
    );
    assert!(
        failures.iter().any(|m| m.contains("microphone not found")),
        "{failures:?}"
    );
    // Bob still sees and hears alice; alice sees nothing from bob, and hears silence.
    let s = last_stats_of(&bob, "alice");
    assert!(s["frames"].as_u64().unwrap() >= 20, "{s}");
    let s = last_stats_of(&alice, "bob");
    assert_eq!(s["frames"].as_u64(), Some(0), "{s}");
    assert_eq!(s["tone_hz"], Value::Null, "{s}");
}
