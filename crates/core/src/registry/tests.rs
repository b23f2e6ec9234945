//! Scenarios of DESIGN §2 on a virtual clock, plus a property test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use beckon_protocol::{
    CallId, CallKind, DeviceId, ErrorCode, Event, ExtendedData, MemberState, Outcome, Reason,
    RejectReason, Reply, ServerMessage, Signal, UserId,
};

use super::*;

fn uid(s: &str) -> UserId {
    UserId::try_from(s).unwrap()
}

fn dev(s: &str) -> DeviceId {
    DeviceId::try_from(s).unwrap()
}

/// A registry on a virtual clock, with one inbox per device.
struct Harness {
    reg: Registry,
    now: Instant,
    inbox: HashMap<(UserId, DeviceId), Vec<ServerMessage>>,
    records: Vec<CallRecord>,
    next_id: u64,
}

impl Harness {
    fn new() -> Self {
        Self::with(RegistryConfig::default())
    }

    // The one clock read: an origin for the virtual clock, which only moves
    // when a test says so.
    #[allow(clippy::disallowed_methods)]
    fn with(config: RegistryConfig) -> Self {
        Self {
            reg: Registry::new(config),
            now: Instant::now(),
            inbox: HashMap::new(),
            records: Vec::new(),
            next_id: 0,
        }
    }

    /// Brings `users` online on device `d1`.
    fn online(&mut self, users: &[&str]) {
        for u in users {
            self.online_on(u, "d1");
        }
    }

    fn online_on(&mut self, user: &str, device: &str) {
        self.input(Input::Online {
            user: uid(user),
            device: dev(device),
        });
    }

    fn offline(&mut self, user: &str, device: &str) {
        self.input(Input::Offline {
            user: uid(user),
            device: dev(device),
        });
    }

    fn input(&mut self, input: Input) {
        self.reg.handle(self.now, input);
        self.drain();
    }

    fn advance(&mut self, secs: f64) {
        self.now += Duration::from_secs_f64(secs);
        self.reg.handle_timeout(self.now);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.reg.poll_output() {
            match out {
                Output::Send {
                    user,
                    device,
                    message,
                } => self.inbox.entry((user, device)).or_default().push(message),
                Output::CallFinished(r) => self.records.push(r),
            }
        }
        self.reg.check_invariants();
    }

    /// Sends a request from `user` on `device` and returns its answer.
    fn req_on(
        &mut self,
        user: &str,
        device: &str,
        request: CallRequest,
    ) -> Result<Reply, ErrorCode> {
        self.next_id += 1;
        let id = self.next_id;
        self.input(Input::Request {
            user: uid(user),
            device: dev(device),
            id,
            request,
        });
        let inbox = self.inbox.entry((uid(user), dev(device))).or_default();
        let pos = inbox
            .iter()
            .position(|m| match m {
                ServerMessage::Reply { id: i, .. } => *i == id,
                ServerMessage::Error { id: i, .. } => *i == Some(id),
                _ => false,
            })
            .expect("every request is answered");
        match inbox.remove(pos) {
            ServerMessage::Reply { reply, .. } => Ok(reply),
            ServerMessage::Error { error, .. } => Err(error.code),
            _ => unreachable!(),
        }
    }

    fn req(&mut self, user: &str, request: CallRequest) -> Result<Reply, ErrorCode> {
        self.req_on(user, "d1", request)
    }

    fn invite_kind(
        &mut self,
        from: &str,
        to: &[&str],
        timeout: Option<u32>,
    ) -> Result<Reply, ErrorCode> {
        let call_id = CallId::try_from(format!("call{:028}", self.next_id + 1)).unwrap();
        self.req(
            from,
            CallRequest::Invite(InviteRequest {
                call_id,
                users: to.iter().map(|u| uid(u)).collect(),
                unknown: vec![],
                kind: CallKind::Video,
                timeout_secs: timeout,
                extended_data: ExtendedData::try_from("{\"kind\":\"video\"}").unwrap(),
            }),
        )
    }

    fn invite(&mut self, from: &str, to: &[&str]) -> CallId {
        match self.invite_kind(from, to, None).expect("invite works") {
            Reply::Invitation { call, .. } => call.call_id,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn accept(&mut self, user: &str, call: &CallId) -> Result<Reply, ErrorCode> {
        self.req(
            user,
            CallRequest::Accept {
                call_id: call.clone(),
                extended_data: ExtendedData::default(),
            },
        )
    }

    fn reject(&mut self, user: &str, call: &CallId) -> Result<Reply, ErrorCode> {
        self.req(
            user,
            CallRequest::Reject {
                call_id: call.clone(),
                reason: RejectReason::Declined,
                extended_data: ExtendedData::default(),
            },
        )
    }

    fn cancel(
        &mut self,
        user: &str,
        call: &CallId,
        users: Option<&[&str]>,
    ) -> Result<Reply, ErrorCode> {
        self.req(
            user,
            CallRequest::Cancel {
                call_id: call.clone(),
                users: users.map(|us| us.iter().map(|u| uid(u)).collect()),
                extended_data: ExtendedData::default(),
            },
        )
    }

    fn quit(&mut self, user: &str, call: &CallId) -> Result<Reply, ErrorCode> {
        self.req(
            user,
            CallRequest::Quit {
                call_id: call.clone(),
                extended_data: ExtendedData::default(),
            },
        )
    }

    fn end(&mut self, user: &str, call: &CallId) -> Result<Reply, ErrorCode> {
        self.req(
            user,
            CallRequest::End {
                call_id: call.clone(),
                extended_data: ExtendedData::default(),
            },
        )
    }

    /// Takes the events `user` got on `device` so far.
    fn events_on(&mut self, user: &str, device: &str) -> Vec<Event> {
        self.inbox
            .remove(&(uid(user), dev(device)))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::Event { event } => Some(event),
                _ => None,
            })
            .collect()
    }

    fn events(&mut self, user: &str) -> Vec<Event> {
        self.events_on(user, "d1")
    }

    /// Whether `user` was ever a member of `call`, live or finished.
    fn was_member(&self, call: &CallId, user: &UserId) -> bool {
        match self.reg.call_info(call) {
            Some(info) => info.member(user).is_some(),
            None => self
                .records
                .iter()
                .any(|r| &r.call_id == call && r.members.iter().any(|(u, _)| u == user)),
        }
    }

