//! From the wire's types to the UI's.

use beckon_client::ClientError;
use beckon_protocol::{CallKind, ErrorCode, HistoryEntry, UserId, UserProfile};

use crate::view::{HistoryItem, Kind, Person, UiError, UiErrorCode};

/// A person from their profile; `echo` marks the built-in echo contact.
pub(crate) fn person(p: &UserProfile, echo: bool) -> Person {
    Person {
        id: p.id.to_string(),
        name: p.display_name.to_string(),
        avatar_url: p.avatar_url.as_ref().map(ToString::to_string),
        online: p.online,
        echo,
    }
}

/// Someone we know only by id.
pub(crate) fn stranger(id: &UserId) -> Person {
    Person {
        id: id.to_string(),
        name: id.to_string(),
        avatar_url: None,
        online: false,
        echo: false,
    }
}

pub(crate) fn kind(k: CallKind) -> Kind {
    match k {
        CallKind::Video => Kind::Video,
        CallKind::Voice => Kind::Voice,
    }
}

/// A wire enum's snake_case name.
pub(crate) fn wire_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One history entry as `me` sees it; `who` names the others.
pub(crate) fn history_item(
    e: &HistoryEntry,
    me: &UserId,
    who: impl Fn(&UserId) -> Person,
) -> HistoryItem {
    HistoryItem {
        id: e.call_id.to_string(),
        kind: kind(e.kind),
        outgoing: &e.inviter == me,
        with: e
            .members
            .iter()
            .filter(|m| &m.user != me)
            .map(|m| who(&m.user))
            .collect(),
        started_at_ms: e.started_at_ms as f64,
        duration_secs: u32::try_from(e.duration_ms.max(0) / 1000).unwrap_or(u32::MAX),
        outcome: wire_name(&e.outcome),
        missed: e.missed,
    }
}

/// A client error as the UI shows it.
pub(crate) fn ui_error(e: &ClientError) -> UiError {
    let message = match e {
        ClientError::SignIn(body) | ClientError::Server(body) => match body.code {
            ErrorCode::Unauthorized => "Wrong user name or password.".to_owned(),
            ErrorCode::UserExists => "That user name is taken; choose another.".to_owned(),
            ErrorCode::RateLimited => "Too many attempts; wait a moment and try again.".to_owned(),
            // The server says this of us, not of whoever we call (their
            // being busy comes as the call's outcome).
            ErrorCode::Busy => "You are already in a call.".to_owned(),
            _ => capitalise(&body.message),
        },
        ClientError::Connect(why) => format!("Cannot reach the server ({why})."),
        ClientError::Disconnected => "The connection to the server dropped; try again.".to_owned(),
        ClientError::Timeout => "The server did not answer in time; try again.".to_owned(),
        ClientError::Closed => "You are signed out.".to_owned(),
        other => other.to_string(),
    };
    let code = match e {
        ClientError::SignIn(body) | ClientError::Server(body) => body.code.into(),
        ClientError::Connect(_) => UiErrorCode::Unreachable,
        ClientError::Disconnected => UiErrorCode::Disconnected,
        ClientError::Timeout => UiErrorCode::Timeout,
        ClientError::Closed => UiErrorCode::SignedOut,
        _ => UiErrorCode::Unexpected,
    };
    UiError { code, message }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => "Something went wrong.".to_owned(),
    }
}

/// A bad value typed by the user.
pub(crate) fn invalid(what: &str, e: impl std::fmt::Display) -> UiError {
    UiError::new(UiErrorCode::InvalidInput, format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use beckon_protocol::ErrorBody;

    #[test]
    fn a_wrong_password_reads_as_a_sentence_with_a_code() {
        let e = ClientError::SignIn(ErrorBody::new(ErrorCode::Unauthorized, "bad credentials"));
        let ui = ui_error(&e);
        assert_eq!(ui.code, UiErrorCode::Unauthorized);
        assert_eq!(ui.message, "Wrong user name or password.");
        let net = ui_error(&ClientError::Connect("refused".into()));
        assert_eq!(net.code, UiErrorCode::Unreachable);
        assert!(net.message.contains("refused"));
    }
}
