//! One call and its members, as the registry keeps them.

use std::time::Instant;

use crate::outcome::{MemberEnd, outcome};
use beckon_protocol::{
    CallId, CallInfo, CallKind, DeviceId, ExtendedData, MemberInfo, MemberState, Outcome, Reason,
    UserId,
};

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) user: UserId,
    pub(crate) state: MemberState,
    pub(crate) reason: Reason,
    pub(crate) invited_by: Option<UserId>,
    pub(crate) extended_data: ExtendedData,
    /// The device the member is in the call on, while `Accepted`.
    pub(crate) device: Option<DeviceId>,
    /// When the ring times out, while pending.
    pub(crate) deadline: Option<Instant>,
    /// Bumped on every (re-)invitation, so stale timers are ignored.
    pub(crate) epoch: u32,
    pub(crate) ever_accepted: bool,
}

#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) id: CallId,
    pub(crate) kind: CallKind,
    pub(crate) inviter: UserId,
    pub(crate) extended_data: ExtendedData,
    pub(crate) timeout_secs: u32,
    pub(crate) members: Vec<Member>,
    pub(crate) created_at: Instant,
    /// When a second member first accepted.
    pub(crate) connected_at: Option<Instant>,
}

impl Call {
    pub(crate) fn member(&self, user: &UserId) -> Option<&Member> {
        self.members.iter().find(|m| &m.user == user)
    }

    pub(crate) fn member_mut(&mut self, user: &UserId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| &m.user == user)
    }

    pub(crate) fn accepted_count(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.state == MemberState::Accepted)
            .count()
    }

    pub(crate) fn involved_count(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.state.is_involved())
            .count()
    }

    /// DESIGN §2: live while two members are in, or one is in and someone is
    /// still ringing.
    pub(crate) fn is_live(&self) -> bool {
        let accepted = self.accepted_count();
        let pending = self.members.iter().any(|m| m.state.is_pending());
        accepted >= 2 || (accepted >= 1 && pending)
    }

    pub(crate) fn info(&self) -> CallInfo {
        CallInfo {
            call_id: self.id.clone(),
            kind: self.kind,
            inviter: self.inviter.clone(),
            extended_data: self.extended_data.clone(),
            timeout_secs: self.timeout_secs,
            members: self
                .members
                .iter()
                .map(|m| MemberInfo {
                    user: m.user.clone(),
                    state: m.state,
                    reason: Some(m.reason),
                    invited_by: m.invited_by.clone(),
                    extended_data: m.extended_data.clone(),
                })
                .collect(),
        }
    }

    /// How the call went for each member, for the history, given why it
    /// ended.
    pub(crate) fn outcomes(&self, end_reason: Reason) -> Vec<(UserId, Outcome)> {
        self.members
            .iter()
            .map(|m| {
                let end = MemberEnd {
                    inviter: m.user == self.inviter,
                    took_part: m.ever_accepted,
                    state: m.state,
                    reason: Some(m.reason),
                };
                let connected = self.connected_at.is_some();
                (m.user.clone(), outcome(end, connected, end_reason))
            })
            .collect()
    }
}

/// A finished call, for the history store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The call.
    pub call_id: CallId,
    /// Video or voice.
    pub kind: CallKind,
    /// Who started it.
    pub inviter: UserId,
    /// When the invitation went out.
    pub created_at: Instant,
    /// When a second member first accepted.
    pub connected_at: Option<Instant>,
    /// When it ended.
    pub ended_at: Instant,
    /// Why it ended.
    pub reason: Reason,
    /// Everyone who was part of it, with how it went for them.
    pub members: Vec<(UserId, Outcome)>,
}