    /// The state `user` holds in the live call, as the registry says.
    fn state(&self, call: &CallId, user: &str) -> Option<MemberState> {
        self.reg
            .call_info(call)
            .and_then(|c| c.member(&uid(user)).map(|m| m.state))
    }
}

/// `(user, state, reason)` of every member-state event in `events`.
fn changes(events: &[Event]) -> Vec<(String, MemberState, Reason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::MemberState(c) => Some((c.user.to_string(), c.state, c.reason)),
            _ => None,
        })
        .collect()
}

fn ended(events: &[Event]) -> Option<Reason> {
    events.iter().find_map(|e| match e {
        Event::CallEnded { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn invited(events: &[Event]) -> Option<&beckon_protocol::CallInfo> {
    events.iter().find_map(|e| match e {
        Event::CallInvited { call, .. } => Some(call),
        _ => None,
    })
}

fn ch(user: &str, state: MemberState, reason: Reason) -> (String, MemberState, Reason) {
    (user.to_string(), state, reason)
}

// --- invite ------------------------------------------------------------------

#[test]
fn invite_rings_every_online_device_of_the_callee() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    h.online_on("bob", "phone");
    let call = h.invite("alice", &["bob"]);
    for d in ["d1", "phone"] {
        let ev = h.events_on("bob", d);
        let info = invited(&ev).expect("invitation delivered");
        assert_eq!(info.call_id, call);
        assert_eq!(info.kind, CallKind::Video);
        assert_eq!(info.extended_data.as_str(), "{\"kind\":\"video\"}");
        assert_eq!(
            info.member(&uid("bob")).unwrap().state,
            MemberState::Received
        );
    }
    assert_eq!(h.state(&call, "alice"), Some(MemberState::Accepted));
    assert!(h.reg.is_busy(&uid("alice")) && h.reg.is_busy(&uid("bob")));
}

#[test]
fn invite_reply_shows_the_call_with_the_callee_ringing() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    match h.invite_kind("alice", &["bob"], Some(30)).unwrap() {
        Reply::Invitation {
            call,
            results,
            merged,
        } => {
            assert!(!merged);
            assert_eq!(call.timeout_secs, 30);
            assert_eq!(results.len(), 1);
            assert_eq!(results[0].error, None);
            assert_eq!(
                call.member(&uid("bob")).unwrap().state,
                MemberState::Received
            );
            assert_eq!(
                call.member(&uid("bob")).unwrap().invited_by,
                Some(uid("alice"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_users_are_reported_per_user_not_as_a_failed_call() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let reply = h
        .req(
            "alice",
            CallRequest::Invite(InviteRequest {
                call_id: CallId::try_from("x0000000000000000000000000000001").unwrap(),
                users: vec![uid("bob")],
                unknown: vec![uid("nobody")],
                kind: CallKind::Voice,
                timeout_secs: None,
                extended_data: ExtendedData::default(),
            }),
        )
        .unwrap();
    let Reply::Invitation { results, call, .. } = reply else {
        panic!()
    };
    assert_eq!(call.kind, CallKind::Voice);
    let nobody = results.iter().find(|r| r.user == uid("nobody")).unwrap();
    assert_eq!(nobody.error, Some(ErrorCode::NotFound));
    assert!(
        results
            .iter()
            .any(|r| r.user == uid("bob") && r.error.is_none())
    );
}

#[test]
fn inviting_only_unknown_users_fails_and_creates_no_call() {
    let mut h = Harness::new();
    h.online(&["alice"]);
    let r = h.req(
        "alice",
        CallRequest::Invite(InviteRequest {
            call_id: CallId::try_from("x0000000000000000000000000000001").unwrap(),
            users: vec![],
            unknown: vec![uid("nobody")],
            kind: CallKind::Voice,
            timeout_secs: None,
            extended_data: ExtendedData::default(),
        }),
    );
    assert_eq!(r.unwrap_err(), ErrorCode::NotFound);
    assert_eq!(h.reg.live_calls(), 0);
    assert!(!h.reg.is_busy(&uid("alice")));
}

#[test]
fn inviting_yourself_alone_is_invalid() {
    let mut h = Harness::new();
    h.online(&["alice"]);
    assert_eq!(
        h.invite_kind("alice", &["alice"], None).unwrap_err(),
        ErrorCode::Invalid
    );
    assert_eq!(h.reg.live_calls(), 0);
}

#[test]
fn ring_timeout_must_be_between_1_and_600_seconds() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    assert_eq!(
        h.invite_kind("alice", &["bob"], Some(0)).unwrap_err(),
        ErrorCode::Invalid
    );
    assert_eq!(
        h.invite_kind("alice", &["bob"], Some(601)).unwrap_err(),
        ErrorCode::Invalid
    );
    assert!(h.invite_kind("alice", &["bob"], Some(600)).is_ok());
}

// --- 1v1 answers -------------------------------------------------------------

#[test]
fn callee_accepts_and_both_are_in_the_call() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.events("bob");
    let Reply::Call { call: info } = h.accept("bob", &call).unwrap() else {
        panic!()
    };
    assert_eq!(
        info.member(&uid("bob")).unwrap().state,
        MemberState::Accepted
    );
    assert_eq!(
        changes(&h.events("alice")),
        vec![ch("bob", MemberState::Accepted, Reason::Answered)]
    );
    assert_eq!(h.state(&call, "alice"), Some(MemberState::Accepted));
    assert!(h.reg.is_busy(&uid("bob")));
}

#[test]
fn callee_declines_and_the_1v1_call_ends_for_both() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.events("bob");
    assert_eq!(h.reject("bob", &call).unwrap(), Reply::Done);
    let alice = h.events("alice");
    assert_eq!(
        changes(&alice),
        vec![ch("bob", MemberState::Rejected, Reason::Declined)]
    );
    assert_eq!(ended(&alice), Some(Reason::Declined));
    assert_eq!(ended(&h.events("bob")), Some(Reason::Declined));
    assert_eq!(h.reg.live_calls(), 0);
    assert!(!h.reg.is_busy(&uid("alice")) && !h.reg.is_busy(&uid("bob")));
    assert_eq!(h.records.len(), 1);
    let outcomes: HashMap<_, _> = h.records[0].members.iter().cloned().collect();
    assert_eq!(outcomes[&uid("bob")], Outcome::Declined);
    assert_eq!(outcomes[&uid("alice")], Outcome::NoAnswer);
}

#[test]
fn reject_passes_its_extended_data_to_the_caller() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.req(
        "bob",
        CallRequest::Reject {
            call_id: call,
            reason: RejectReason::Declined,
            extended_data: ExtendedData::try_from("in a meeting").unwrap(),
        },
    )
    .unwrap();
    let data = h.events("alice").into_iter().find_map(|e| match e {
        Event::MemberState(c) => Some(c.extended_data),
        _ => None,
    });
    assert_eq!(data.unwrap().as_str(), "in a meeting");
}

#[test]
fn caller_cancel_stops_the_ringing_and_ends_the_call() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    h.online_on("bob", "phone");
    let call = h.invite("alice", &["bob"]);
    h.events("bob");
    h.events_on("bob", "phone");
    let Reply::Invitation { results, .. } = h.cancel("alice", &call, None).unwrap() else {
        panic!()
    };
    assert_eq!(results.len(), 1);
    for d in ["d1", "phone"] {
        let ev = h.events_on("bob", d);
        assert_eq!(
            changes(&ev),
            vec![ch("bob", MemberState::Cancelled, Reason::Cancelled)]
        );
        assert_eq!(ended(&ev), Some(Reason::Cancelled));
    }
    assert_eq!(ended(&h.events("alice")), Some(Reason::Cancelled));
    let outcomes: HashMap<_, _> = h.records[0].members.iter().cloned().collect();
    assert_eq!(outcomes[&uid("bob")], Outcome::Cancelled);
    assert_eq!(outcomes[&uid("alice")], Outcome::Cancelled);
}

#[test]
fn callee_timeout_ends_1v1_call_for_both() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite_kind("alice", &["bob"], Some(10)).unwrap();
    let Reply::Invitation { call, .. } = call else {
        panic!()
    };
    h.events("bob");
    h.advance(9.9);
    assert_eq!(h.state(&call.call_id, "bob"), Some(MemberState::Received));
    h.advance(0.2);
    let bob = h.events("bob");
    assert_eq!(
        changes(&bob),
        vec![ch("bob", MemberState::Timeout, Reason::Timeout)]
    );
    assert_eq!(ended(&bob), Some(Reason::Timeout));
    let alice = h.events("alice");
    assert_eq!(
        changes(&alice),
        vec![ch("bob", MemberState::Timeout, Reason::Timeout)]
    );
    assert_eq!(ended(&alice), Some(Reason::Timeout));
    assert_eq!(h.records[0].members[1], (uid("bob"), Outcome::Missed));
}

// --- busy ----------------------------------------------------------------------

#[test]
fn invitation_to_a_busy_user_is_rejected_with_busy() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let first = h.invite("alice", &["bob"]);
    h.accept("bob", &first).unwrap();
    h.events("bob");
    let Reply::Invitation { call, .. } = h.invite_kind("carol", &["bob"], None).unwrap() else {
        panic!()
    };
    assert_eq!(
        call.member(&uid("bob")).unwrap().state,
        MemberState::Rejected
    );
    let carol = h.events("carol");
    assert_eq!(
        changes(&carol),
        vec![ch("bob", MemberState::Rejected, Reason::Busy)]
    );
    assert_eq!(ended(&carol), Some(Reason::Busy));
    assert!(h.events("bob").is_empty(), "a busy user is not disturbed");
    assert_eq!(h.state(&first, "bob"), Some(MemberState::Accepted));
    let rec = h.records.last().unwrap();
    assert!(rec.members.contains(&(uid("bob"), Outcome::Busy)));
}

