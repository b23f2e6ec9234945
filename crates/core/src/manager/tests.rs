//! The call manager driven by the real registry: what each device's UI
//! would be told.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use beckon_protocol::{
    CallId, CallKind, DeviceId, ExtendedData, Reason, RejectReason, Reply, ServerMessage, UserId,
};

use super::*;
use crate::registry::{CallRequest, Input, InviteRequest, Output, Registry, RegistryConfig};

fn uid(s: &str) -> UserId {
    UserId::try_from(s).unwrap()
}

fn dev(s: &str) -> DeviceId {
    DeviceId::try_from(s).unwrap()
}

/// A registry and one manager per device, wired like server and clients.
struct World {
    reg: Registry,
    now: Instant,
    managers: HashMap<(UserId, DeviceId), CallManager>,
    notices: HashMap<(UserId, DeviceId), Vec<Notice>>,
    next: u64,
}

impl World {
    #[allow(clippy::disallowed_methods)] // the virtual clock's origin
    fn new() -> Self {
        Self {
            reg: Registry::new(RegistryConfig::default()),
            now: Instant::now(),
            managers: HashMap::new(),
            notices: HashMap::new(),
            next: 0,
        }
    }

    fn online(&mut self, user: &str, device: &str) {
        self.managers.insert(
            (uid(user), dev(device)),
            CallManager::new(uid(user), dev(device)),
        );
        self.reg.handle(
            self.now,
            Input::Online {
                user: uid(user),
                device: dev(device),
            },
        );
        self.pump();
    }

    fn request(&mut self, user: &str, device: &str, request: CallRequest) {
        self.next += 1;
        let (user, device) = (uid(user), dev(device));
        self.reg.handle(
            self.now,
            Input::Request {
                user,
                device,
                id: self.next,
                request,
            },
        );
        self.pump();
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.reg.handle_timeout(self.now);
        self.pump();
    }

    /// Delivers outputs to managers, runs their actions, until quiet.
    fn pump(&mut self) {
        loop {
            let mut actions = Vec::new();
            while let Some(out) = self.reg.poll_output() {
                let Output::Send {
                    user,
                    device,
                    message,
                } = out
                else {
                    continue;
                };
                let Some(m) = self.managers.get_mut(&(user.clone(), device.clone())) else {
                    continue;
                };
                match message {
                    ServerMessage::Event { event } => m.handle_event(&event),
                    ServerMessage::Reply {
                        reply: Reply::Invitation { call, .. },
                        ..
                    } if call
                        .member(&user)
                        .is_some_and(|me| me.state == MemberState::Accepted) =>
                    {
                        m.on_invited(call)
                    }
                    ServerMessage::Reply {
                        reply: Reply::Call { call },
                        ..
                    } => m.on_in_call(call),
                    _ => {}
                }
                while let Some(a) = m.poll_action() {
                    actions.push((user.clone(), device.clone(), a));
                }
                let notices = self
                    .notices
                    .entry((user.clone(), device.clone()))
                    .or_default();
                while let Some(n) = m.poll_notice() {
                    notices.push(n);
                }
            }
            if actions.is_empty() {
                return;
            }
            for (user, device, Action::Reject { call_id, reason }) in actions {
                self.next += 1;
                let request = CallRequest::Reject {
                    call_id,
                    reason,
                    extended_data: ExtendedData::default(),
                };
                self.reg.handle(
                    self.now,
                    Input::Request {
                        user,
                        device,
                        id: self.next,
                        request,
                    },
                );
            }
        }
    }

    fn invite(&mut self, from: &str, to: &[&str]) -> CallId {
        let call_id = CallId::try_from(format!("call{:028}", self.next + 1)).unwrap();
        self.request(
            from,
            "d1",
            CallRequest::Invite(InviteRequest {
                call_id: call_id.clone(),
                users: to.iter().map(|u| uid(u)).collect(),
                unknown: vec![],
                kind: CallKind::Video,
                timeout_secs: Some(30),
                extended_data: ExtendedData::default(),
            }),
        );
        call_id
    }

    fn accept(&mut self, user: &str, device: &str, call_id: &CallId) {
        let request = CallRequest::Accept {
            call_id: call_id.clone(),
            extended_data: ExtendedData::default(),
        };
        self.request(user, device, request);
    }

    fn notices(&mut self, user: &str, device: &str) -> Vec<Notice> {
        self.notices
            .remove(&(uid(user), dev(device)))
            .unwrap_or_default()
    }

    fn manager(&self, user: &str, device: &str) -> &CallManager {
        &self.managers[&(uid(user), dev(device))]
    }
}

