//! Every call-invitation flow of the seed, end to end: a real server,
//! real WebSockets on loopback, the client library.

mod support;

use std::time::Duration;

use beckon_client::{ClientEvent, StopReason};
use beckon_client::{Notice, Phase};
use beckon_protocol::{
    CallId, CallKind, ErrorCode, MemberState, Outcome, Reason, RejectReason, SessionCloseReason,
    Signal, UserId,
};
use support::{Peer, Proxy, TestServer};

fn uid(s: &str) -> UserId {
    s.parse().unwrap()
}

async fn incoming(peer: &mut Peer) -> CallId {
    peer.notice("an incoming call", |n| match n {
        Notice::IncomingReceived { call, .. } => Some(call.call_id.clone()),
        _ => None,
    })
    .await
}

async fn started(peer: &mut Peer, call: &CallId) {
    peer.notice("the call to start", |n| {
        matches!(n, Notice::CallStarted { call_id } if call_id == call).then_some(())
    })
    .await
}

async fn ended(peer: &mut Peer) -> Reason {
    peer.notice("the call to end", |n| match n {
        Notice::CallEnded { reason, .. } => Some(*reason),
        _ => None,
    })
    .await
}

async fn member_change(peer: &mut Peer, user: &str, state: MemberState) -> Reason {
    let user = uid(user);
    peer.notice("a member change", |n| match n {
        Notice::MemberChanged { change } if change.user == user && change.state == state => {
            Some(change.reason)
        }
        _ => None,
    })
    .await
}

/// alice calls bob and bob accepts: both are in a connected call.
async fn connected_pair(server: &TestServer) -> (Peer, Peer, CallId) {
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let inv = alice
        .client
        .invite(vec![uid("bob")], CallKind::Video, None)
        .await
        .unwrap();
    let call = incoming(&mut bob).await;
    assert_eq!(call, inv.call.call_id);
    bob.client.accept(call.clone()).await.unwrap();
    started(&mut alice, &call).await;
    started(&mut bob, &call).await;
    (alice, bob, call)
}

/// The client's copy of the current call is updated before the reply to
/// `accept` is delivered (on a runtime with threads, the caller may run
/// the moment the reply is sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_call_is_up_to_date_when_accept_returns() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    // Within the server's message rate (each round is a few messages each).
    for round in 0..10 {
        let inv = alice
            .client
            .invite(vec![uid("bob")], CallKind::Video, None)
            .await
            .unwrap();
        let call = incoming(&mut bob).await;
        assert_eq!(call, inv.call.call_id);
        bob.client.accept(call.clone()).await.unwrap();
        assert_eq!(
            bob.client.current_call().map(|c| c.phase),
            Some(Phase::Connected),
            "round {round}: current_call() right after accept()"
        );
        bob.client.end(call.clone()).await.unwrap();
        ended(&mut alice).await;
        ended(&mut bob).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_to_one_call_is_accepted_then_ended_and_kept_in_history() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, call) = connected_pair(&server).await;
    assert_eq!(alice.client.current_call().unwrap().phase, Phase::Connected);
    assert!(bob.client.is_busy());
    tokio::time::sleep(Duration::from_millis(50)).await;
    bob.client.end(call.clone()).await.unwrap();
    assert_eq!(ended(&mut alice).await, Reason::Ended);
    assert_eq!(ended(&mut bob).await, Reason::Ended);
    assert!(!alice.client.is_busy() && !bob.client.is_busy());
    // History is written just after the call ends.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (entries, next) = bob.client.history(None, None).await.unwrap();
    assert_eq!(next, None);
    let entry = &entries[0];
    assert_eq!(entry.call_id, call);
    assert_eq!(entry.inviter, uid("alice"));
    assert_eq!(entry.outcome, Outcome::Answered);
    assert!(!entry.missed);
    assert!(entry.duration_ms >= 40, "{}", entry.duration_ms);
}

#[tokio::test]
async fn callee_declines_and_the_caller_sees_why() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice
        .client
        .invite(vec![uid("bob")], CallKind::Voice, None)
        .await
        .unwrap();
    let call = incoming(&mut bob).await;
    bob.client
        .reject(call, RejectReason::Declined)
        .await
        .unwrap();
    assert_eq!(
        member_change(&mut alice, "bob", MemberState::Rejected).await,
        Reason::Declined
    );
    assert_eq!(ended(&mut alice).await, Reason::Declined);
    assert!(!bob.client.is_busy());
}