#[test]
fn a_ringing_user_is_busy_too() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    h.invite("alice", &["bob"]);
    let Reply::Invitation { call, .. } = h.invite_kind("carol", &["bob"], None).unwrap() else {
        panic!()
    };
    assert_eq!(
        call.member(&uid("bob")).unwrap().state,
        MemberState::Rejected
    );
}

#[test]
fn busy_caller_cannot_start_another_invitation() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    h.invite("alice", &["bob"]);
    assert_eq!(
        h.invite_kind("alice", &["carol"], None).unwrap_err(),
        ErrorCode::Busy
    );
    assert_eq!(
        h.invite_kind("bob", &["carol"], None).unwrap_err(),
        ErrorCode::Busy
    );
    assert!(!h.reg.is_busy(&uid("carol")));
}

#[test]
fn busy_ends_when_the_call_does() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.end("alice", &call).unwrap();
    assert!(!h.reg.is_busy(&uid("alice")));
    assert!(!h.reg.is_busy(&uid("bob")));
    h.invite("bob", &["alice"]);
}

// --- glare -----------------------------------------------------------------------

#[test]
fn two_users_calling_each_other_end_up_in_one_call() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    let Reply::Invitation {
        call: info, merged, ..
    } = h.invite_kind("bob", &["alice"], None).unwrap()
    else {
        panic!()
    };
    assert!(merged);
    assert_eq!(info.call_id, call);
    assert_eq!(h.reg.live_calls(), 1);
    assert_eq!(h.state(&call, "bob"), Some(MemberState::Accepted));
    assert_eq!(
        changes(&h.events("alice")),
        vec![ch("bob", MemberState::Accepted, Reason::Answered)]
    );
}

#[test]
fn glare_also_rings_the_others_named() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob"]);
    let Reply::Invitation {
        merged, results, ..
    } = h.invite_kind("bob", &["alice", "carol"], None).unwrap()
    else {
        panic!()
    };
    assert!(merged);
    assert!(results.iter().all(|r| r.error.is_none()));
    assert_eq!(h.state(&call, "carol"), Some(MemberState::Received));
    assert_eq!(invited(&h.events("carol")).unwrap().call_id, call);
}

// --- groups --------------------------------------------------------------------