#[test]
fn an_answered_call_starts_on_both_sides() {
    let mut w = World::new();
    w.online("alice", "d1");
    w.online("bob", "d1");
    let call = w.invite("alice", &["bob"]);
    assert_eq!(
        w.manager("alice", "d1").current().unwrap().phase,
        Phase::Outgoing
    );
    let bob = w.notices("bob", "d1");
    assert!(
        matches!(&bob[..], [Notice::BusyChanged { busy: true }, Notice::IncomingReceived { by, .. }] if by == &uid("alice"))
    );
    assert_eq!(
        w.manager("bob", "d1").current().unwrap().phase,
        Phase::Incoming
    );
    w.accept("bob", "d1", &call);
    assert!(w.notices("bob", "d1").contains(&Notice::CallStarted {
        call_id: call.clone()
    }));
    let alice = w.notices("alice", "d1");
    assert!(alice.iter().any(
        |n| matches!(n, Notice::MemberChanged { change } if change.state == MemberState::Accepted)
    ));
    assert!(alice.contains(&Notice::CallStarted {
        call_id: call.clone()
    }));
    assert_eq!(
        w.manager("alice", "d1").current().unwrap().phase,
        Phase::Connected
    );
    let others: Vec<_> = w
        .manager("alice", "d1")
        .current()
        .unwrap()
        .others_in_call(&uid("alice"))
        .cloned()
        .collect();
    assert_eq!(others, vec![uid("bob")]);
}

#[test]
fn a_declined_call_ends_with_the_reason_and_frees_both() {
    let mut w = World::new();
    w.online("alice", "d1");
    w.online("bob", "d1");
    let call = w.invite("alice", &["bob"]);
    w.notices("alice", "d1");
    let request = CallRequest::Reject {
        call_id: call.clone(),
        reason: RejectReason::Declined,
        extended_data: ExtendedData::default(),
    };
    w.request("bob", "d1", request);
    let bob = w.managers.get_mut(&(uid("bob"), dev("d1"))).unwrap();
    // The server's word about our own answer already freed us.
    assert!(!bob.is_busy());
    bob.on_left(&call, Reason::Declined);
    assert_eq!(bob.poll_notice(), None, "nothing left to end");
    let alice = w.notices("alice", "d1");
    assert!(alice.contains(&Notice::CallEnded {
        call_id: call.clone(),
        reason: Reason::Declined,
        by: Some(uid("bob"))
    }));
    assert!(alice.contains(&Notice::BusyChanged { busy: false }));
    assert!(!w.manager("alice", "d1").is_busy());
    assert!(!w.manager("bob", "d1").is_busy());
}

#[test]
fn the_callee_hears_cancel_and_timeout() {
    let mut w = World::new();
    for u in ["alice", "bob"] {
        w.online(u, "d1");
    }
    let call = w.invite("alice", &["bob"]);
    w.request(
        "alice",
        "d1",
        CallRequest::Cancel {
            call_id: call.clone(),
            users: None,
            extended_data: ExtendedData::default(),
        },
    );
    let bob = w.notices("bob", "d1");
    assert!(bob.contains(&Notice::IncomingCancelled {
        call_id: call.clone(),
        by: Some(uid("alice"))
    }));
    assert!(!w.manager("bob", "d1").is_busy());

    let call = w.invite("alice", &["bob"]);
    w.advance(31);
    let bob = w.notices("bob", "d1");
    assert!(bob.contains(&Notice::IncomingTimeout {
        call_id: call.clone()
    }));
    let alice = w.notices("alice", "d1");
    assert!(alice.iter().any(|n| matches!(
        n,
        Notice::CallEnded {
            reason: Reason::Timeout,
            ..
        }
    )));
}

#[test]
fn answering_on_one_device_tells_the_other() {
    let mut w = World::new();
    w.online("alice", "d1");
    w.online("bob", "desk");
    w.online("bob", "phone");
    let call = w.invite("alice", &["bob"]);
    w.accept("bob", "phone", &call);
    let desk = w.notices("bob", "desk");
    assert!(desk.contains(&Notice::AnsweredElsewhere {
        call_id: call.clone(),
        accepted: true
    }));
    assert!(
        !w.manager("bob", "desk").is_busy(),
        "the desk is free again"
    );
    assert_eq!(
        w.manager("bob", "phone").current().unwrap().phase,
        Phase::Connected
    );
}

#[test]
fn declining_on_one_device_tells_the_other() {
    let mut w = World::new();
    w.online("alice", "d1");
    w.online("carol", "d1");
    w.online("bob", "desk");
    w.online("bob", "phone");
    let call = w.invite("alice", &["bob", "carol"]);
    let request = CallRequest::Reject {
        call_id: call.clone(),
        reason: RejectReason::Declined,
        extended_data: ExtendedData::default(),
    };
    w.request("bob", "phone", request);
    let desk = w.notices("bob", "desk");
    assert!(desk.contains(&Notice::AnsweredElsewhere {
        call_id: call,
        accepted: false
    }));
}