#[tokio::test]
async fn caller_cancel_stops_the_callee_ringing() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let inv = alice
        .client
        .invite(vec![uid("bob")], CallKind::Video, None)
        .await
        .unwrap();
    incoming(&mut bob).await;
    alice
        .client
        .cancel(inv.call.call_id.clone(), None)
        .await
        .unwrap();
    let by = bob
        .notice("the cancel", |n| match n {
            Notice::IncomingCancelled { by, .. } => Some(by.clone()),
            _ => None,
        })
        .await;
    assert_eq!(by, Some(uid("alice")));
    assert_eq!(ended(&mut alice).await, Reason::Cancelled);
    assert_eq!(
        bob.client
            .accept(inv.call.call_id)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::CallEnded)
    );
}

#[tokio::test]
async fn callee_timeout_ends_the_call_and_counts_as_missed() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice
        .client
        .invite(vec![uid("bob")], CallKind::Video, Some(1))
        .await
        .unwrap();
    incoming(&mut bob).await;
    bob.notice("the ring to time out", |n| {
        matches!(n, Notice::IncomingTimeout { .. }).then_some(())
    })
    .await;
    assert_eq!(
        member_change(&mut alice, "bob", MemberState::Timeout).await,
        Reason::Timeout
    );
    assert_eq!(ended(&mut alice).await, Reason::Timeout);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bob.client.missed_count().await.unwrap(), 1);
    let (entries, _) = bob.client.history(None, None).await.unwrap();
    assert!(entries[0].missed);
    assert_eq!(entries[0].outcome, Outcome::Missed);
    bob.client.mark_history_seen().await.unwrap();
    assert_eq!(bob.client.missed_count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_busy_callee_is_declined_automatically() {
    let server = TestServer::start().await;
    let (_alice, mut bob, _call) = connected_pair(&server).await;
    let mut carol = server.user("carol").await;
    let inv = carol
        .client
        .invite(vec![uid("bob")], CallKind::Video, None)
        .await
        .unwrap();
    assert_eq!(
        inv.call.member(&uid("bob")).unwrap().state,
        MemberState::Rejected
    );
    assert_eq!(
        member_change(&mut carol, "bob", MemberState::Rejected).await,
        Reason::Busy
    );
    assert_eq!(ended(&mut carol).await, Reason::Busy);
    bob.quiet(Duration::from_millis(300), "ringing while busy", |e| {
        matches!(e, ClientEvent::Notice(Notice::IncomingReceived { .. }))
    })
    .await;
    // And a busy caller cannot start another call.
    let err = bob
        .client
        .invite(vec![uid("carol")], CallKind::Video, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Busy));
}

#[tokio::test]
async fn group_call_with_mixed_answers() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    let mut dave = server.user("dave").await;
    let inv = alice
        .client
        .invite(
            vec![uid("bob"), uid("carol"), uid("dave"), uid("nobody")],
            CallKind::Video,
            Some(2),
        )
        .await
        .unwrap();
    let nobody = inv
        .results
        .iter()
        .find(|r| r.user == uid("nobody"))
        .unwrap();
    assert_eq!(nobody.error, Some(ErrorCode::NotFound));
    let call = incoming(&mut bob).await;
    incoming(&mut carol).await;
    incoming(&mut dave).await;
    carol
        .client
        .reject(call.clone(), RejectReason::Declined)
        .await
        .unwrap();
    assert_eq!(alice.client.current_call().unwrap().phase, Phase::Outgoing);
    bob.client.accept(call.clone()).await.unwrap();
    started(&mut alice, &call).await;
    // Dave lets it ring out; the call goes on.
    assert_eq!(
        member_change(&mut alice, "dave", MemberState::Timeout).await,
        Reason::Timeout
    );
    assert_eq!(
        member_change(&mut bob, "dave", MemberState::Timeout).await,
        Reason::Timeout
    );
    let current = alice.client.current_call().unwrap();
    let states: Vec<_> = current
        .info
        .members
        .iter()
        .map(|m| (m.user.to_string(), m.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("alice".into(), MemberState::Accepted),
            ("bob".into(), MemberState::Accepted),
            ("carol".into(), MemberState::Rejected),
            ("dave".into(), MemberState::Timeout),
        ]
    );
}