#[test]
fn group_call_with_mixed_answers_lives_while_two_are_in() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol", "dave"]);
    let call = h.invite("alice", &["bob", "carol", "dave"]);
    h.reject("bob", &call).unwrap();
    assert_eq!(h.reg.live_calls(), 1, "others still ring");
    h.accept("carol", &call).unwrap();
    let carol = h.events("carol");
    assert!(invited(&carol).is_some());
    h.advance(61.0);
    assert_eq!(h.state(&call, "dave"), Some(MemberState::Timeout));
    assert_eq!(h.reg.live_calls(), 1, "alice and carol are in");
    let alice = changes(&h.events("alice"));
    assert_eq!(
        alice,
        vec![
            ch("bob", MemberState::Rejected, Reason::Declined),
            ch("carol", MemberState::Accepted, Reason::Answered),
            ch("dave", MemberState::Timeout, Reason::Timeout),
        ]
    );
    // Carol hears about the others' answers after her own.
    assert!(changes(&h.events("carol")).contains(&ch(
        "dave",
        MemberState::Timeout,
        Reason::Timeout
    )));
    h.quit("alice", &call).unwrap();
    let carol = h.events("carol");
    assert_eq!(
        changes(&carol),
        vec![ch("alice", MemberState::Quit, Reason::Quit)]
    );
    assert_eq!(ended(&carol), Some(Reason::Quit));
    let outcomes: HashMap<_, _> = h.records[0].members.iter().cloned().collect();
    assert_eq!(outcomes[&uid("alice")], Outcome::Answered);
    assert_eq!(outcomes[&uid("carol")], Outcome::Answered);
    assert_eq!(outcomes[&uid("bob")], Outcome::Declined);
    assert_eq!(outcomes[&uid("dave")], Outcome::Missed);
}

#[test]
fn a_group_call_where_everyone_declines_ends() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob", "carol"]);
    h.reject("bob", &call).unwrap();
    assert_eq!(h.reg.live_calls(), 1);
    h.reject("carol", &call).unwrap();
    assert_eq!(h.reg.live_calls(), 0);
    assert_eq!(ended(&h.events("alice")), Some(Reason::Declined));
}

#[test]
fn cancel_one_invitee_keeps_ringing_the_rest() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob", "carol"]);
    h.events("carol");
    h.cancel("alice", &call, Some(&["bob"])).unwrap();
    assert_eq!(h.state(&call, "bob"), None.or(Some(MemberState::Cancelled)));
    assert_eq!(h.state(&call, "carol"), Some(MemberState::Received));
    assert_eq!(
        changes(&h.events("carol")),
        vec![ch("bob", MemberState::Cancelled, Reason::Cancelled)]
    );
    h.accept("carol", &call).unwrap();
    assert_eq!(h.reg.live_calls(), 1);
}

#[test]
fn only_the_inviter_of_an_invitee_may_cancel_it() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob", "carol"]);
    h.accept("bob", &call).unwrap();
    let Reply::Invitation { results, .. } = h.cancel("bob", &call, Some(&["carol"])).unwrap()
    else {
        panic!()
    };
    assert_eq!(results[0].error, Some(ErrorCode::NotAllowed));
    assert_eq!(h.state(&call, "carol"), Some(MemberState::Received));
    // An invitee who is not in the call cannot cancel anything.
    assert_eq!(
        h.cancel("carol", &call, None).unwrap_err(),
        ErrorCode::NotAMember
    );
}

#[test]
fn add_member_during_a_call_rings_them_and_tells_the_others() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.events("alice");
    let r = h.req(
        "bob",
        CallRequest::Add {
            call_id: call.clone(),
            users: vec![uid("carol")],
            unknown: vec![],
        },
    );
    let Reply::Invitation { results, .. } = r.unwrap() else {
        panic!()
    };
    assert_eq!(results[0].error, None);
    let carol = h.events("carol");
    let info = invited(&carol).unwrap();
    assert_eq!(info.members.len(), 3);
    assert!(matches!(&carol[0], Event::CallInvited { by, .. } if by == &uid("bob")));
    assert_eq!(
        changes(&h.events("alice")),
        vec![ch("carol", MemberState::Received, Reason::Delivered)]
    );
    h.accept("carol", &call).unwrap();
    assert_eq!(h.reg.call_info(&call).unwrap().members.len(), 3);
    // Bob added carol, so bob may cancel her invitation — but she answered.
    let Reply::Invitation { results, .. } = h.cancel("bob", &call, Some(&["carol"])).unwrap()
    else {
        panic!()
    };
    assert_eq!(results[0].error, Some(ErrorCode::AlreadyAnswered));
}

#[test]
fn only_members_in_the_call_may_add() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol", "dave"]);
    let call = h.invite("alice", &["bob"]);
    let add = |h: &mut Harness, who: &str| {
        h.req(
            who,
            CallRequest::Add {
                call_id: call.clone(),
                users: vec![uid("dave")],
                unknown: vec![],
            },
        )
    };
    assert_eq!(
        add(&mut h, "bob").unwrap_err(),
        ErrorCode::NotAMember,
        "ringing is not in"
    );
    assert_eq!(add(&mut h, "carol").unwrap_err(), ErrorCode::NotAMember);
}

#[test]
fn calls_are_capped_at_max_members() {
    let mut h = Harness::with(RegistryConfig {
        max_members: 3,
        ..Default::default()
    });
    h.online(&["alice", "bob", "carol", "dave"]);
    let Reply::Invitation { call, results, .. } = h
        .invite_kind("alice", &["bob", "carol", "dave"], None)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(results[2].error, Some(ErrorCode::LimitExceeded));
    assert!(call.member(&uid("dave")).is_none());
    h.reject("bob", &call.call_id).unwrap();
    // A seat is free again.
    let r = h.req(
        "alice",
        CallRequest::Add {
            call_id: call.call_id.clone(),
            users: vec![uid("dave")],
            unknown: vec![],
        },
    );
    let Reply::Invitation { results, .. } = r.unwrap() else {
        panic!()
    };
    assert_eq!(results[0].error, None);
}

// --- quit, end, join ---------------------------------------------------------

#[test]
fn quit_leaves_the_call_going_for_the_others() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob", "carol"]);
    h.accept("bob", &call).unwrap();
    h.accept("carol", &call).unwrap();
    h.events("bob");
    h.quit("alice", &call).unwrap();
    assert_eq!(h.reg.live_calls(), 1);
    assert_eq!(
        changes(&h.events("bob")),
        vec![ch("alice", MemberState::Quit, Reason::Quit)]
    );
    assert!(!h.reg.is_busy(&uid("alice")));
    // A member who quit can no longer signal or quit again.
    assert_eq!(h.quit("alice", &call).unwrap_err(), ErrorCode::NotAMember);
}

#[test]
fn quit_by_the_last_other_member_ends_the_call() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.events("alice");
    h.quit("bob", &call).unwrap();
    let alice = h.events("alice");
    assert_eq!(ended(&alice), Some(Reason::Quit));
    assert!(
        alice
            .iter()
            .any(|e| matches!(e, Event::CallEnded { by: Some(b), .. } if b == &uid("bob")))
    );
    assert!(h.records[0].connected_at.is_some());
}

