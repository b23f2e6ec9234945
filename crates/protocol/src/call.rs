//! What a call and its members look like on the wire.

use serde::{Deserialize, Serialize};

use crate::ids::{CallId, DeviceId, ExtendedData, UserId};

/// Video or voice only; chosen by the caller and shown to the callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// Camera and microphone.
    Video,
    /// Microphone only.
    Voice,
}

/// Where one member of a call stands (DESIGN §2, the seed's `ZIMCallUserState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Invited, not yet delivered to any device of the invitee.
    Inviting,
    /// Delivered to at least one device; it is ringing.
    Received,
    /// Still undelivered 5 s after the invitation (offline). Still gets the
    /// invitation if it signs in before the ring timeout.
    NotYetReceived,
    /// In the call (the inviter starts here).
    Accepted,
    /// Declined, or refused because busy.
    Rejected,
    /// Did not answer before the ring timeout.
    Timeout,
    /// The inviter took the invitation back before it was answered.
    Cancelled,
    /// Left a call that goes on for the others.
    Quit,
    /// Was still involved when the call ended.
    Ended,
}

impl MemberState {
    /// Invited and not answered yet: ringing or about to.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Inviting | Self::Received | Self::NotYetReceived)
    }

    /// Still part of the call: pending or accepted. Only involved members get
    /// the call's events.
    pub fn is_involved(self) -> bool {
        self.is_pending() || self == Self::Accepted
    }

    /// May end the call for everyone: any member in it (DESIGN §2), not
    /// only its inviter. The server enforces this (on the device the
    /// member accepted on); apps offer "End for all" by it.
    pub fn may_end_for_all(self) -> bool {
        self == Self::Accepted
    }
}

/// Why a member's state changed, or why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Invited (or added) by a member.
    Invited,
    /// The invitation reached a device.
    Delivered,
    /// No device of the invitee was online 5 s after the invitation.
    Offline,
    /// The invitee accepted.
    Answered,
    /// A member came back after quitting, or moved the call to another device.
    Joined,
    /// The invitee declined.
    Declined,
    /// The invitee was busy with another call.
    Busy,
    /// Nobody answered before the ring timeout.
    Timeout,
    /// The inviter cancelled.
    Cancelled,
    /// A member hung up and left the others in the call.
    Quit,
    /// A device lost its connection and did not come back within the grace
    /// period.
    Disconnected,
    /// A member ended the call for everyone.
    Ended,
}

/// Why an invitee says no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The person declined.
    #[default]
    Declined,
    /// The device is busy with another call.
    Busy,
}

impl From<RejectReason> for Reason {
    fn from(r: RejectReason) -> Self {
        match r {
            RejectReason::Declined => Reason::Declined,
            RejectReason::Busy => Reason::Busy,
        }
    }
}

/// One member of a call as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Who.
    pub user: UserId,
    /// Where they stand.
    pub state: MemberState,
    /// Why they stand there: the reason of their last change, as in
    /// `member_state` (declined or busy, timed out or never reached, …).
    /// Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Who invited them (`None` for the call's inviter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<UserId>,
    /// What they attached to their last answer (or the invitation).
    #[serde(default, skip_serializing_if = "ExtendedData::is_empty")]
    pub extended_data: ExtendedData,
}

/// A call as it stands: sent with an invitation, after a join and on resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    /// The call (and media room).
    pub call_id: CallId,
    /// Video or voice.
    pub kind: CallKind,
    /// Who started it.
    pub inviter: UserId,
    /// What the inviter attached to the invitation.
    #[serde(default, skip_serializing_if = "ExtendedData::is_empty")]
    pub extended_data: ExtendedData,
    /// Ring timeout of this call's invitations, in seconds.
    pub timeout_secs: u32,
    /// Every member so far, in the order they were invited.
    pub members: Vec<MemberInfo>,
}

impl CallInfo {
    /// The member entry of `user`, if they are part of this call.
    pub fn member(&self, user: &UserId) -> Option<&MemberInfo> {
        self.members.iter().find(|m| &m.user == user)
    }

    /// Whether `user` may end this call for everyone (see
    /// [`MemberState::may_end_for_all`]).
    pub fn may_end_for_all(&self, user: &UserId) -> bool {
        self.member(user).is_some_and(|m| m.state.may_end_for_all())
    }
}

/// A member's state change, as broadcast to everyone still involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    /// The call.
    pub call_id: CallId,
    /// Whose state changed.
    pub user: UserId,
    /// The new state.
    pub state: MemberState,
    /// Why.
    pub reason: Reason,
    /// The device that acted (accept, join), when one did. A user's other
    /// devices compare it with their own: "answered elsewhere".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// Who caused the change, when it was not `user` (e.g. the canceller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<UserId>,
    /// What `user` attached to the action.
    #[serde(default, skip_serializing_if = "ExtendedData::is_empty")]
    pub extended_data: ExtendedData,
}