#[test]
fn an_invitation_while_busy_is_declined_as_busy() {
    let mut w = World::new();
    for u in ["alice", "bob", "carol"] {
        w.online(u, "d1");
    }
    let first = w.invite("alice", &["bob"]);
    // The manager refuses a second invitation on its own, should one reach it
    // (e.g. from another server node that does not yet know bob is busy).
    let other = CallInfo {
        call_id: CallId::try_from("ffffffffffffffffffffffffffffffff").unwrap(),
        kind: CallKind::Voice,
        inviter: uid("carol"),
        extended_data: ExtendedData::default(),
        timeout_secs: 30,
        members: vec![],
    };
    let m = w.managers.get_mut(&(uid("bob"), dev("d1"))).unwrap();
    m.handle_event(&Event::CallInvited {
        call: other.clone(),
        by: uid("carol"),
        remaining_ms: 30_000,
    });
    assert_eq!(
        m.poll_action(),
        Some(Action::Reject {
            call_id: other.call_id.clone(),
            reason: RejectReason::Busy
        })
    );
    assert_eq!(
        m.current().unwrap().info.call_id,
        first,
        "the first call is untouched"
    );
}

#[test]
fn glare_puts_both_in_one_connected_call() {
    let mut w = World::new();
    w.online("alice", "d1");
    w.online("bob", "d1");
    let call = w.invite("alice", &["bob"]);
    let call_id = CallId::try_from("g0000000000000000000000000000001").unwrap();
    w.request(
        "bob",
        "d1",
        CallRequest::Invite(InviteRequest {
            call_id,
            users: vec![uid("alice")],
            unknown: vec![],
            kind: CallKind::Video,
            timeout_secs: None,
            extended_data: ExtendedData::default(),
        }),
    );
    for u in ["alice", "bob"] {
        let c = w.manager(u, "d1").current().unwrap();
        assert_eq!(c.info.call_id, call);
        assert_eq!(c.phase, Phase::Connected, "{u}");
    }
}

#[test]
fn a_group_caller_waits_until_the_first_answer() {
    let mut w = World::new();
    for u in ["alice", "bob", "carol"] {
        w.online(u, "d1");
    }
    let call = w.invite("alice", &["bob", "carol"]);
    let request = CallRequest::Reject {
        call_id: call.clone(),
        reason: RejectReason::Declined,
        extended_data: ExtendedData::default(),
    };
    w.request("bob", "d1", request);
    assert_eq!(
        w.manager("alice", "d1").current().unwrap().phase,
        Phase::Outgoing
    );
    w.accept("carol", "d1", &call);
    assert_eq!(
        w.manager("alice", "d1").current().unwrap().phase,
        Phase::Connected
    );
    let carol = w.manager("carol", "d1").current().unwrap();
    assert_eq!(
        carol.info.member(&uid("bob")).unwrap().state,
        MemberState::Rejected
    );
}

#[test]
fn events_about_other_calls_are_ignored() {
    let mut m = CallManager::new(uid("bob"), dev("d1"));
    let stranger = CallId::try_from("ffffffffffffffffffffffffffffffff").unwrap();
    m.handle_event(&Event::CallEnded {
        call_id: stranger,
        reason: Reason::Ended,
        by: None,
        extended_data: Default::default(),
    });
    assert_eq!(m.poll_notice(), None);
    assert!(!m.is_busy());
}

#[test]
fn after_a_reconnect_the_status_reply_keeps_or_drops_the_call() {
    let mut w = World::new();
    w.online("alice", "d1");
    w.online("bob", "d1");
    let call = w.invite("alice", &["bob"]);
    w.accept("bob", "d1", &call);
    w.notices("bob", "d1");
    let m = w.managers.get_mut(&(uid("bob"), dev("d1"))).unwrap();
    let info = m.current().unwrap().info.clone();
    m.on_status(&call, Ok(info));
    assert_eq!(m.current().unwrap().phase, Phase::Connected);
    assert_eq!(m.poll_notice(), None, "nothing changed");
    m.on_status(&call, Err(ErrorCode::CallEnded));
    assert!(!m.is_busy());
    assert_eq!(m.poll_notice(), Some(Notice::BusyChanged { busy: false }));
    assert_eq!(
        m.poll_notice(),
        Some(Notice::EndedWhileOffline { call_id: call })
    );
}

#[test]
fn leaving_a_call_ourselves_ends_it_for_us_at_once() {
    let mut w = World::new();
    w.online("alice", "d1");
    w.online("bob", "d1");
    let call = w.invite("alice", &["bob"]);
    let alice = w.managers.get_mut(&(uid("alice"), dev("d1"))).unwrap();
    while alice.poll_notice().is_some() {}
    alice.on_left(&call, Reason::Quit);
    assert_eq!(
        alice.poll_notice(),
        Some(Notice::BusyChanged { busy: false })
    );
    assert_eq!(
        alice.poll_notice(),
        Some(Notice::CallEnded {
            call_id: call,
            reason: Reason::Quit,
            by: Some(uid("alice"))
        })
    );
}
