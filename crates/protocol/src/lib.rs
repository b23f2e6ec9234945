//! Wire types shared by the Beckon signaling server and its clients.
//!
//! Every message is one JSON object in one WebSocket text frame. A client
//! sends [`ClientMessage`]s (a request with an `id`); the server answers each
//! with a [`ServerMessage::Reply`] or [`ServerMessage::Error`] carrying that
//! `id`, and pushes [`ServerMessage::Event`]s. `docs/protocol.md` shows every
//! message with an example and every flow as a sequence.
//!
//! ```
//! use beckon_protocol::{ClientMessage, Request, CallKind, UserId};
//! let msg = ClientMessage {
//!     id: 1,
//!     request: Request::Invite {
//!         users: vec![UserId::try_from("bob").unwrap()],
//!         kind: CallKind::Video,
//!         timeout_secs: None,
//!         extended_data: Default::default(),
//!     },
//! };
//! let json = serde_json::to_string(&msg).unwrap();
//! assert!(json.starts_with(r#"{"id":1,"type":"invite","users":["bob"]"#));
//! ```

use serde::Deserialize;

mod call;
mod error;
mod ids;
pub mod limits;
mod message;

pub use call::{CallInfo, CallKind, MemberChange, MemberInfo, MemberState, Reason, RejectReason};
pub use error::{ErrorBody, ErrorCode};
pub use ids::{
    AvatarUrl, CallId, DeviceId, DisplayName, ExtendedData, FieldError, IceCandidate, Password,
    RequestId, Sdp, SearchQuery, SessionToken, UserId,
};
pub use message::{
    ClientMessage, Event, HistoryEntry, HistoryMember, IceServer, Outcome, Reply, Request,
    ServerMessage, Session, SessionCloseReason, Signal, UserProfile, UserResult,
};

/// The protocol version this crate speaks. Sent with `register`, `login` and
/// `resume`; the server refuses other versions with `version_mismatch`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Reads a client message, checking the size limit before parsing.
///
/// On failure returns the request id when it could be read, so the error can
/// be addressed to the request.
pub fn decode_client_message(text: &str) -> Result<ClientMessage, (Option<RequestId>, ErrorBody)> {
    if text.len() > limits::MAX_MESSAGE_BYTES {
        return Err((
            None,
            ErrorBody::new(
                ErrorCode::TooLarge,
                format!(
                    "message is {} bytes; the limit is {}",
                    text.len(),
                    limits::MAX_MESSAGE_BYTES
                ),
            ),
        ));
    }
    serde_json::from_str::<ClientMessage>(text).map_err(|e| {
        (
            peek_request_id(text),
            ErrorBody::new(ErrorCode::Invalid, format!("malformed message: {e}")),
        )
    })
}

/// The `id` of a message that is a JSON object with a numeric `id`, read
/// without looking deeper into the rest; `None` for anything else.
pub fn peek_request_id(text: &str) -> Option<RequestId> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<RequestId>,
    }
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<IdOnly>(text).ok().and_then(|v| v.id)
}

#[cfg(test)]
mod tests;