#[tokio::test]
async fn a_member_adds_someone_during_the_call() {
    let server = TestServer::start().await;
    let (mut alice, bob, call) = connected_pair(&server).await;
    let mut carol = server.user("carol").await;
    let inv = bob
        .client
        .add(call.clone(), vec![uid("carol")])
        .await
        .unwrap();
    assert_eq!(inv.results[0].error, None);
    let (by, members) = carol
        .notice("the invitation", |n| match n {
            Notice::IncomingReceived { call, by } => Some((by.clone(), call.members.len())),
            _ => None,
        })
        .await;
    assert_eq!(by, uid("bob"));
    assert_eq!(members, 3);
    assert_eq!(
        member_change(&mut alice, "carol", MemberState::Received).await,
        Reason::Delivered
    );
    carol.client.accept(call.clone()).await.unwrap();
    started(&mut carol, &call).await;
    assert_eq!(
        member_change(&mut alice, "carol", MemberState::Accepted).await,
        Reason::Answered
    );
}

#[tokio::test]
async fn quit_leaves_the_others_talking_and_end_stops_everyone() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, call) = connected_pair(&server).await;
    let mut carol = server.user("carol").await;
    alice
        .client
        .add(call.clone(), vec![uid("carol")])
        .await
        .unwrap();
    incoming(&mut carol).await;
    carol.client.accept(call.clone()).await.unwrap();
    alice.client.quit(call.clone()).await.unwrap();
    assert!(!alice.client.is_busy());
    assert_eq!(ended(&mut alice).await, Reason::Quit, "over for her");
    assert_eq!(
        member_change(&mut bob, "alice", MemberState::Quit).await,
        Reason::Quit
    );
    assert!(bob.client.current_call().is_some(), "the call goes on");
    // Alice comes back while it is live.
    alice.client.join(call.clone()).await.unwrap();
    assert_eq!(
        member_change(&mut carol, "alice", MemberState::Accepted).await,
        Reason::Joined
    );
    carol.client.end(call).await.unwrap();
    for p in [&mut alice, &mut bob] {
        assert_eq!(ended(p).await, Reason::Ended);
    }
}

#[tokio::test]
async fn an_offline_invitee_rings_once_it_signs_in_before_the_deadline() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    {
        let bob = server.user("bob").await;
        bob.client.logout().await.unwrap();
    }
    let inv = alice
        .client
        .invite(vec![uid("bob")], CallKind::Video, Some(30))
        .await
        .unwrap();
    assert_eq!(
        inv.call.member(&uid("bob")).unwrap().state,
        MemberState::Inviting
    );
    assert_eq!(
        member_change(&mut alice, "bob", MemberState::NotYetReceived).await,
        Reason::Offline
    );
    let mut bob = Peer::login(&server.url(), "bob", "d1").await;
    let call = incoming(&mut bob).await;
    assert_eq!(
        member_change(&mut alice, "bob", MemberState::Received).await,
        Reason::Delivered
    );
    bob.client.accept(call.clone()).await.unwrap();
    started(&mut alice, &call).await;
}

#[tokio::test]
async fn two_devices_ring_and_the_one_that_answers_wins() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut desk = server.user("bob").await;
    let mut phone = Peer::login(&server.url(), "bob", "phone").await;
    alice
        .client
        .invite(vec![uid("bob")], CallKind::Video, None)
        .await
        .unwrap();
    let call = incoming(&mut desk).await;
    incoming(&mut phone).await;
    phone.client.accept(call.clone()).await.unwrap();
    desk.notice("answered elsewhere", |n| {
        matches!(n, Notice::AnsweredElsewhere { accepted: true, .. }).then_some(())
    })
    .await;
    assert!(!desk.client.is_busy());
    let late = desk.client.accept(call.clone()).await.unwrap_err();
    assert_eq!(late.code(), Some(ErrorCode::AlreadyAnswered));
    started(&mut alice, &call).await;
    // The desk takes the call over.
    desk.client.join(call.clone()).await.unwrap();
    phone
        .notice("moved away", |n| {
            matches!(n, Notice::AnsweredElsewhere { .. }).then_some(())
        })
        .await;
    assert!(desk.client.is_busy() && !phone.client.is_busy());
}