#[test]
fn end_ends_the_call_for_every_member() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol", "dave"]);
    let call = h.invite("alice", &["bob", "carol", "dave"]);
    h.accept("bob", &call).unwrap();
    h.accept("carol", &call).unwrap();
    for u in ["alice", "bob", "carol", "dave"] {
        h.events(u);
    }
    // One still ringing may not end it (nor may anyone outside it).
    assert_eq!(h.end("dave", &call), Err(ErrorCode::NotAMember));
    assert_eq!(h.reg.live_calls(), 1);
    let end = CallRequest::End {
        call_id: call.clone(),
        extended_data: ExtendedData::try_from("see you").unwrap(),
    };
    // Any member in the call may, not only the inviter.
    assert_eq!(h.req("carol", end).unwrap(), Reply::Done);
    for u in ["alice", "bob", "carol", "dave"] {
        let ev = h.events(u);
        assert_eq!(ended(&ev), Some(Reason::Ended), "{u}");
        let data = ev.iter().find_map(|e| match e {
            Event::CallEnded { extended_data, .. } => Some(extended_data.as_str().to_owned()),
            _ => None,
        });
        assert_eq!(
            data.as_deref(),
            Some("see you"),
            "{u} gets what carol attached"
        );
    }
    assert_eq!(h.reg.live_calls(), 0);
    let outcomes: HashMap<_, _> = h.records[0].members.iter().cloned().collect();
    assert_eq!(
        outcomes[&uid("dave")],
        Outcome::Cancelled,
        "still ringing when it ended"
    );
}

#[test]
fn a_member_who_quit_can_join_again_while_the_call_is_live() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob", "carol"]);
    h.accept("bob", &call).unwrap();
    h.accept("carol", &call).unwrap();
    h.quit("bob", &call).unwrap();
    h.events("alice");
    let Reply::Call { call: info } = h
        .req(
            "bob",
            CallRequest::Join {
                call_id: call.clone(),
            },
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        info.member(&uid("bob")).unwrap().state,
        MemberState::Accepted
    );
    assert_eq!(
        changes(&h.events("alice")),
        vec![ch("bob", MemberState::Accepted, Reason::Joined)]
    );
}

#[test]
fn join_moves_the_call_to_another_device() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    h.online_on("bob", "phone");
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.events("bob");
    h.events_on("bob", "phone");
    h.req_on(
        "bob",
        "phone",
        CallRequest::Join {
            call_id: call.clone(),
        },
    )
    .unwrap();
    // The desk device learns the call moved away.
    let desk = h.events_on("bob", "d1");
    let moved = desk
        .iter()
        .any(|e| matches!(e, Event::MemberState(c) if c.device == Some(dev("phone"))));
    assert!(moved);
    // Signals for bob now reach the phone only.
    h.req(
        "alice",
        CallRequest::Signal {
            call_id: call.clone(),
            to: uid("bob"),
            signal: Signal::EndOfCandidates,
        },
    )
    .unwrap();
    assert!(h.events_on("bob", "d1").is_empty());
    assert!(
        h.events_on("bob", "phone")
            .iter()
            .any(|e| matches!(e, Event::Signal { .. }))
    );
    // The desk can no longer act in the call.
    assert_eq!(h.quit("bob", &call).unwrap_err(), ErrorCode::NotAMember);
}

#[test]
fn join_of_an_ended_call_says_it_ended() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.quit("bob", &call).unwrap();
    assert_eq!(
        h.req("bob", CallRequest::Join { call_id: call })
            .unwrap_err(),
        ErrorCode::CallEnded
    );
}

#[test]
fn join_by_someone_who_declined_is_refused() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob", "carol"]);
    h.accept("bob", &call).unwrap();
    h.reject("carol", &call).unwrap();
    assert_eq!(
        h.req("carol", CallRequest::Join { call_id: call })
            .unwrap_err(),
        ErrorCode::NotAMember
    );
}

// --- offline invitees and not_yet_received -----------------------------------

#[test]
fn offline_invitee_is_not_yet_received_after_5s_and_rings_when_it_signs_in() {
    let mut h = Harness::new();
    h.online(&["alice"]);
    let call = h.invite("alice", &["bob"]);
    assert_eq!(h.state(&call, "bob"), Some(MemberState::Inviting));
    h.advance(4.9);
    assert!(changes(&h.events("alice")).is_empty());
    h.advance(0.2);
    assert_eq!(
        changes(&h.events("alice")),
        vec![ch("bob", MemberState::NotYetReceived, Reason::Offline)]
    );
    h.advance(20.0);
    h.online(&["bob"]);
    let bob = h.events("bob");
    let Some(Event::CallInvited { remaining_ms, .. }) = bob.first() else {
        panic!("{bob:?}")
    };
    assert!((34_000..=35_000).contains(remaining_ms), "{remaining_ms}");
    assert_eq!(
        changes(&h.events("alice")),
        vec![ch("bob", MemberState::Received, Reason::Delivered)]
    );
    h.accept("bob", &call).unwrap();
    assert_eq!(h.reg.live_calls(), 1);
}

#[test]
fn offline_invitee_who_never_signs_in_times_out() {
    let mut h = Harness::new();
    h.online(&["alice"]);
    let call = h.invite("alice", &["bob"]);
    h.advance(60.0);
    assert_eq!(h.reg.live_calls(), 0);
    let alice = h.events("alice");
    // The ring timed out without ever reaching him: `offline`, not a
    // plain `timeout` (which means it rang and nobody answered).
    assert_eq!(
        changes(&alice),
        vec![
            ch("bob", MemberState::NotYetReceived, Reason::Offline),
            ch("bob", MemberState::Timeout, Reason::Offline)
        ]
    );
    assert_eq!(ended(&alice), Some(Reason::Timeout));
    assert_eq!(h.records[0].members[1], (uid("bob"), Outcome::Missed));
    h.online(&["bob"]);
    assert!(
        h.events("bob").is_empty(),
        "a timed-out invitation is not delivered late"
    );
    assert_eq!(h.accept("bob", &call).unwrap_err(), ErrorCode::CallEnded);
}

// --- several devices -----------------------------------------------------------

