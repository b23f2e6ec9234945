//! From the wire's types to the UI's.

use beckon_client::ClientError;
use beckon_protocol::{CallKind, ErrorCode, HistoryEntry, UserId, UserProfile};

use crate::view::{HistoryItem, Kind, Person, UiError};

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
            ErrorCode::Busy => "They are busy on another call.".to_owned(),
            _ => capitalise(&body.message),
        },
        ClientError::Connect(why) => format!("Cannot reach the server ({why})."),
        ClientError::Disconnected => "The connection to the server dropped; try again.".to_owned(),
        ClientError::Timeout => "The server did not answer in time; try again.".to_owned(),
        ClientError::Closed => "You are signed out.".to_owned(),
        other => other.to_string(),
    };
    let code = match e {
        ClientError::SignIn(body) | ClientError::Server(body) => body.code.as_str().to_owned(),
        ClientError::Connect(_) => "unreachable".to_owned(),
        ClientError::Disconnected => "disconnected".to_owned(),
        ClientError::Timeout => "timeout".to_owned(),
        ClientError::Closed => "signed_out".to_owned(),
        _ => "unexpected".to_owned(),
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
    UiError::new("invalid_input", format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use beckon_protocol::ErrorBody;

    #[test]
    fn a_wrong_password_reads_as_a_sentence_with_a_code() {
        let e = ClientError::SignIn(ErrorBody::new(ErrorCode::Unauthorized, "bad credentials"));
        let ui = ui_error(&e);
        assert_eq!(ui.code, "unauthorized");
        assert_eq!(ui.message, "Wrong user name or password.");
        let net = ui_error(&ClientError::Connect("refused".into()));
        assert_eq!(net.code, "unreachable");
        assert!(net.message.contains("refused"));
    }
}