#[tokio::test]
async fn both_calling_each_other_at_once_end_up_in_one_call() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let (a, b) = tokio::join!(
        alice.client.invite(vec![uid("bob")], CallKind::Video, None),
        bob.client.invite(vec![uid("alice")], CallKind::Video, None),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.call.call_id, b.call.call_id);
    assert!(a.merged ^ b.merged, "exactly one invite was merged");
    started(&mut alice, &a.call.call_id).await;
    started(&mut bob, &a.call.call_id).await;
}

#[tokio::test]
async fn signaling_flows_only_between_members_in_the_call() {
    let server = TestServer::start().await;
    let (alice, mut bob, call) = connected_pair(&server).await;
    let offer = Signal::Offer {
        sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n".parse().unwrap(),
    };
    alice
        .client
        .signal(call.clone(), uid("bob"), offer.clone())
        .await
        .unwrap();
    let (from, got) = bob
        .expect("the offer", |e| match e {
            ClientEvent::Signal { from, signal, .. } => Some((from.clone(), signal.clone())),
            _ => None,
        })
        .await;
    assert_eq!((from, got), (uid("alice"), offer.clone()));
    let carol = server.user("carol").await;
    let err = carol
        .client
        .signal(call.clone(), uid("bob"), offer.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotAMember));
    let err = alice
        .client
        .signal(call, uid("carol"), offer)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotAMember));
}