#[test]
fn accepting_on_one_device_stops_the_others_ringing() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    h.online_on("bob", "phone");
    let call = h.invite("alice", &["bob"]);
    h.events_on("bob", "phone");
    h.req_on(
        "bob",
        "d1",
        CallRequest::Accept {
            call_id: call.clone(),
            extended_data: ExtendedData::default(),
        },
    )
    .unwrap();
    let phone = h.events_on("bob", "phone");
    let Some(Event::MemberState(change)) = phone.first() else {
        panic!("{phone:?}")
    };
    assert_eq!(change.state, MemberState::Accepted);
    assert_eq!(change.device, Some(dev("d1")), "answered elsewhere");
}

#[test]
fn accept_on_two_devices_lets_the_first_win() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    h.online_on("bob", "phone");
    let call = h.invite("alice", &["bob"]);
    let accept = CallRequest::Accept {
        call_id: call.clone(),
        extended_data: ExtendedData::default(),
    };
    assert!(h.req_on("bob", "phone", accept.clone()).is_ok());
    assert_eq!(
        h.req_on("bob", "d1", accept).unwrap_err(),
        ErrorCode::AlreadyAnswered
    );
    let c = h.reg.call_info(&call).unwrap();
    assert_eq!(c.member(&uid("bob")).unwrap().state, MemberState::Accepted);
    assert_eq!(
        changes(&h.events("alice")).len(),
        1,
        "the caller hears one accept"
    );
}

#[test]
fn declining_on_one_device_stops_the_others_ringing() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    h.online_on("bob", "phone");
    let call = h.invite("alice", &["bob", "carol"]);
    h.events_on("bob", "phone");
    h.reject("bob", &call).unwrap();
    assert_eq!(
        changes(&h.events_on("bob", "phone")),
        vec![ch("bob", MemberState::Rejected, Reason::Declined)]
    );
}

// --- disconnects -------------------------------------------------------------

#[test]
fn inviter_disconnect_before_anyone_accepted_cancels_after_grace() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.events("bob");
    h.offline("alice", "d1");
    h.advance(19.0);
    assert_eq!(
        h.state(&call, "bob"),
        Some(MemberState::Received),
        "still ringing during grace"
    );
    h.advance(1.5);
    let bob = h.events("bob");
    assert_eq!(
        changes(&bob),
        vec![ch("bob", MemberState::Cancelled, Reason::Disconnected)]
    );
    assert_eq!(ended(&bob), Some(Reason::Disconnected));
    assert!(!h.reg.is_busy(&uid("alice")));
}

#[test]
fn member_disconnect_after_accept_is_a_quit_after_grace() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob", "carol"]);
    h.accept("bob", &call).unwrap();
    h.accept("carol", &call).unwrap();
    h.events("bob");
    h.offline("alice", "d1");
    h.advance(21.0);
    assert_eq!(
        changes(&h.events("bob")),
        vec![ch("alice", MemberState::Quit, Reason::Disconnected)]
    );
    assert_eq!(h.reg.live_calls(), 1);
}

#[test]
fn inviter_disconnect_after_someone_accepted_is_a_quit() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.events("bob");
    h.offline("alice", "d1");
    h.advance(21.0);
    let bob = h.events("bob");
    assert_eq!(
        changes(&bob),
        vec![ch("alice", MemberState::Quit, Reason::Disconnected)]
    );
    assert_eq!(ended(&bob), Some(Reason::Disconnected));
}

#[test]
fn a_short_drop_does_not_end_the_call_and_resume_gets_a_snapshot() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.events("alice");
    h.events("bob");
    h.offline("alice", "d1");
    h.advance(5.0);
    h.online(&["alice"]);
    let alice = h.events("alice");
    let Some(Event::CallState { call: info }) = alice.first() else {
        panic!("{alice:?}")
    };
    assert_eq!(info.call_id, call);
    h.advance(60.0);
    assert_eq!(h.reg.live_calls(), 1, "the grace timer was disarmed");
    assert!(h.events("bob").is_empty());
}

#[test]
fn a_second_drop_gets_its_own_grace_period() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.offline("alice", "d1");
    h.advance(15.0);
    h.online(&["alice"]);
    h.offline("alice", "d1");
    h.advance(10.0); // 25 s after the first drop, 10 s after the second
    assert_eq!(h.reg.live_calls(), 1);
    h.advance(11.0);
    assert_eq!(h.reg.live_calls(), 0);
}

#[test]
fn signing_out_leaves_the_call_at_once() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.input(Input::SignedOut {
        user: uid("bob"),
        device: dev("d1"),
    });
    assert_eq!(h.reg.live_calls(), 0);
    assert_eq!(ended(&h.events("alice")), Some(Reason::Disconnected));
}

#[test]
fn a_ringing_device_that_drops_does_not_end_the_invitation() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.offline("bob", "d1");
    h.advance(30.0);
    assert_eq!(h.state(&call, "bob"), Some(MemberState::Received));
    h.online(&["bob"]);
    assert!(invited(&h.events("bob")).is_some(), "rings again on return");
}

// --- races, duplicates, stale messages -------------------------------------------

#[test]
fn cancel_then_accept_the_accept_loses() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob", "carol"]);
    h.cancel("alice", &call, Some(&["bob"])).unwrap();
    assert_eq!(
        h.accept("bob", &call).unwrap_err(),
        ErrorCode::AlreadyAnswered
    );
    // 1v1: the call is gone.
    let call = {
        h.cancel("alice", &call, None).unwrap();
        h.invite("alice", &["bob"])
    };
    h.cancel("alice", &call, None).unwrap();
    assert_eq!(h.accept("bob", &call).unwrap_err(), ErrorCode::CallEnded);
}

#[test]
fn accept_then_cancel_the_cancel_loses() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    let Reply::Invitation { results, .. } = h.cancel("alice", &call, Some(&["bob"])).unwrap()
    else {
        panic!()
    };
    assert_eq!(results[0].error, Some(ErrorCode::AlreadyAnswered));
    assert_eq!(h.state(&call, "bob"), Some(MemberState::Accepted));
}

#[test]
fn an_accept_at_the_deadline_loses_to_the_timeout() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let Reply::Invitation { call, .. } = h.invite_kind("alice", &["bob"], Some(5)).unwrap() else {
        panic!()
    };
    // The driver has not fired the timer yet; the accept arrives at 5 s.
    h.now += Duration::from_secs(5);
    assert_eq!(
        h.accept("bob", &call.call_id).unwrap_err(),
        ErrorCode::CallEnded
    );
    assert_eq!(ended(&h.events("alice")), Some(Reason::Timeout));
}

