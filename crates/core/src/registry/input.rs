//! What the registry is fed and what it gives back.

use beckon_protocol::{
    CallId, CallKind, DeviceId, ExtendedData, RejectReason, RequestId, ServerMessage, Signal,
    UserId,
};

use super::call::CallRecord;

/// Something that happened to the registry.
#[derive(Debug, Clone)]
pub enum Input {
    /// A device signed in or resumed its session.
    Online {
        /// Who.
        user: UserId,
        /// Which device.
        device: DeviceId,
    },
    /// A device's connection dropped; the grace period starts.
    Offline {
        /// Who.
        user: UserId,
        /// Which device.
        device: DeviceId,
    },
    /// A device signed out: it leaves its calls at once, without grace.
    SignedOut {
        /// Who.
        user: UserId,
        /// Which device.
        device: DeviceId,
    },
    /// A signed-in device asked for something.
    Request {
        /// Who asked (already authenticated).
        user: UserId,
        /// From which device.
        device: DeviceId,
        /// The request id to answer.
        id: RequestId,
        /// What.
        request: CallRequest,
    },
}

/// A request to start a call, with what the server adds: a fresh call id
/// and which named users have no account.
#[derive(Debug, Clone)]
pub struct InviteRequest {
    /// A fresh, unguessable id for the call, should it be created.
    pub call_id: CallId,
    /// Invitees that have accounts.
    pub users: Vec<UserId>,
    /// Named users without an account; reported `not_found` each.
    pub unknown: Vec<UserId>,
    /// Video or voice.
    pub kind: CallKind,
    /// Ring timeout, 1–600 s (default 60).
    pub timeout_secs: Option<u32>,
    /// For the invitees.
    pub extended_data: ExtendedData,
}

/// The call requests of the protocol, with what the server adds: a fresh
/// call id and which named users have no account.
#[derive(Debug, Clone)]
pub enum CallRequest {
    /// Start a call.
    Invite(InviteRequest),
    /// Invite more users into a call.
    Add {
        /// The call.
        call_id: CallId,
        /// Invitees that have accounts.
        users: Vec<UserId>,
        /// Named users without an account.
        unknown: Vec<UserId>,
    },
    /// Take back pending invitations.
    Cancel {
        /// The call.
        call_id: CallId,
        /// Whom; every pending invitee of the sender when `None`.
        users: Option<Vec<UserId>>,
        /// For the cancelled.
        extended_data: ExtendedData,
    },
    /// Answer yes.
    Accept {
        /// The call.
        call_id: CallId,
        /// For the others.
        extended_data: ExtendedData,
    },
    /// Answer no.
    Reject {
        /// The call.
        call_id: CallId,
        /// Declined or busy.
        reason: RejectReason,
        /// For the others.
        extended_data: ExtendedData,
    },
    /// Leave the call.
    Quit {
        /// The call.
        call_id: CallId,
        /// For the others.
        extended_data: ExtendedData,
    },
    /// End the call for everyone.
    End {
        /// The call.
        call_id: CallId,
        /// For the others.
        extended_data: ExtendedData,
    },
    /// How the call stands for this device; changes nothing.
    Status {
        /// The call.
        call_id: CallId,
    },
    /// Come back, or move the call to this device.
    Join {
        /// The call.
        call_id: CallId,
    },
    /// Relay media signaling to another accepted member.
    Signal {
        /// The call.
        call_id: CallId,
        /// To whom.
        to: UserId,
        /// What.
        signal: Signal,
    },
}

/// Work for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `message` to one device of one user.
    Send {
        /// The user.
        user: UserId,
        /// Their device.
        device: DeviceId,
        /// What to send.
        message: ServerMessage,
    },
    /// A call ended; store it in the history.
    CallFinished(CallRecord),
}
