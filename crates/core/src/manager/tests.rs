//! The call manager driven by the real registry: what each device's UI
//! would be told.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use beckon_protocol::{
    CallId, CallKind, DeviceId, ExtendedData, Reason, RejectReason, Reply, Request, ServerMessage,
    UserId,
};

use super::{Input as ManagerInput, Output as ManagerOutput, *};
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

    /// `user` sends `request` from `device`, as its client would: the
    /// manager hears it was sent, the registry handles it.
    fn request(&mut self, user: &str, device: &str, request: CallRequest) {
        self.send(uid(user), dev(device), request);
        self.pump();
    }

    fn send(&mut self, user: UserId, device: DeviceId, request: CallRequest) {
        self.next += 1;
        if let Some(m) = self.managers.get_mut(&(user.clone(), device.clone())) {
            m.handle(ManagerInput::Sent {
                id: self.next,
                request: &on_the_wire(&request),
            });
        }
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

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.reg.handle_timeout(self.now);
        self.pump();
    }

    /// Delivers the registry's messages to the managers and sends what the
    /// managers ask for, until quiet.
    fn pump(&mut self) {
        loop {
            let mut asked = Vec::new();
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
                match &message {
                    ServerMessage::Event { event } => m.handle(ManagerInput::Event(event)),
                    ServerMessage::Reply { id, reply } => m.handle(ManagerInput::Answered {
                        id: *id,
                        result: Ok(reply),
                    }),
                    ServerMessage::Error {
                        id: Some(id),
                        error,
                    } => m.handle(ManagerInput::Answered {
                        id: *id,
                        result: Err(error.code),
                    }),
                    _ => {}
                }
                let notices = self
                    .notices
                    .entry((user.clone(), device.clone()))
                    .or_default();
                while let Some(out) = m.poll_output() {
                    match out {
                        ManagerOutput::Notice(n) => notices.push(n),
                        ManagerOutput::Send(request) => {
                            asked.push((user.clone(), device.clone(), request))
                        }
                    }
                }
            }
            if asked.is_empty() {
                return;
            }
            for (user, device, request) in asked {
                self.send(user, device, from_the_wire(request));
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

/// The protocol request a client sends for a registry request.
fn on_the_wire(request: &CallRequest) -> Request {
    match request.clone() {
        CallRequest::Invite(i) => Request::Invite {
            users: i.users.into_iter().chain(i.unknown).collect(),
            kind: i.kind,
            timeout_secs: i.timeout_secs,
            extended_data: i.extended_data,
        },
        CallRequest::Add { call_id, users, .. } => Request::Add { call_id, users },
        CallRequest::Cancel {
            call_id,
            users,
            extended_data,
        } => Request::Cancel {
            call_id,
            users,
            extended_data,
        },
        CallRequest::Accept {
            call_id,
            extended_data,
        } => Request::Accept {
            call_id,
            extended_data,
        },
        CallRequest::Reject {
            call_id,
            reason,
            extended_data,
        } => Request::Reject {
            call_id,
            reason,
            extended_data,
        },
        CallRequest::Quit {
            call_id,
            extended_data,
        } => Request::Quit {
            call_id,
            extended_data,
        },
        CallRequest::End {
            call_id,
            extended_data,
        } => Request::End {
            call_id,
            extended_data,
        },
        CallRequest::Status { call_id } => Request::CallStatus { call_id },
        CallRequest::Join { call_id } => Request::Join { call_id },
        CallRequest::Signal {
            call_id,
            to,
            signal,
        } => Request::Signal {
            call_id,
            to,
            signal,
        },
    }
}

/// The registry request for what a manager asked to send.
fn from_the_wire(request: Request) -> CallRequest {
    match request {
        Request::Reject {
            call_id,
            reason,
            extended_data,
        } => CallRequest::Reject {
            call_id,
            reason,
            extended_data,
        },
        Request::CallStatus { call_id } => CallRequest::Status { call_id },
        other => panic!("a manager does not send {other:?} on its own"),
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
    // Our own decline ends the call for us, once (the reply comes before
    // the server's member change and call end, which find nothing left).
    assert!(!w.manager("bob", "d1").is_busy());
    let bob = w.notices("bob", "d1");
    let ended: Vec<_> = bob
        .iter()
        .filter(|n| matches!(n, Notice::CallEnded { .. }))
        .collect();
    assert!(
        matches!(&ended[..], [Notice::CallEnded { call_id, reason: Reason::Declined, by: Some(by), .. }]
            if call_id == &call && by == &uid("bob")),
        "{ended:?}"
    );
    // The caller is told, with the call as it last stood: bob declined.
    let alice = w.notices("alice", "d1");
    let last = alice
        .iter()
        .find_map(|n| match n {
            Notice::CallEnded {
                reason: Reason::Declined,
                by: Some(by),
                last,
                ..
            } if by == &uid("bob") => Some(last),
            _ => None,
        })
        .expect("the call ended for alice");
    let bob_then = last.member(&uid("bob")).unwrap();
    assert_eq!(
        (bob_then.state, bob_then.reason),
        (MemberState::Rejected, Some(Reason::Declined))
    );
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
    m.handle(ManagerInput::Event(&Event::CallInvited {
        call: other.clone(),
        by: uid("carol"),
        remaining_ms: 30_000,
    }));
    assert_eq!(
        m.poll_output(),
        Some(ManagerOutput::Send(Request::Reject {
            call_id: other.call_id.clone(),
            reason: RejectReason::Busy,
            extended_data: ExtendedData::default(),
        }))
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
    let bob = carol.info.member(&uid("bob")).unwrap();
    assert_eq!(
        (bob.state, bob.reason),
        (MemberState::Rejected, Some(Reason::Declined)),
        "each member's reason is kept from the changes"
    );
}

#[test]
fn events_about_other_calls_are_ignored() {
    let mut m = CallManager::new(uid("bob"), dev("d1"));
    let stranger = CallId::try_from("ffffffffffffffffffffffffffffffff").unwrap();
    m.handle(ManagerInput::Event(&Event::CallEnded {
        call_id: stranger,
        reason: Reason::Ended,
        by: None,
        extended_data: Default::default(),
    }));
    assert_eq!(m.poll_output(), None);
    assert!(!m.is_busy());
}

/// Connects `m` again: the status request it asks for, sent as `id`.
fn reconnect(m: &mut CallManager, id: RequestId, call: &CallId) -> Request {
    m.handle(ManagerInput::Connected);
    let asked = m.poll_output();
    let request = Request::CallStatus {
        call_id: call.clone(),
    };
    assert_eq!(asked, Some(ManagerOutput::Send(request.clone())));
    m.handle(ManagerInput::Sent {
        id,
        request: &request,
    });
    request
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
    reconnect(m, 900, &call);
    m.handle(ManagerInput::Answered {
        id: 900,
        result: Ok(&Reply::Call { call: info }),
    });
    assert_eq!(m.current().unwrap().phase, Phase::Connected);
    assert_eq!(m.poll_output(), None, "nothing changed");
    reconnect(m, 901, &call);
    m.handle(ManagerInput::Answered {
        id: 901,
        result: Err(ErrorCode::CallEnded),
    });
    assert!(!m.is_busy());
    assert_eq!(
        m.poll_output(),
        Some(ManagerOutput::Notice(Notice::BusyChanged { busy: false }))
    );
    assert_eq!(
        m.poll_output(),
        Some(ManagerOutput::Notice(Notice::EndedWhileOffline {
            call_id: call
        }))
    );
    // Without a call there is nothing to ask about.
    m.handle(ManagerInput::Connected);
    assert_eq!(m.poll_output(), None);
}

#[test]
fn answers_lost_with_the_connection_are_forgotten() {
    let mut w = World::new();
    w.online("alice", "d1");
    w.online("bob", "d1");
    let call = w.invite("alice", &["bob"]);
    w.accept("bob", "d1", &call);
    w.notices("bob", "d1");
    let m = w.managers.get_mut(&(uid("bob"), dev("d1"))).unwrap();
    reconnect(m, 900, &call);
    m.handle(ManagerInput::Disconnected);
    // An answer under that id (from a later connection that reused it)
    // is not taken for the status.
    m.handle(ManagerInput::Answered {
        id: 900,
        result: Err(ErrorCode::NotFound),
    });
    assert!(m.is_busy(), "the call is kept");
    assert_eq!(m.poll_output(), None);
    // A fresh session cannot be in the old session's call.
    m.handle(ManagerInput::NewSession);
    assert!(!m.is_busy());
    let outs: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
    assert_eq!(
        outs,
        [
            ManagerOutput::Notice(Notice::BusyChanged { busy: false }),
            ManagerOutput::Notice(Notice::EndedWhileOffline { call_id: call })
        ]
    );
}

#[test]
fn leaving_a_call_ourselves_ends_it_for_us_at_once() {
    let mut w = World::new();
    w.online("alice", "d1");
    w.online("bob", "d1");
    let call = w.invite("alice", &["bob"]);
    let alice = w.managers.get_mut(&(uid("alice"), dev("d1"))).unwrap();
    while alice.poll_output().is_some() {}
    let quit = Request::Quit {
        call_id: call.clone(),
        extended_data: ExtendedData::default(),
    };
    alice.handle(ManagerInput::Sent {
        id: 77,
        request: &quit,
    });
    alice.handle(ManagerInput::Answered {
        id: 77,
        result: Ok(&Reply::Done),
    });
    assert_eq!(
        alice.poll_output(),
        Some(ManagerOutput::Notice(Notice::BusyChanged { busy: false }))
    );
    let ended = alice.poll_output();
    assert!(
        matches!(&ended, Some(ManagerOutput::Notice(Notice::CallEnded { call_id, reason: Reason::Quit, by: Some(by), last }))
            if call_id == &call && by == &uid("alice") && last.call_id == call),
        "{ended:?}"
    );
}