#[test]
fn an_accept_just_before_the_deadline_wins() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let Reply::Invitation { call, .. } = h.invite_kind("alice", &["bob"], Some(5)).unwrap() else {
        panic!()
    };
    h.now += Duration::from_millis(4999);
    assert!(h.accept("bob", &call.call_id).is_ok());
    h.advance(10.0);
    assert_eq!(h.reg.live_calls(), 1, "the stale ring timer does nothing");
}

#[test]
fn a_duplicate_accept_from_the_same_device_is_answered_again() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.accept("bob", &call).unwrap();
    h.events("alice");
    assert!(matches!(
        h.accept("bob", &call).unwrap(),
        Reply::Call { .. }
    ));
    assert!(h.events("alice").is_empty(), "no second state change");
}

#[test]
fn duplicate_reject_and_quit_are_refused_without_side_effects() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol"]);
    let call = h.invite("alice", &["bob", "carol"]);
    h.accept("carol", &call).unwrap();
    h.reject("bob", &call).unwrap();
    h.events("alice");
    assert_eq!(
        h.reject("bob", &call).unwrap_err(),
        ErrorCode::AlreadyAnswered
    );
    h.quit("carol", &call).unwrap();
    assert_eq!(h.reg.live_calls(), 0);
    assert_eq!(h.quit("carol", &call).unwrap_err(), ErrorCode::CallEnded);
    assert_eq!(h.records.len(), 1, "ended once");
}

#[test]
fn messages_about_ended_or_unknown_calls_get_clear_errors() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let call = h.invite("alice", &["bob"]);
    h.reject("bob", &call).unwrap();
    assert_eq!(h.end("alice", &call).unwrap_err(), ErrorCode::CallEnded);
    assert_eq!(
        h.cancel("alice", &call, None).unwrap_err(),
        ErrorCode::CallEnded
    );
    let unknown = CallId::try_from("ffffffffffffffffffffffffffffffff").unwrap();
    assert_eq!(h.accept("bob", &unknown).unwrap_err(), ErrorCode::NotFound);
    // Ended calls are remembered for a while, then forgotten.
    h.advance(601.0);
    assert_eq!(h.end("alice", &call).unwrap_err(), ErrorCode::NotFound);
}

#[test]
fn strangers_cannot_act_in_a_call() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "mallory"]);
    let call = h.invite("alice", &["bob"]);
    assert_eq!(
        h.accept("mallory", &call).unwrap_err(),
        ErrorCode::NotAMember
    );
    assert_eq!(
        h.reject("mallory", &call).unwrap_err(),
        ErrorCode::NotAMember
    );
    assert_eq!(h.end("mallory", &call).unwrap_err(), ErrorCode::NotAMember);
    assert_eq!(
        h.req(
            "mallory",
            CallRequest::Join {
                call_id: call.clone()
            }
        )
        .unwrap_err(),
        ErrorCode::NotAMember
    );
    assert!(h.events("mallory").is_empty());
}

#[test]
fn call_status_tells_a_device_how_its_call_stands_without_changing_it() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    h.online_on("bob", "phone");
    let call = h.invite("alice", &["bob"]);
    let status = |h: &mut Harness, u: &str, d: &str| {
        h.req_on(
            u,
            d,
            CallRequest::Status {
                call_id: call.clone(),
            },
        )
    };
    assert!(
        matches!(status(&mut h, "bob", "d1"), Ok(Reply::Call { .. })),
        "ringing"
    );
    assert_eq!(
        h.state(&call, "bob"),
        Some(MemberState::Received),
        "status is not an answer"
    );
    h.accept("bob", &call).unwrap();
    assert!(matches!(
        status(&mut h, "bob", "d1"),
        Ok(Reply::Call { .. })
    ));
    assert_eq!(
        status(&mut h, "bob", "phone").unwrap_err(),
        ErrorCode::NotAMember,
        "in the call elsewhere"
    );
    h.end("alice", &call).unwrap();
    assert_eq!(
        status(&mut h, "bob", "d1").unwrap_err(),
        ErrorCode::CallEnded
    );
}

// --- media signaling relay -----------------------------------------------------

#[test]
fn signals_flow_only_between_accepted_members() {
    let mut h = Harness::new();
    h.online(&["alice", "bob", "carol", "mallory"]);
    let call = h.invite("alice", &["bob", "carol"]);
    let sig = |to: &str| CallRequest::Signal {
        call_id: call.clone(),
        to: uid(to),
        signal: Signal::MediaState {
            mic: true,
            camera: false,
        },
    };
    // Bob is only ringing: nobody may signal him yet, nor he anyone.
    assert_eq!(
        h.req("alice", sig("bob")).unwrap_err(),
        ErrorCode::NotAMember
    );
    assert_eq!(
        h.req("bob", sig("alice")).unwrap_err(),
        ErrorCode::NotAMember
    );
    assert_eq!(
        h.req("mallory", sig("alice")).unwrap_err(),
        ErrorCode::NotAMember
    );
    h.accept("bob", &call).unwrap();
    h.events("bob");
    assert_eq!(h.req("alice", sig("bob")).unwrap(), Reply::Done);
    let bob = h.events("bob");
    assert!(matches!(&bob[..], [Event::Signal { from, .. }] if from == &uid("alice")));
    assert_eq!(
        h.req("alice", sig("carol")).unwrap_err(),
        ErrorCode::NotAMember
    );
    assert!(
        h.events("carol")
            .iter()
            .all(|e| !matches!(e, Event::Signal { .. }))
    );
}

// --- history ---------------------------------------------------------------------

#[test]
fn history_records_when_the_call_connected_and_ended() {
    let mut h = Harness::new();
    h.online(&["alice", "bob"]);
    let start = h.now;
    let call = h.invite("alice", &["bob"]);
    h.advance(3.0);
    h.accept("bob", &call).unwrap();
    h.advance(60.0);
    h.end("bob", &call).unwrap();
    let r = &h.records[0];
    assert_eq!(r.created_at, start);
    assert_eq!(r.connected_at, Some(start + Duration::from_secs(3)));
    assert_eq!(r.ended_at, start + Duration::from_secs(63));
    assert_eq!(r.reason, Reason::Ended);
}

