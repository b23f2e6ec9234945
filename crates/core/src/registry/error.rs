//! Why the registry refused a request: each refusal with the protocol's
//! error code and the sentence the asker is sent.

use std::fmt;

use beckon_protocol::{CallId, ErrorCode, MemberState, UserId, limits};

/// A request the registry refused. The asker gets an `error` reply with
/// [`RegistryError::code`] and this error's text; nothing else changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// The request breaks a rule of the protocol (a ring timeout out of
    /// range, too many users, nobody to call).
    Invalid(String),
    /// No call with this id, live or recently ended.
    NoSuchCall(CallId),
    /// The call has ended.
    CallEnded(CallId),
    /// None of the users named has an account.
    NobodyKnown,
    /// The asker is already calling, being called or in a call (this one,
    /// when known).
    Busy(Option<CallId>),
    /// `user` has no part in the call that this needs; `what` says which.
    NotAMember {
        /// Who.
        user: UserId,
        /// What they are not, as the end of a sentence about them.
        what: String,
    },
    /// The asker is in the call, but on another of their devices.
    OnOtherDevice,
    /// The invitation is no longer open: it was answered, timed out, was
    /// cancelled, or left.
    AlreadyAnswered(MemberState),
    /// The fresh call id the server drew is taken.
    IdCollision,
}

impl RegistryError {
    /// The protocol's code for it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::Invalid,
            Self::NoSuchCall(_) | Self::NobodyKnown => ErrorCode::NotFound,
            Self::CallEnded(_) => ErrorCode::CallEnded,
            Self::Busy(_) => ErrorCode::Busy,
            Self::NotAMember { .. } | Self::OnOtherDevice => ErrorCode::NotAMember,
            Self::AlreadyAnswered(_) => ErrorCode::AlreadyAnswered,
            Self::IdCollision => ErrorCode::Internal,
        }
    }

    pub(super) fn not_a_member(user: &UserId, what: &str) -> Self {
        Self::NotAMember {
            user: user.clone(),
            what: what.to_owned(),
        }
    }

    /// Refuses more users in one request than the protocol allows.
    pub(super) fn check_user_count(n: usize) -> Result<(), Self> {
        limits::check_user_count(n).map_err(|e| Self::Invalid(e.message))
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(why) => f.write_str(why),
            Self::NoSuchCall(call_id) => write!(f, "no call {call_id}"),
            Self::CallEnded(call_id) => write!(f, "call {call_id} has ended"),
            Self::NobodyKnown => f.write_str("none of the users named has an account"),
            Self::Busy(Some(call_id)) => write!(f, "you are already in call {call_id}"),
            Self::Busy(None) => f.write_str("you are already calling, being called, or in a call"),
            Self::NotAMember { user, what } => write!(f, "{user} {what}"),
            Self::OnOtherDevice => {
                f.write_str("this call is on your other device; join it here first")
            }
            Self::AlreadyAnswered(state) => f.write_str(match state {
                MemberState::Accepted => "the invitation was already accepted on another device",
                MemberState::Rejected => "the invitation was already declined",
                MemberState::Timeout => "the invitation timed out",
                MemberState::Cancelled => "the caller cancelled the invitation",
                MemberState::Quit => "you left this call; join it instead",
                _ => "the invitation is no longer open",
            }),
            Self::IdCollision => f.write_str("call id collision; try again"),
        }
    }
}

impl std::error::Error for RegistryError {}
