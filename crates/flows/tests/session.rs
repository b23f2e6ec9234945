//! The shared call session between two real clients through a real server:
//! media flows both ways once the call connects, and a member who leaves
//! loses their link.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use beckon_client::{ClientEvent, Notice};
use beckon_media::devices::{self, SYNTHETIC, TONE};
use beckon_media::frame::VideoFrame;
use beckon_media::pipeline::VideoSink;
use beckon_media::sink::mixer::RecordingOutput;
use beckon_protocol::{CallKind, UserId};
use beckon_session::{CallSession, Followed, SessionOptions, Sources};
use support::{Peer, TestServer, WAIT};

/// Counts decoded frames per member.
#[derive(Debug, Default)]
struct Counts(Mutex<HashMap<UserId, u32>>);

impl VideoSink for Counts {
    fn frame(&self, from: &UserId, _frame: VideoFrame) {
        *self.0.lock().unwrap().entry(from.clone()).or_default() += 1;
    }
}

impl Counts {
    fn of(&self, who: &UserId) -> u32 {
        self.0.lock().unwrap().get(who).copied().unwrap_or(0)
    }
}

async fn start(peer: &Peer, we_offer: bool) -> (CallSession, Arc<Counts>) {
    let call_id = peer.client.current_call().expect("in a call").info.call_id;
    let me = peer.client.me().expect("signed in");
    let counts = Arc::new(Counts::default());
    let sources = Sources {
        camera: devices::open_camera(SYNTHETIC, (160, 120, 15)).unwrap(),
        mic: devices::open_microphone(TONE, me.as_str()).unwrap(),
        speaker: Box::new(RecordingOutput::default()),
        sink: counts.clone(),
        self_view: None,
    };
    let options = SessionOptions {
        we_offer,
        udp_addrs: vec!["127.0.0.1:0".into()],
        ..SessionOptions::default()
    };
    let session = CallSession::start(&peer.client, call_id, sources, options)
        .await
        .expect("media starts");
    (session, counts)
}

/// Runs both sessions (signals both ways, client events followed) until
/// `done` holds or the wait runs out; the client events seen meanwhile.
async fn pump(
    peers: &mut [&mut Peer; 2],
    sessions: &mut [&mut CallSession; 2],
    mut done: impl FnMut() -> bool,
) -> Vec<(usize, Followed)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut followed = Vec::new();
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        let [a, b] = peers;
        let [sa, sb] = sessions;
        let tick = tokio::time::sleep(std::time::Duration::from_millis(50));
        tokio::select! {
            Some(e) = a.events.recv() => followed.push((0, sa.follow(&e).await.unwrap())),
            Some(e) = b.events.recv() => followed.push((1, sb.follow(&e).await.unwrap())),
            Some(_) = sa.next_event() => {}
            Some(_) = sb.next_event() => {}
            () = tick => {}
        }
    }
    followed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_both_ways_and_a_member_who_leaves_loses_the_link() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let (a_id, b_id): (UserId, UserId) = ("alice".parse().unwrap(), "bob".parse().unwrap());
    alice
        .client
        .invite(vec![b_id.clone()], CallKind::Video, None)
        .await
        .unwrap();
    let call_id = bob
        .notice("the invitation", |n| match n {
            Notice::IncomingReceived { call, .. } => Some(call.call_id.clone()),
            _ => None,
        })
        .await;
    bob.client.accept(call_id.clone()).await.unwrap();
    alice
        .notice("the call starting", |n| {
            matches!(n, Notice::CallStarted { .. }).then_some(())
        })
        .await;
    // Bob came in last: he offers; alice answers.
    let (mut sa, ca) = start(&alice, false).await;
    let (mut sb, cb) = start(&bob, true).await;
    assert_eq!(sa.media().members(), std::slice::from_ref(&b_id));
    pump(&mut [&mut alice, &mut bob], &mut [&mut sa, &mut sb], || {
        ca.of(&b_id) >= 10 && cb.of(&a_id) >= 10
    })
    .await;
    // Bob leaves: alice's session drops his link.
    bob.client.quit(call_id).await.unwrap();
    let mut removed = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !removed {
        let e = tokio::time::timeout_at(deadline, alice.events.recv())
            .await
            .expect("alice hears bob leave")
            .expect("alice's client runs");
        removed = matches!(sa.follow(&e).await, Ok(Followed::Removed(u)) if u == b_id);
        if let ClientEvent::Notice(Notice::CallEnded { .. }) = e {
            break;
        }
    }
    assert!(removed, "bob's link was dropped");
    assert!(sa.media().members().is_empty());
    sa.close().await;
    sb.close().await;
}