// --- property test -------------------------------------------------------------

mod prop {
    use proptest::prelude::*;

    use super::*;

    const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
    const DEVICES: [&str; 2] = ["d1", "d2"];

    #[derive(Debug, Clone)]
    enum Op {
        Online(usize, usize),
        Offline(usize, usize),
        SignOut(usize, usize),
        Invite(usize, usize, Vec<usize>),
        Add(usize, usize, usize),
        Cancel(usize, usize, bool),
        Accept(usize, usize),
        Reject(usize, usize),
        Quit(usize, usize),
        End(usize, usize),
        Join(usize, usize),
        Signal(usize, usize, usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let u = 0..USERS.len();
        let d = 0..DEVICES.len();
        prop_oneof![
            (u.clone(), d.clone()).prop_map(|(u, d)| Op::Online(u, d)),
            (u.clone(), d.clone()).prop_map(|(u, d)| Op::Offline(u, d)),
            (u.clone(), d.clone()).prop_map(|(u, d)| Op::SignOut(u, d)),
            (
                u.clone(),
                d.clone(),
                proptest::collection::vec(0..USERS.len(), 1..4)
            )
                .prop_map(|(u, d, to)| Op::Invite(u, d, to)),
            (u.clone(), d.clone(), u.clone()).prop_map(|(u, d, t)| Op::Add(u, d, t)),
            (u.clone(), d.clone(), any::<bool>()).prop_map(|(u, d, all)| Op::Cancel(u, d, all)),
            (u.clone(), d.clone()).prop_map(|(u, d)| Op::Accept(u, d)),
            (u.clone(), d.clone()).prop_map(|(u, d)| Op::Reject(u, d)),
            (u.clone(), d.clone()).prop_map(|(u, d)| Op::Quit(u, d)),
            (u.clone(), d.clone()).prop_map(|(u, d)| Op::End(u, d)),
            (u.clone(), d.clone()).prop_map(|(u, d)| Op::Join(u, d)),
            (u.clone(), d.clone(), u).prop_map(|(u, d, t)| Op::Signal(u, d, t)),
            (0u64..30_000).prop_map(Op::Advance),
        ]
    }

    /// The call an op acts on: the user's current call, else the newest one.
    fn target(h: &Harness, user: &str, calls: &[CallId]) -> Option<CallId> {
        h.reg
            .call_of(&uid(user))
            .cloned()
            .or_else(|| calls.last().cloned())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_operations_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
            let mut h = Harness::new();
            let mut calls: Vec<CallId> = Vec::new();
            for op in ops {
                // Every message delivered in this step, checked below.
                let before = h.inbox.clone();
                match op {
                    Op::Online(u, d) => h.online_on(USERS[u], DEVICES[d]),
                    Op::Offline(u, d) => h.offline(USERS[u], DEVICES[d]),
                    Op::SignOut(u, d) => h.input(Input::SignedOut { user: uid(USERS[u]), device: dev(DEVICES[d]) }),
                    Op::Advance(ms) => h.advance(ms as f64 / 1000.0),
                    Op::Invite(u, d, to) => {
                        let call_id = CallId::try_from(format!("prop{:028}", h.next_id + 1)).unwrap();
                        let r = h.req_on(USERS[u], DEVICES[d], CallRequest::Invite(InviteRequest {
                            call_id: call_id.clone(),
                            users: to.iter().map(|t| uid(USERS[*t])).collect(),
                            unknown: vec![],
                            kind: CallKind::Voice,
                            timeout_secs: Some(20),
                            extended_data: ExtendedData::default(),
                        }));
                        if let Ok(Reply::Invitation { call, .. }) = r
                            && !calls.contains(&call.call_id) { calls.push(call.call_id) }
                    }
                    op => {
                        let (u, d) = match &op {
                            Op::Add(u, d, _) | Op::Cancel(u, d, _) | Op::Accept(u, d) | Op::Reject(u, d)
                            | Op::Quit(u, d) | Op::End(u, d) | Op::Join(u, d) | Op::Signal(u, d, _) => (*u, *d),
                            _ => unreachable!(),
                        };
                        let Some(call_id) = target(&h, USERS[u], &calls) else { continue };
                        let none = ExtendedData::default;
                        let request = match op {
                            Op::Add(_, _, t) => CallRequest::Add { call_id, users: vec![uid(USERS[t])], unknown: vec![] },
                            Op::Cancel(_, _, all) => CallRequest::Cancel { call_id, users: (!all).then(|| vec![uid(USERS[(u + 1) % 4])]), extended_data: none() },
                            Op::Accept(..) => CallRequest::Accept { call_id, extended_data: none() },
                            Op::Reject(..) => CallRequest::Reject { call_id, reason: RejectReason::Declined, extended_data: none() },
                            Op::Quit(..) => CallRequest::Quit { call_id, extended_data: none() },
                            Op::End(..) => CallRequest::End { call_id, extended_data: none() },
                            Op::Join(..) => CallRequest::Join { call_id },
                            Op::Signal(_, _, t) => CallRequest::Signal { call_id, to: uid(USERS[t]), signal: Signal::EndOfCandidates },
                            _ => unreachable!(),
                        };
                        let _ = h.req_on(USERS[u], DEVICES[d], request);
                    }
                }
                // No event reaches a user who has no part in the call.
                for ((user, device), msgs) in &h.inbox {
                    let old = before.get(&(user.clone(), device.clone())).map_or(0, Vec::len);
                    for m in msgs.iter().skip(old) {
                        let ServerMessage::Event { event } = m else { continue };
                        let call_id = match event {
                            Event::CallInvited { call, .. } | Event::CallState { call } => &call.call_id,
                            Event::MemberState(c) => &c.call_id,
                            Event::CallEnded { call_id, .. } | Event::Signal { call_id, .. } => call_id,
                            _ => continue,
                        };
                        prop_assert!(h.was_member(call_id, user), "{user} got {event:?}");
                    }
                }
            }
            // Every call ends exactly once, and only calls that were created.
            let mut finished: Vec<&CallId> = h.records.iter().map(|r| &r.call_id).collect();
            finished.sort();
            let n = finished.len();
            finished.dedup();
            prop_assert_eq!(n, finished.len(), "a call ended twice");
            for c in &calls {
                prop_assert!(h.reg.call_info(c).is_some() != finished.contains(&c), "{c} live and ended, or neither");
            }
        }
    }
}
