//! The registry's timers: rings that time out, invitations not delivered,
//! grace periods of dropped devices, ended calls forgotten.

use std::cmp::Reverse;
use std::time::Instant;

use beckon_protocol::{CallId, DeviceId, MemberState, Reason, UserId};

use super::Registry;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Ring {
        call: CallId,
        user: UserId,
        epoch: u32,
    },
    NotReceived {
        call: CallId,
        user: UserId,
        epoch: u32,
    },
    Grace {
        user: UserId,
        device: DeviceId,
        epoch: u64,
    },
    ForgetEnded {
        call: CallId,
    },
}

impl Registry {
    pub(super) fn arm(&mut self, at: Instant, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    pub(super) fn fire(&mut self, at: Instant, timer: Timer) {
        match timer {
            Timer::Ring { call, user, epoch } => {
                if !self.pending_at_epoch(&call, &user, epoch) {
                    return;
                }
                // An invitation that never reached a device timed out
                // because nobody was there to hear it: say so.
                let reached = self.calls[&call].member(&user).is_some_and(|m| {
                    !matches!(m.state, MemberState::Inviting | MemberState::NotYetReceived)
                });
                let reason = if reached {
                    Reason::Timeout
                } else {
                    Reason::Offline
                };
                self.set_state(&call, &user, MemberState::Timeout, reason, None, None);
                self.broadcast_change(&call, &user, None);
                self.end_if_not_live(at, &call, Reason::Timeout, None);
            }
            Timer::NotReceived { call, user, epoch } => {
                let still_inviting = self.pending_at_epoch(&call, &user, epoch)
                    && self.calls[&call]
                        .member(&user)
                        .is_some_and(|m| m.state == MemberState::Inviting);
                if still_inviting {
                    self.set_state(
                        &call,
                        &user,
                        MemberState::NotYetReceived,
                        Reason::Offline,
                        None,
                        None,
                    );
                    self.broadcast_change(&call, &user, None);
                }
            }
            Timer::Grace {
                user,
                device,
                epoch,
            } => {
                if self.dropped.get(&(user.clone(), device.clone())) == Some(&epoch) {
                    self.dropped.remove(&(user.clone(), device.clone()));
                    self.device_gone(at, &user, &device);
                }
            }
            Timer::ForgetEnded { call } => {
                self.ended.remove(&call);
            }
        }
    }

    pub(super) fn pending_at_epoch(&self, call_id: &CallId, user: &UserId, epoch: u32) -> bool {
        self.calls
            .get(call_id)
            .and_then(|c| c.member(user))
            .is_some_and(|m| m.epoch == epoch && m.state.is_pending())
    }
}
