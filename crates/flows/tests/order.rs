//! The order in which a real server sends a request's reply and the events
//! it causes, as docs/protocol.md §2 "Order" and §8.3 promise it: read off
//! the socket, message by message.

mod support;

use beckon_protocol::{Event, MemberState, Reason, Reply, ServerMessage};
use serde_json::json;
use support::TestServer;
use support::raw::Raw;

/// Sends `request` and returns the messages that came up to and including
/// the first that `last` picks, leaving out presence events (they come
/// whenever a contact signs in or out).
async fn until(
    raw: &mut Raw,
    request: serde_json::Value,
    last: impl Fn(&ServerMessage) -> bool,
) -> (u64, Vec<ServerMessage>) {
    let id = raw.send(request).await;
    let mut got = Vec::new();
    loop {
        let msg = raw.next().await;
        if matches!(
            msg,
            ServerMessage::Event {
                event: Event::Presence { .. },
                ..
            }
        ) {
            continue;
        }
        let done = last(&msg);
        got.push(msg);
        if done {
            return (id, got);
        }
    }
}

/// What each message is, for comparing orders: "reply", "busy bob",
/// "ended busy", "invited bob", …
fn shape(msg: &ServerMessage) -> String {
    match msg {
        ServerMessage::Reply { reply, .. } => match reply {
            Reply::Invitation { .. } => "reply".into(),
            other => format!("reply {other:?}"),
        },
        ServerMessage::Event { event, .. } => match event {
            Event::MemberState(c)
                if c.state == MemberState::Rejected && c.reason == Reason::Busy =>
            {
                format!("busy {}", c.user)
            }
            Event::MemberState(c) => format!("{:?} {}", c.state, c.user).to_lowercase(),
            Event::CallEnded { reason, .. } => format!("ended {reason:?}").to_lowercase(),
            other => format!("{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

fn ended(msg: &ServerMessage) -> bool {
    matches!(
        msg,
        ServerMessage::Event {
            event: Event::CallEnded { .. },
            ..
        }
    )
}

/// Bob is in a call with Alice.
async fn bob_busy_with_alice(server: &TestServer) -> (Raw, Raw) {
    let mut alice = Raw::register(server, "alice").await;
    let mut bob = Raw::register(server, "bob").await;
    let call_id = match alice
        .ok(json!({"type": "invite", "users": ["bob"], "kind": "video"}))
        .await
    {
        Reply::Invitation { call, .. } => call.call_id.to_string(),
        other => panic!("expected an invitation, got {other:?}"),
    };
    let reply = bob.ok(json!({"type": "accept", "call_id": call_id})).await;
    assert!(matches!(reply, Reply::Call { .. }), "{reply:?}");
    (alice, bob)
}

#[tokio::test]
async fn inviting_someone_busy_gets_the_reply_then_the_refusal_then_the_end() {
    let server = TestServer::start().await;
    let (_alice, _bob) = bob_busy_with_alice(&server).await;
    let mut carol = Raw::register(&server, "carol").await;
    let (id, got) = until(
        &mut carol,
        json!({"type": "invite", "users": ["bob"], "kind": "video"}),
        ended,
    )
    .await;
    let shapes: Vec<String> = got.iter().map(shape).collect();
    assert_eq!(shapes, ["reply", "busy bob", "ended busy"], "{got:?}");
    let ServerMessage::Reply {
        id: got_id,
        reply: Reply::Invitation { call, results, .. },
    } = &got[0]
    else {
        unreachable!("checked above")
    };
    assert_eq!(*got_id, id);
    // The reply already shows the refusal; "busy" is an answer, not an error.
    let bob = call.members.iter().find(|m| m.user.as_str() == "bob");
    assert_eq!(bob.map(|m| m.state), Some(MemberState::Rejected));
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
}

#[tokio::test]
async fn adding_someone_busy_gets_the_reply_then_the_refusal() {
    let server = TestServer::start().await;
    let (_alice, _bob) = bob_busy_with_alice(&server).await;
    let mut carol = Raw::register(&server, "carol").await;
    let mut dave = Raw::register(&server, "dave").await;
    let call_id = match carol
        .ok(json!({"type": "invite", "users": ["dave"], "kind": "video"}))
        .await
    {
        Reply::Invitation { call, .. } => call.call_id.to_string(),
        other => panic!("expected an invitation, got {other:?}"),
    };
    dave.ok(json!({"type": "accept", "call_id": call_id})).await;
    // Carol's events so far: Dave invited, then joined.
    let (_, got) = until(
        &mut carol,
        json!({"type": "add", "call_id": call_id, "users": ["bob"]}),
        |m| shape(m).starts_with("busy"),
    )
    .await;
    let shapes: Vec<String> = got
        .iter()
        .map(shape)
        .filter(|s| !s.ends_with(" dave"))
        .collect();
    assert_eq!(shapes, ["reply", "busy bob"], "{got:?}");
    // The call goes on: Carol and Dave are still in it.
    let reply = carol
        .ok(json!({"type": "call_status", "call_id": call_id}))
        .await;
    let Reply::Call { call } = reply else {
        panic!("expected the call, got {reply:?}")
    };
    let states: Vec<(String, MemberState)> = call
        .members
        .iter()
        .map(|m| (m.user.to_string(), m.state))
        .collect();
    assert!(
        states.contains(&("dave".into(), MemberState::Accepted))
            && states.contains(&("bob".into(), MemberState::Rejected)),
        "{states:?}"
    );
}
