//! Bad input over raw WebSockets: what a client sees when it sends a real
//! server something it should not, and that the connection (or the server)
//! still works afterwards.

mod support;

use beckon_protocol::{ErrorCode, Event, Reply, ServerMessage, SessionCloseReason};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::raw::{Raw, expect_error, until_closed};
use support::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A call id that no call has.
const NO_SUCH_CALL: &str = "0123456789abcdef0123456789abcdef";

fn is_error(msg: &ServerMessage, code: ErrorCode) -> bool {
    matches!(msg, ServerMessage::Error { error, .. } if error.code == code)
}

fn invite(users: Value) -> Value {
    json!({"type": "invite", "users": users, "kind": "video"})
}

/// Invites `callee` and returns the new call's id.
async fn call_id_of_invite(raw: &mut Raw, callee: &str) -> String {
    match raw.ok(invite(json!([callee]))).await {
        Reply::Invitation { call, .. } => call.call_id.to_string(),
        other => panic!("expected an invitation, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_before_sign_in_get_unauthorized_and_the_connection_lives() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    raw.refused(json!({"type": "contacts"}), ErrorCode::Unauthorized)
        .await;
    raw.refused(invite(json!(["bob"])), ErrorCode::Unauthorized)
        .await;
    raw.refused(json!({"type": "logout"}), ErrorCode::Unauthorized)
        .await;
    raw.assert_alive().await;
}

#[tokio::test]
async fn malformed_messages_get_invalid_and_the_connection_lives() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    // The raw text, the id the error must carry, and what its message names.
    let cases = [
        (r#"{"id": 1, "type": "ping""#, None, "EOF"),
        (r#"[{"id": 2, "type": "ping"}]"#, None, "malformed"),
        (r#"{"type": "ping"}"#, None, "`id`"),
        (r#"{"id": "4", "type": "ping"}"#, None, "malformed"),
        (r#"{"id": -5, "type": "ping"}"#, None, "malformed"),
        (r#"{"id": 6, "type": "teleport"}"#, Some(6), "teleport"),
        (
            r#"{"id": 7, "type": "accept"}"#,
            Some(7),
            "missing field `call_id`",
        ),
        (
            r#"{"id": 8, "type": "login", "version": 1, "user": "Alice", "password": "correct horse", "device": "laptop"}"#,
            Some(8),
            "user_id",
        ),
    ];
    for (text, id, names) in cases {
        let message = raw.refused_raw(text, id, ErrorCode::Invalid).await;
        assert!(message.contains(names), "{text}: {message}");
    }

    // extended_data: 4096 bytes pass decoding (and then need a sign-in),
    // 4097 bytes make the message invalid.
    let mut at_limit = invite(json!(["bob"]));
    at_limit["extended_data"] = json!("x".repeat(4096));
    raw.refused(at_limit, ErrorCode::Unauthorized).await;
    let mut over = invite(json!(["bob"]));
    over["extended_data"] = json!("x".repeat(4097));
    let message = raw.refused(over, ErrorCode::Invalid).await;
    assert!(message.contains("extended_data"), "{message}");
    raw.assert_alive().await;
}

#[tokio::test]
async fn oversize_message_gets_too_large_and_the_connection_lives() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    let pad = "x".repeat(70 * 1024);
    let text = format!(r#"{{"id": 1, "type": "ping", "pad": "{pad}"}}"#);
    raw.send_text(text).await;
    let message = expect_error(raw.answer().await, None, ErrorCode::TooLarge, "70 KiB");
    assert!(message.contains("65536"), "{message}");
    raw.assert_alive().await;
}

#[tokio::test]
async fn oversize_frame_closes_the_connection_with_code_1009() {
    let server = TestServer::start().await;
    let raw = Raw::connect(&server).await;
    let pad = "x".repeat(300 * 1024);
    let text = format!(r#"{{"id": 1, "type": "ping", "pad": "{pad}"}}"#);
    // Write and read at once, like a real client: the server closes before
    // it has read the whole frame, so the write may never finish.
    let (mut tx, mut rx) = raw.ws.split();
    let writer = tokio::spawn(async move { tx.send(Message::text(text)).await });
    let (messages, code) = until_closed(&mut rx).await;
    writer.abort();
    assert!(messages.is_empty(), "{messages:?}");
    assert_eq!(code, Some(1009), "close code (message too big)");
}

#[tokio::test]
async fn binary_frame_gets_invalid_and_the_connection_lives() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    raw.ws
        .send(Message::binary(br#"{"id": 1, "type": "ping"}"#.to_vec()))
        .await
        .unwrap();
    expect_error(raw.answer().await, None, ErrorCode::Invalid, "binary frame");
    raw.assert_alive().await;
}

#[tokio::test]
async fn another_protocol_version_gets_version_mismatch() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    raw.refused(
        json!({"type": "login", "version": 2, "user": "alice",
            "password": "correct horse", "device": "laptop"}),
        ErrorCode::VersionMismatch,
    )
    .await;
    raw.refused(
        json!({"type": "register", "version": 0, "user": "alice",
            "password": "correct horse", "display_name": "Alice", "device": "laptop"}),
        ErrorCode::VersionMismatch,
    )
    .await;
    raw.assert_alive().await;
    // Nothing was created: version 1 can still register the name.
    let mut alice = Raw::register(&server, "alice").await;
    alice.assert_alive().await;
}

#[tokio::test]
async fn requests_about_an_unknown_call_get_not_found() {
    let server = TestServer::start().await;
    let mut alice = Raw::register(&server, "alice").await;
    for kind in ["accept", "end", "join", "call_status"] {
        alice
            .refused(
                json!({"type": kind, "call_id": NO_SUCH_CALL}),
                ErrorCode::NotFound,
            )
            .await;
    }
    alice.assert_alive().await;
}

#[tokio::test]
async fn signing_in_twice_on_one_connection_gets_invalid() {
    let server = TestServer::start().await;
    let mut alice = Raw::register(&server, "alice").await;
    alice
        .refused(
            json!({"type": "login", "version": 1, "user": "alice",
                "password": "correct horse", "device": "laptop"}),
            ErrorCode::Invalid,
        )
        .await;
    alice.assert_alive().await;
}

#[tokio::test]
async fn signal_to_someone_outside_the_call_gets_not_a_member() {
    let server = TestServer::start().await;
    let mut alice = Raw::register(&server, "alice").await;
    let mut bob = Raw::register(&server, "bob").await;
    Raw::register(&server, "carol").await;
    let call_id = call_id_of_invite(&mut alice, "bob").await;
    let offer = |to: &str| {
        json!({"type": "signal", "call_id": call_id, "to": to,
            "signal": {"kind": "offer", "sdp": "v=0"}})
    };
    // Bob is only ringing: not in the call yet.
    alice.refused(offer("bob"), ErrorCode::NotAMember).await;
    let reply = bob.ok(json!({"type": "accept", "call_id": call_id})).await;
    assert!(matches!(reply, Reply::Call { .. }), "{reply:?}");
    // Carol has an account but no part in the call.
    alice.refused(offer("carol"), ErrorCode::NotAMember).await;
    // And bob, now in the call, is reachable.
    assert_eq!(alice.ok(offer("bob")).await, Reply::Done);
    alice.assert_alive().await;
}

#[tokio::test]
async fn end_after_the_call_ended_gets_call_ended() {
    let server = TestServer::start().await;
    let mut alice = Raw::register(&server, "alice").await;
    let mut bob = Raw::register(&server, "bob").await;
    let call_id = call_id_of_invite(&mut alice, "bob").await;
    let reply = bob.ok(json!({"type": "reject", "call_id": call_id})).await;
    assert_eq!(reply, Reply::Done);
    alice
        .refused(
            json!({"type": "end", "call_id": call_id}),
            ErrorCode::CallEnded,
        )
        .await;
    bob.refused(
        json!({"type": "accept", "call_id": call_id}),
        ErrorCode::CallEnded,
    )
    .await;
    alice.assert_alive().await;
}

#[tokio::test]
async fn invites_that_break_the_rules_are_refused() {
    let server = TestServer::start().await;
    let mut alice = Raw::register(&server, "alice").await;
    Raw::register(&server, "bob").await;
    alice
        .refused(invite(json!(["nobody", "noone"])), ErrorCode::NotFound)
        .await;
    let crowd: Vec<String> = (0..33).map(|i| format!("user{i}")).collect();
    let message = alice
        .refused(invite(json!(crowd)), ErrorCode::Invalid)
        .await;
    assert!(message.contains("32"), "{message}");
    let mut no_ring = invite(json!(["bob"]));
    no_ring["timeout_secs"] = json!(0);
    let message = alice.refused(no_ring, ErrorCode::Invalid).await;
    assert!(message.contains("timeout_secs"), "{message}");
    alice.assert_alive().await;
    // None of that started a call: alice is free to call bob.
    call_id_of_invite(&mut alice, "bob").await;
}

#[tokio::test]
async fn a_burst_beyond_the_rate_limit_gets_rate_limited_then_recovers() {
    // The default limit: a burst of 40, then 20 per second.
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    for id in 0..80 {
        let ping = json!({"id": id, "type": "ping"}).to_string();
        raw.ws.feed(Message::text(ping)).await.unwrap();
    }
    raw.ws.flush().await.unwrap();
    let (mut pongs, mut limited) = (0, 0);
    let mut answered = Vec::new();
    for _ in 0..80 {
        match raw.answer().await {
            ServerMessage::Reply {
                id,
                reply: Reply::Pong,
            } => {
                pongs += 1;
                answered.push(id);
            }
            ServerMessage::Error {
                id: Some(id),
                error,
            } if error.code == ErrorCode::RateLimited => {
                // The refusal names the request it refused.
                limited += 1;
                answered.push(id);
            }
            other => panic!("expected pong or rate_limited, got {other:?}"),
        }
    }
    assert!(pongs >= 40, "the burst goes through: {pongs} pongs");
    assert!(limited > 0, "{pongs} pongs, nothing rate limited");
    answered.sort_unstable();
    assert_eq!(
        answered,
        (0..80).collect::<Vec<u64>>(),
        "every ping answered once"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    raw.assert_alive().await;
}

#[tokio::test]
async fn a_flood_far_over_the_rate_limit_is_closed_as_abuse() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    for id in 0..400 {
        let ping = json!({"id": id, "type": "ping"}).to_string();
        // The server may close while we are still writing.
        if raw.ws.feed(Message::text(ping)).await.is_err() {
            break;
        }
    }
    let _ = raw.ws.flush().await;
    let (messages, code) = raw.until_closed().await;
    let limited = messages
        .iter()
        .filter(|m| is_error(m, ErrorCode::RateLimited))
        .count();
    let pongs = messages
        .iter()
        .filter(|m| matches!(m, ServerMessage::Reply { .. }))
        .count();
    // More than 200 excess messages close the connection: 200 get
    // rate_limited, the 201st gets the connection closed.
    assert_eq!(limited, 200, "{pongs} pongs");
    assert!(pongs >= 40 && pongs + limited < 400, "{pongs} pongs");
    assert_eq!(
        messages.last(),
        Some(&ServerMessage::Event {
            event: Event::SessionClosed {
                reason: SessionCloseReason::Abuse
            }
        })
    );
    assert_eq!(code, Some(1008), "close code (policy violation)");
}

/// A plain HTTP/1.1 GET; returns the status and the body.
async fn http_get(server: &TestServer, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(server.server.local_addr())
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .expect("the response comes in time")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    (status, body.to_string())
}

/// The value of the sample `name` (labels included) in Prometheus text.
fn sample(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

#[tokio::test]
async fn health_and_metrics_answer_plain_http_and_count_the_errors() {
    let server = TestServer::start().await;
    assert_eq!(http_get(&server, "/healthz").await, (200, "ok".to_string()));

    let mut raw = Raw::connect(&server).await;
    for text in ["not json", "[]", r#"{"id": 1, "type": "teleport"}"#] {
        raw.send_text(text).await;
        assert!(is_error(&raw.answer().await, ErrorCode::Invalid), "{text}");
    }
    let (status, metrics) = http_get(&server, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(sample(&metrics, "beckon_connections"), 1, "{metrics}");
    assert_eq!(
        sample(&metrics, r#"beckon_errors_total{code="invalid"}"#),
        3,
        "{metrics}"
    );
    raw.assert_alive().await;
}

/// xorshift64: the same garbage on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "{\"id\":",
    "\"id\":",
    "\"type\":",
    "\"type\":\"invite\"",
    "\"type\":\"login\"",
    "\"type\":\"signal\"",
    "\"users\":[\"bob\"",
    "\"call_id\":\"",
    "\"version\":1",
    "null",
    "true",
    "-0",
    "1e999",
    "18446744073709551616",
    "\\u0000",
    "\\ud800",
    "\u{0}",
    "é",
    "😀",
    "\u{202e}",
];

/// Up to 16 pieces: JSON-ish fragments, printable ASCII, or any char.
fn garbage(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(17) {
        match rng.below(3) {
            0 => s.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]),
            1 => s.push(char::from(b' ' + rng.below(95) as u8)),
            _ => s.push(char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}')),
        }
    }
    s
}

#[tokio::test]
async fn random_garbage_gets_an_error_each_and_the_connection_lives() {
    let server = TestServer::start_with(|c| {
        c.rate_burst = 10_000;
        c.rate_per_sec = 10_000;
    })
    .await;
    let mut raw = Raw::connect(&server).await;
    let mut rng = Rng(0x5eed_beef_cafe_f00d);
    for _ in 0..200 {
        let text = garbage(&mut rng);
        raw.send_text(text.clone()).await;
        match raw.answer().await {
            ServerMessage::Error { .. } => {}
            other => panic!("{text:?}: expected an error, got {other:?}"),
        }
    }
    raw.assert_alive().await;
}