#[tokio::test]
async fn a_short_network_drop_resumes_without_ending_the_call() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(server.server.local_addr()).await;
    let mut alice = server.user("alice").await;
    let mut bob = Peer::register(&proxy.url(), "bob", "d1").await;
    alice
        .client
        .invite(vec![uid("bob")], CallKind::Video, None)
        .await
        .unwrap();
    let call = incoming(&mut bob).await;
    bob.client.accept(call.clone()).await.unwrap();
    started(&mut alice, &call).await;
    proxy.cut();
    bob.expect("the drop", |e| {
        matches!(e, ClientEvent::Disconnected { .. }).then_some(())
    })
    .await;
    let session = bob
        .expect("the resume", |e| match e {
            ClientEvent::Connected { session } => Some(session.clone()),
            _ => None,
        })
        .await;
    assert!(session.resumed);
    // Well past the grace period, the call is still on for both.
    alice
        .quiet(Duration::from_secs(4), "a call end", |e| {
            matches!(
                e,
                ClientEvent::Notice(Notice::CallEnded { .. } | Notice::MemberChanged { .. })
            )
        })
        .await;
    assert_eq!(bob.client.current_call().unwrap().phase, Phase::Connected);
    alice
        .client
        .signal(call.clone(), uid("bob"), Signal::EndOfCandidates)
        .await
        .unwrap();
    bob.expect("a signal after resume", |e| {
        matches!(e, ClientEvent::Signal { .. }).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_drop_longer_than_the_grace_period_leaves_the_call() {
    let server =
        TestServer::start_with(|c| c.registry.disconnect_grace = Duration::from_millis(300)).await;
    let proxy = Proxy::start(server.server.local_addr()).await;
    let mut alice = server.user("alice").await;
    let mut bob = Peer::register(&proxy.url(), "bob", "d1").await;
    alice
        .client
        .invite(vec![uid("bob")], CallKind::Video, None)
        .await
        .unwrap();
    let call = incoming(&mut bob).await;
    bob.client.accept(call.clone()).await.unwrap();
    started(&mut alice, &call).await;
    // The network goes down for longer than the grace period.
    proxy.block(true);
    proxy.cut();
    assert_eq!(
        member_change(&mut alice, "bob", MemberState::Quit).await,
        Reason::Disconnected
    );
    assert_eq!(ended(&mut alice).await, Reason::Disconnected);
    proxy.block(false);
    // Bob learns on his return that the call is gone.
    bob.notice("the lost call", |n| {
        matches!(n, Notice::EndedWhileOffline { .. }).then_some(())
    })
    .await;
    assert!(!bob.client.is_busy());
}

#[tokio::test]
async fn inviter_vanishing_before_an_answer_cancels_the_invitation() {
    let server =
        TestServer::start_with(|c| c.registry.disconnect_grace = Duration::from_millis(200)).await;
    let mut bob = server.user("bob").await;
    {
        let alice = server.user("alice").await;
        alice
            .client
            .invite(vec![uid("bob")], CallKind::Video, None)
            .await
            .unwrap();
        incoming(&mut bob).await;
        drop(alice);
    }
    let by = bob
        .notice("the cancel", |n| match n {
            Notice::IncomingCancelled { by, .. } => Some(by.clone()),
            _ => None,
        })
        .await;
    assert_eq!(by, Some(uid("alice")));
    assert!(!bob.client.is_busy());
}

#[tokio::test]
async fn signing_in_again_on_the_same_device_replaces_the_old_connection() {
    let server = TestServer::start().await;
    let mut first = server.user("alice").await;
    let _second = Peer::login(&server.url(), "alice", "d1").await;
    let reason = first
        .expect("the session to close", |e| match e {
            ClientEvent::Stopped { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(reason, StopReason::Closed(SessionCloseReason::Replaced));
}

#[tokio::test]
async fn wrong_passwords_and_taken_ids_are_refused() {
    let server = TestServer::start().await;
    let _alice = server.user("alice").await;
    let config = beckon_client::ClientConfig::new(
        server.url(),
        "d2".parse().unwrap(),
        beckon_client::Credentials::login(uid("alice"), "wrong horse".parse().unwrap()),
    );
    let err = beckon_client::Client::connect(config).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
    assert!(!err.is_retryable());
    let config = beckon_client::ClientConfig::new(
        server.url(),
        "d2".parse().unwrap(),
        beckon_client::Credentials::Register {
            user: uid("alice"),
            password: "another pass".parse().unwrap(),
            display_name: "Impostor".parse().unwrap(),
        },
    );
    let err = beckon_client::Client::connect(config).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UserExists));
}

#[tokio::test]
async fn a_logged_out_token_no_longer_resumes() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let token = alice.client.session().unwrap().token;
    alice.client.logout().await.unwrap();
    let config = beckon_client::ClientConfig::new(
        server.url(),
        "d1".parse().unwrap(),
        beckon_client::Credentials::Token(token),
    );
    let err = beckon_client::Client::connect(config).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
}

#[tokio::test]
async fn contacts_see_each_other_come_and_go() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    {
        let bob = server.user("bob").await;
        bob.client.logout().await.unwrap();
    }
    alice.client.add_contact(uid("bob")).await.unwrap();
    let contacts = alice.client.contacts().await.unwrap();
    assert_eq!(contacts.len(), 1);
    assert!(!contacts[0].online);
    assert_eq!(
        alice
            .client
            .add_contact(uid("nobody"))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotFound)
    );
    let bob = Peer::login(&server.url(), "bob", "d1").await;
    let online = alice
        .expect("bob online", |e| match e {
            ClientEvent::Presence { user, online } if user == &uid("bob") => Some(*online),
            _ => None,
        })
        .await;
    assert!(online);
    assert!(alice.client.contacts().await.unwrap()[0].online);
    let found = alice.client.search("BO".parse().unwrap()).await.unwrap();
    assert!(found.iter().any(|u| u.id == uid("bob") && u.online));
    drop(bob);
    let online = alice
        .expect("bob offline", |e| match e {
            ClientEvent::Presence { user, online } if user == &uid("bob") => Some(*online),
            _ => None,
        })
        .await;
    assert!(!online);
}

#[tokio::test]
async fn history_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("beckon.db");
    let call = {
        let server = beckon_server::Server::start(support::test_config(db.clone()))
            .await
            .unwrap();
        let url = server.url();
        let mut alice = Peer::register(&url, "alice", "d1").await;
        let bob = Peer::register(&url, "bob", "d1").await;
        let inv = alice
            .client
            .invite(vec![uid("bob")], CallKind::Voice, None)
            .await
            .unwrap();
        bob.client
            .reject(inv.call.call_id.clone(), RejectReason::Busy)
            .await
            .unwrap();
        ended(&mut alice).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.shutdown().await;
        inv.call.call_id
    };
    let server = beckon_server::Server::start(support::test_config(db))
        .await
        .unwrap();
    let alice = Peer::login(&server.url(), "alice", "d1").await;
    let (entries, _) = alice.client.history(None, None).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].call_id, call);
    assert_eq!(entries[0].kind, CallKind::Voice);
    assert_eq!(entries[0].outcome, Outcome::NoAnswer);
    assert!(
        entries[0]
            .members
            .iter()
            .any(|m| m.user == uid("bob") && m.outcome == Outcome::Busy)
    );
}
