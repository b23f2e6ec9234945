//! Keeps `docs/protocol.md` honest: every ```json block is exactly one real
//! protocol message, every request, reply, event and signal kind has an
//! example, and the value tables name every wire value.

use std::collections::BTreeSet;

use beckon_protocol::{
    CallKind, ClientMessage, ErrorCode, MemberState, Outcome, Reason, RejectReason, ServerMessage,
    SessionCloseReason,
};
use serde_json::Value;

// Keep these lists in sync with message.rs; `lists_match_the_wire_types`
// fails when a variant is added or renamed there.
const REQUESTS: &[&str] = &[
    "register",
    "login",
    "resume",
    "logout",
    "ping",
    "ice_servers",
    "update_profile",
    "search_users",
    "get_users",
    "contacts",
    "add_contact",
    "remove_contact",
    "history",
    "missed_count",
    "mark_history_seen",
    "invite",
    "add",
    "cancel",
    "accept",
    "reject",
    "quit",
    "end",
    "call_status",
    "join",
    "signal",
];
const REPLIES: &[&str] = &[
    "session",
    "pong",
    "done",
    "ice_servers",
    "profile",
    "users",
    "history",
    "missed_count",
    "invitation",
    "call",
];
const EVENTS: &[&str] = &[
    "call_invited",
    "member_state",
    "call_state",
    "call_ended",
    "signal",
    "presence",
    "session_closed",
];
const SIGNALS: &[&str] = &[
    "offer",
    "answer",
    "candidate",
    "end_of_candidates",
    "media_state",
];

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every ```json block: the line of its opening fence and its text.
fn json_blocks(doc: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, bool, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = fence.strip_prefix("```") {
                    open = Some((i + 1, info.trim() == "json", String::new()));
                }
            }
            Some((start, is_json, text)) => {
                if fence.trim_end() == "```" {
                    if *is_json {
                        blocks.push((*start, std::mem::take(text)));
                    }
                    open = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    if let Some((start, ..)) = open {
        panic!("protocol.md:{start}: code block is never closed");
    }
    blocks
}

/// Paths of `original` that the typed message does not carry: misspelt or
/// unknown fields (which serde would silently ignore) and changed values.
/// A `null` counts as absent, since optional fields are skipped when empty.
fn not_carried(original: &Value, canonical: &Value, path: &str, out: &mut Vec<String>) {
    match (original, canonical) {
        (Value::Object(o), Value::Object(c)) => {
            for (k, v) in o {
                let p = format!("{path}.{k}");
                match c.get(k) {
                    Some(cv) => not_carried(v, cv, &p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(o), Value::Array(c)) if o.len() == c.len() => {
            for (i, (v, cv)) in o.iter().zip(c).enumerate() {
                not_carried(v, cv, &format!("{path}[{i}]"), out);
            }
        }
        (o, c) if o == c => {}
        _ => out.push(path.to_owned()),
    }
}

fn tag(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {key:?} in {v}"))
        .to_owned()
}

#[derive(Default)]
struct Seen {
    requests: BTreeSet<String>,
    replies: BTreeSet<String>,
    events: BTreeSet<String>,
    signals: BTreeSet<String>,
}

/// Parses one example and records which kinds of message it shows.
fn check_example(text: &str, seen: &mut Seen) -> Result<(), String> {
    let canonical = if let Ok(msg) = serde_json::from_str::<ClientMessage>(text) {
        seen.requests.insert(msg.request.name().to_owned());
        serde_json::to_value(&msg).map_err(|e| e.to_string())?
    } else {
        let msg = serde_json::from_str::<ServerMessage>(text).map_err(|e| {
            let as_client = serde_json::from_str::<ClientMessage>(text).unwrap_err();
            format!("neither a ClientMessage ({as_client}) nor a ServerMessage ({e})")
        })?;
        let value = serde_json::to_value(&msg).map_err(|e| e.to_string())?;
        match tag(&value, "type").as_str() {
            "reply" => {
                seen.replies.insert(tag(&value["reply"], "type"));
            }
            "event" => {
                seen.events.insert(tag(&value["event"], "type"));
            }
            _ => {}
        }
        value
    };
    for holder in [&canonical, &canonical["event"]] {
        if let Some(signal) = holder.get("signal") {
            seen.signals.insert(tag(signal, "kind"));
        }
    }
    let original: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut extra = Vec::new();
    not_carried(&original, &canonical, "", &mut extra);
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fields not carried by the message type (misspelt or unknown?): {}",
            extra.join(", ")
        ))
    }
}

#[test]
fn every_json_example_is_one_protocol_message() {
    let doc = doc();
    let blocks = json_blocks(&doc);
    assert!(!blocks.is_empty(), "no ```json examples in protocol.md");
    let mut seen = Seen::default();
    let failures: Vec<String> = blocks
        .iter()
        .filter_map(|(line, text)| {
            check_example(text, &mut seen)
                .err()
                .map(|e| format!("protocol.md:{line}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    for (what, expected, seen) in [
        ("request", REQUESTS, &seen.requests),
        ("reply", REPLIES, &seen.replies),
        ("event", EVENTS, &seen.events),
        ("signal", SIGNALS, &seen.signals),
    ] {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        let missing: Vec<_> = expected.difference(seen).collect();
        assert!(missing.is_empty(), "no example of {what} {missing:?}");
        let unlisted: Vec<_> = seen.difference(&expected).collect();
        assert!(
            unlisted.is_empty(),
            "{what} {unlisted:?} shown in protocol.md but not listed in this test"
        );
    }
}

/// The names serde expects for a tag or unit enum, read from the error it
/// gives for an unknown one. `parse` tries one message built by `wrap`.
fn wire_names(
    parse: impl Fn(&str) -> Result<(), serde_json::Error>,
    wrap: impl Fn(&str) -> String,
) -> BTreeSet<String> {
    let bogus = "no_such_variant";
    let err = match parse(&wrap(bogus)) {
        Ok(()) => panic!("{bogus} was accepted"),
        Err(e) => e.to_string(),
    };
    let expected = err
        .split_once("expected")
        .unwrap_or_else(|| panic!("unexpected serde error: {err}"))
        .1;
    let names: BTreeSet<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!names.is_empty(), "no variant names in: {err}");
    names
}

/// The wire names of a unit enum such as `ErrorCode`.
macro_rules! unit_names {
    ($t:ty) => {
        wire_names(
            |s| serde_json::from_str::<$t>(s).map(drop),
            |v| format!("\"{v}\""),
        )
    };
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn lists_match_the_wire_types() {
    let client = |s: &str| serde_json::from_str::<ClientMessage>(s).map(drop);
    let server = |s: &str| serde_json::from_str::<ServerMessage>(s).map(drop);
    let request = |t: &str| format!(r#"{{"id":1,"type":"{t}"}}"#);
    assert_eq!(wire_names(client, request), set(REQUESTS));
    let reply = |t: &str| format!(r#"{{"type":"reply","id":1,"reply":{{"type":"{t}"}}}}"#);
    assert_eq!(wire_names(server, reply), set(REPLIES));
    let event = |t: &str| format!(r#"{{"type":"event","event":{{"type":"{t}"}}}}"#);
    assert_eq!(wire_names(server, event), set(EVENTS));
    let signal = |k: &str| {
        format!(
            r#"{{"type":"event","event":{{"type":"signal","call_id":"9f1c2a7b3d4e5f60718293a4b5c6d7e8","from":"alice","signal":{{"kind":"{k}"}}}}}}"#
        )
    };
    assert_eq!(wire_names(server, signal), set(SIGNALS));
}

/// The rows of the table whose header row is `header`, as trimmed cells.
fn table(doc: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = doc.lines().map(str::trim);
    if !lines.any(|l| l == header) {
        panic!("protocol.md has no table headed {header:?}");
    }
    lines
        .skip(1) // the |---| line
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The first column of a table, without the backticks.
fn first_column(doc: &str, header: &str) -> BTreeSet<String> {
    table(doc, header)
        .into_iter()
        .map(|row| row[0].trim_matches('`').to_owned())
        .collect()
}

#[test]
fn value_tables_name_every_wire_value() {
    let doc = doc();
    for (header, names) in [
        ("| code | retryable | meaning |", unit_names!(ErrorCode)),
        ("| state | meaning |", unit_names!(MemberState)),
        ("| reason | meaning |", unit_names!(Reason)),
        ("| reject reason | meaning |", unit_names!(RejectReason)),
        ("| outcome | meaning |", unit_names!(Outcome)),
        (
            "| close reason | meaning |",
            unit_names!(SessionCloseReason),
        ),
        ("| call kind | meaning |", unit_names!(CallKind)),
    ] {
        assert_eq!(first_column(&doc, header), names, "table {header}");
    }
}

#[test]
fn error_table_says_which_codes_are_retryable() {
    for row in table(&doc(), "| code | retryable | meaning |") {
        let code: ErrorCode =
            serde_json::from_value(Value::String(row[0].trim_matches('`').into()))
                .unwrap_or_else(|e| panic!("{}: {e}", row[0]));
        let expected = if code.is_retryable() { "yes" } else { "no" };
        assert_eq!(row[1], expected, "retryable column of {code}");
    }
}
