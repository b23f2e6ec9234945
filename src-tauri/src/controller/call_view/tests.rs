use super::*;
use beckon_protocol::CallKind;

fn uid(s: &str) -> UserId {
    s.parse().expect("user id")
}

fn name(u: &UserId) -> Person {
    super::super::convert::stranger(u)
}

fn call(states: &[(&str, MemberState)], phase: ManagerPhase) -> CurrentCall {
    CurrentCall {
        info: CallInfo {
            call_id: "c0ffee00c0ffee00".parse().expect("call id"),
            kind: CallKind::Video,
            inviter: uid("alice"),
            extended_data: Default::default(),
            timeout_secs: 30,
            members: states
                .iter()
                .map(|(u, s)| MemberInfo {
                    user: uid(u),
                    state: *s,
                    reason: None,
                    invited_by: None,
                    extended_data: Default::default(),
                })
                .collect(),
        },
        phase,
        rung_by: None,
    }
}

#[test]
fn the_calling_page_shows_joined_and_ringing_members_but_not_who_left() {
    let c = call(
        &[
            ("alice", MemberState::Accepted),
            ("bob", MemberState::Accepted),
            ("carol", MemberState::Received),
            ("dave", MemberState::Rejected),
        ],
        ManagerPhase::Connected,
    );
    let mut extras = CallExtras::default();
    extras.remote.insert(
        uid("bob"),
        Remote {
            mic: false,
            ..Remote::default()
        },
    );
    let v = view(&c, &uid("alice"), &extras, name);
    let shown: Vec<_> = v
        .members
        .iter()
        .map(|m| (m.person.id.as_str(), m.status, m.mic))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("bob", MemberStatus::Joined, false),
            ("carol", MemberStatus::Ringing, true)
        ]
    );
    assert!(v.can_end_for_all);
    assert_eq!(v.phase, Phase::Connected);
    // Any member in the call may end it for all, as the server allows;
    // one still ringing may not.
    assert!(view(&c, &uid("bob"), &extras, name).can_end_for_all);
    assert!(!view(&c, &uid("carol"), &extras, name).can_end_for_all);
}

#[test]
fn video_that_stops_coming_is_marked_stalled_and_a_broken_link_reconnecting() {
    let t0 = Instant::now();
    let mut r = Remote {
        frames: 90,
        frames_grew_at: Some(t0),
        ..Remote::default()
    };
    assert!(!stalled(
        &r,
        LinkState::Connected,
        t0 + Duration::from_millis(500)
    ));
    assert!(stalled(
        &r,
        LinkState::Connected,
        t0 + Duration::from_secs(2)
    ));
    assert!(
        !stalled(&r, LinkState::Reconnecting, t0 + Duration::from_secs(2)),
        "a reconnecting link says so instead"
    );
    r.camera = false;
    assert!(
        !stalled(&r, LinkState::Connected, t0 + Duration::from_secs(2)),
        "camera off"
    );
    r.camera = true;
    r.frames = 0;
    assert!(
        !stalled(&r, LinkState::Connected, t0 + Duration::from_secs(2)),
        "no picture yet"
    );
}

#[test]
fn a_failed_one_to_one_call_says_why() {
    let why = |state, reason| {
        let mut last = call(
            &[("alice", MemberState::Accepted), ("bob", state)],
            ManagerPhase::Outgoing,
        )
        .info;
        last.members[1].reason = reason;
        let end = reason.unwrap_or(Reason::Timeout);
        ended(
            &last,
            Some(&uid("alice")),
            end,
            Some(&uid("bob")),
            false,
            name,
        )
    };
    let declined = why(MemberState::Rejected, Some(Reason::Declined));
    assert_eq!(declined.message, "bob declined.");
    assert_eq!(declined.id, "c0ffee00c0ffee00");
    assert_eq!(
        why(MemberState::Rejected, Some(Reason::Busy)).reason,
        "busy"
    );
    assert_eq!(
        why(MemberState::Timeout, Some(Reason::Timeout)).reason,
        "no_answer"
    );
    // The ring timed out without reaching any device of his.
    assert_eq!(
        why(MemberState::Timeout, Some(Reason::Offline)).message,
        "bob is offline."
    );
    // A server that sends no member reasons: the call's end reason.
    assert_eq!(why(MemberState::Timeout, None).reason, "no_answer");
}

#[test]
fn a_connected_call_names_who_ended_it() {
    let last = call(
        &[
            ("alice", MemberState::Accepted),
            ("bob", MemberState::Accepted),
        ],
        ManagerPhase::Connected,
    )
    .info;
    let o = ended(
        &last,
        Some(&uid("alice")),
        Reason::Ended,
        Some(&uid("bob")),
        true,
        name,
    );
    assert_eq!(
        (o.reason.as_str(), o.message.as_str()),
        ("ended", "bob ended the call.")
    );
}

#[test]
fn a_ring_we_did_not_take_says_missed_or_cancelled() {
    let mut last = call(
        &[
            ("alice", MemberState::Accepted),
            ("bob", MemberState::Timeout),
        ],
        ManagerPhase::Incoming,
    )
    .info;
    last.members[1].reason = Some(Reason::Timeout);
    let (bob, alice) = (uid("bob"), uid("alice"));
    // How the ring ended, as bob's app says it.
    let says = |last: &CallInfo, reason, by| {
        let o = ended(last, Some(&bob), reason, by, false, name);
        (o.reason, o.message)
    };
    assert_eq!(
        says(&last, Reason::Timeout, None),
        ("missed".into(), "You missed a call from alice.".into())
    );
    last.members[1].state = MemberState::Ended;
    last.members[1].reason = None;
    assert_eq!(
        says(&last, Reason::Cancelled, Some(&alice)),
        ("cancelled".into(), "alice cancelled the call.".into())
    );
    // We declined it ourselves: nothing to explain.
    last.members[1].state = MemberState::Rejected;
    assert_eq!(says(&last, Reason::Declined, None).1, "Call ended.");
}
