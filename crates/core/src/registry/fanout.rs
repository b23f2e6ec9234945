//! Member states changing, and who hears of it: the devices each member
//! is reached on, member-state events, replies.

use beckon_protocol::{
    CallId, DeviceId, Event, ExtendedData, MemberChange, MemberState, Reason, Reply, ServerMessage,
    UserId, UserResult,
};

use super::call::Member;
use super::input::Output;
use super::{Asker, Registry, event};

impl Registry {
    pub(super) fn set_state(
        &mut self,
        call_id: &CallId,
        user: &UserId,
        state: MemberState,
        reason: Reason,
        device: Option<DeviceId>,
        extended_data: Option<ExtendedData>,
    ) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(m) = call.member_mut(user) else {
            return;
        };
        m.state = state;
        m.reason = reason;
        if let Some(data) = extended_data {
            m.extended_data = data;
        }
        if state == MemberState::Accepted {
            m.ever_accepted = true;
            m.device = device;
            m.deadline = None;
        } else if !state.is_pending() {
            m.device = None;
            m.deadline = None;
        }
        if state.is_involved() {
            self.user_call.insert(user.clone(), call_id.clone());
        } else if self.user_call.get(user) == Some(call_id) {
            self.user_call.remove(user);
        }
    }

    /// Where a member hears about the call: the device it is in the call on,
    /// or every online device while it rings (or once it has left).
    pub(super) fn member_devices(&self, m: &Member) -> Vec<DeviceId> {
        match (&m.state, &m.device) {
            (MemberState::Accepted, Some(d)) => {
                if self.devices.get(&m.user).is_some_and(|ds| ds.contains(d)) {
                    vec![d.clone()]
                } else {
                    Vec::new()
                }
            }
            _ => self.devices.get(&m.user).cloned().unwrap_or_default(),
        }
    }

    /// Tells everyone still involved, and every device of `user`, that
    /// `user`'s state changed.
    pub(super) fn broadcast_change(&mut self, call_id: &CallId, user: &UserId, by: Option<UserId>) {
        self.broadcast_change_except(call_id, user, by, &[]);
    }

    /// As `broadcast_change`, leaving out `skip` (new invitees that learnt
    /// the state from their snapshot).
    pub(super) fn broadcast_change_except(
        &mut self,
        call_id: &CallId,
        user: &UserId,
        by: Option<UserId>,
        skip: &[UserId],
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let Some(changed) = call.member(user) else {
            return;
        };
        let change = MemberChange {
            call_id: call_id.clone(),
            user: user.clone(),
            state: changed.state,
            reason: changed.reason,
            device: changed.device.clone(),
            by,
            extended_data: changed.extended_data.clone(),
        };
        if !changed.state.is_involved() && !skip.contains(user) {
            self.touched.push(user.clone());
        }
        let mut targets: Vec<(UserId, DeviceId)> = Vec::new();
        for m in call.members.iter().filter(|m| !skip.contains(&m.user)) {
            let devices = if &m.user == user {
                self.devices.get(user).cloned().unwrap_or_default()
            } else if m.state.is_involved() {
                self.member_devices(m)
            } else {
                continue;
            };
            targets.extend(devices.into_iter().map(|d| (m.user.clone(), d)));
        }
        for (u, d) in targets {
            self.send(&u, &d, event(Event::MemberState(change.clone())));
        }
    }

    /// Answers an `invite`, `add` or `cancel` with the call as it now
    /// stands and one result per user named.
    pub(super) fn reply_invitation(
        &mut self,
        asker: &Asker,
        call_id: &CallId,
        results: Vec<UserResult>,
        merged: bool,
    ) {
        let call = self.calls[call_id].info();
        self.reply(
            asker,
            Reply::Invitation {
                call,
                results,
                merged,
            },
        );
    }

    /// Answers the asker's request.
    pub(super) fn reply(&mut self, asker: &Asker, reply: Reply) {
        self.send(
            asker.user,
            asker.device,
            ServerMessage::Reply {
                id: asker.id,
                reply,
            },
        );
    }

    pub(super) fn send(&mut self, user: &UserId, device: &DeviceId, message: ServerMessage) {
        self.out.push_back(Output::Send {
            user: user.clone(),
            device: device.clone(),
            message,
        });
    }
}
