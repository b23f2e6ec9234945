//! Typed error codes: the UI branches on the code and shows the message.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong with a request, in a form a program can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not signed in, wrong password, or an expired or unknown token.
    Unauthorized,
    /// The user is calling, being called or in a call.
    Busy,
    /// No such user or call.
    NotFound,
    /// The message or a field of it is malformed; the message says which.
    Invalid,
    /// Too many messages; slow down and retry.
    RateLimited,
    /// The message is larger than the protocol allows.
    TooLarge,
    /// The call exists but the user has no part in it that allows this.
    NotAMember,
    /// The call is over.
    CallEnded,
    /// The invitation was already answered (here or on another device), or
    /// its ring already ended.
    AlreadyAnswered,
    /// The user is a member but their role does not allow the action (e.g.
    /// cancelling someone else's invitee).
    NotAllowed,
    /// The call has as many members as it may have.
    LimitExceeded,
    /// Registration with a user id that is taken.
    UserExists,
    /// The client speaks a protocol version this server does not.
    VersionMismatch,
    /// The server failed; retry later.
    Internal,
}

impl ErrorCode {
    /// Whether retrying the same request later may succeed. Network-level
    /// failures are the client library's business and always retryable.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Internal)
    }

    /// The wire name, e.g. `not_a_member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Busy => "busy",
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::NotAMember => "not_a_member",
            Self::CallEnded => "call_ended",
            Self::AlreadyAnswered => "already_answered",
            Self::NotAllowed => "not_allowed",
            Self::LimitExceeded => "limit_exceeded",
            Self::UserExists => "user_exists",
            Self::VersionMismatch => "version_mismatch",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the server sends it: a code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorBody {
    /// What to branch on.
    pub code: ErrorCode,
    /// What to show.
    pub message: String,
}

impl ErrorBody {
    /// An error with `code` and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::NotAMember,
            ErrorCode::AlreadyAnswered,
            ErrorCode::VersionMismatch,
            ErrorCode::TooLarge,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(ErrorCode::RateLimited.is_retryable());
        assert!(!ErrorCode::Unauthorized.is_retryable());
        assert!(!ErrorCode::Busy.is_retryable());
    }
}
