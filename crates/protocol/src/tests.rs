use super::*;

fn user(s: &str) -> UserId {
    UserId::try_from(s).unwrap()
}

#[test]
fn requests_carry_their_id_beside_the_type_tag() {
    let json =
        r#"{"id":9,"type":"reject","call_id":"0123456789abcdef0123456789abcdef","reason":"busy"}"#;
    let msg = decode_client_message(json).unwrap();
    assert_eq!(msg.id, 9);
    match msg.request {
        Request::Reject {
            reason,
            extended_data,
            ..
        } => {
            assert_eq!(reason, RejectReason::Busy);
            assert!(extended_data.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_request_round_trips() {
    let call_id = CallId::try_from("0123456789abcdef0123456789abcdef").unwrap();
    let requests = vec![
        Request::Login {
            version: PROTOCOL_VERSION,
            user: user("alice"),
            password: Password::try_from("correct horse").unwrap(),
            device: DeviceId::try_from("laptop").unwrap(),
        },
        Request::Invite {
            users: vec![user("bob"), user("carol")],
            kind: CallKind::Voice,
            timeout_secs: Some(30),
            extended_data: ExtendedData::try_from(r#"{"note":"hi"}"#).unwrap(),
        },
        Request::Cancel {
            call_id: call_id.clone(),
            users: None,
            extended_data: Default::default(),
        },
        Request::Signal {
            call_id: call_id.clone(),
            to: user("bob"),
            signal: Signal::Candidate {
                candidate: IceCandidate::try_from(
                    "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
                )
                .unwrap(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            },
        },
        Request::History {
            before: Some(1_700_000_000_000),
            limit: Some(10),
        },
        Request::Ping,
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let msg = ClientMessage {
            id: i as u64,
            request,
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(decode_client_message(&json).unwrap(), msg, "{json}");
    }
}

#[test]
fn server_messages_round_trip() {
    let call_id = CallId::try_from("0123456789abcdef0123456789abcdef").unwrap();
    let msgs = vec![
        ServerMessage::error(Some(3), ErrorCode::Busy, "alice is in another call"),
        ServerMessage::Event {
            event: Event::MemberState(MemberChange {
                call_id: call_id.clone(),
                user: user("bob"),
                state: MemberState::Rejected,
                reason: Reason::Busy,
                device: None,
                by: None,
                extended_data: Default::default(),
            }),
        },
        ServerMessage::Event {
            event: Event::CallEnded {
                call_id,
                reason: Reason::Ended,
                by: Some(user("bob")),
                extended_data: ExtendedData::try_from("bye").unwrap(),
            },
        },
        ServerMessage::Reply {
            id: 1,
            reply: Reply::MissedCount { count: 2 },
        },
    ];
    for msg in msgs {
        let json = serde_json::to_string(&msg).unwrap();
        let back: ServerMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, msg, "{json}");
    }
}

#[test]
fn errors_are_flat_with_code_and_message() {
    let json =
        serde_json::to_string(&ServerMessage::error(Some(4), ErrorCode::NotAMember, "no")).unwrap();
    assert_eq!(
        json,
        r#"{"type":"error","id":4,"code":"not_a_member","message":"no"}"#
    );
}

#[test]
fn oversize_messages_are_refused_before_parsing() {
    let big = format!(
        r#"{{"id":1,"type":"ping","pad":"{}"}}"#,
        "x".repeat(limits::MAX_MESSAGE_BYTES)
    );
    let (id, err) = decode_client_message(&big).unwrap_err();
    assert_eq!(err.code, ErrorCode::TooLarge);
    assert_eq!(id, None);
}

#[test]
fn malformed_messages_keep_their_id_when_it_can_be_read() {
    let (id, err) = decode_client_message(r#"{"id":12,"type":"accept"}"#).unwrap_err();
    assert_eq!(id, Some(12));
    assert_eq!(err.code, ErrorCode::Invalid);
    assert!(err.message.contains("call_id"), "{}", err.message);

    let (id, err) =
        decode_client_message(r#"{"id":13,"type":"invite","users":["BAD ID"],"kind":"video"}"#)
            .unwrap_err();
    assert_eq!(id, Some(13));
    assert!(err.message.contains("user_id"), "{}", err.message);

    let (id, err) = decode_client_message("not json").unwrap_err();
    assert_eq!(id, None);
    assert_eq!(err.code, ErrorCode::Invalid);

    let (_, err) = decode_client_message(r#"{"id":1,"type":"fly_to_the_moon"}"#).unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
}

#[test]
fn deeply_nested_garbage_is_an_error_not_a_crash() {
    let deep = format!(
        r#"{{"id":1,"type":"ping","x":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert!(decode_client_message(&deep).is_err());
}

#[test]
fn oversize_extended_data_is_invalid() {
    let json = format!(
        r#"{{"id":2,"type":"accept","call_id":"0123456789abcdef0123456789abcdef","extended_data":"{}"}}"#,
        "x".repeat(limits::EXTENDED_DATA_MAX + 1)
    );
    let (id, err) = decode_client_message(&json).unwrap_err();
    assert_eq!(id, Some(2));
    assert!(err.message.contains("extended_data"));
}

#[test]
fn only_objects_have_an_id_to_echo() {
    assert_eq!(peek_request_id(r#"{"id":7,"type":"nope"}"#), Some(7));
    assert_eq!(peek_request_id("[7]"), None);
    assert_eq!(peek_request_id(r#"{"id":"7"}"#), None);
    let (id, _) = decode_client_message("[7]").unwrap_err();
    assert_eq!(id, None);
}
