//! Devices coming and going: a device online gets what it missed, a
//! dropped one has a grace period, one gone for good leaves its call.

use std::time::{Duration, Instant};

use beckon_protocol::{DeviceId, Event, MemberState, Reason, UserId};

use super::timers::Timer;
use super::{Registry, event, millis};

impl Registry {
    pub(super) fn online(&mut self, now: Instant, user: UserId, device: DeviceId) {
        self.dropped.remove(&(user.clone(), device.clone()));
        let devices = self.devices.entry(user.clone()).or_default();
        if !devices.contains(&device) {
            devices.push(device.clone());
        }
        let Some(call_id) = self.user_call.get(&user).cloned() else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let inviter = call.inviter.clone();
        let Some(member) = call.member_mut(&user) else {
            return;
        };
        match member.state {
            MemberState::Accepted if member.device.as_ref() == Some(&device) => {
                let info = call.info();
                self.send(&user, &device, event(Event::CallState { call: info }));
            }
            state if state.is_pending() => {
                let delivered_now = state != MemberState::Received;
                let remaining = member
                    .deadline
                    .map_or(Duration::ZERO, |d| d.saturating_duration_since(now));
                let by = member.invited_by.clone().unwrap_or(inviter);
                if delivered_now {
                    member.state = MemberState::Received;
                    member.reason = Reason::Delivered;
                }
                let info = call.info();
                self.send(
                    &user,
                    &device,
                    event(Event::CallInvited {
                        call: info,
                        by,
                        remaining_ms: millis(remaining),
                    }),
                );
                if delivered_now {
                    self.broadcast_change(&call_id, &user, None);
                }
            }
            _ => {}
        }
    }

    pub(super) fn offline(&mut self, now: Instant, user: UserId, device: DeviceId) {
        self.remove_device(&user, &device);
        self.grace_epoch += 1;
        let epoch = self.grace_epoch;
        self.dropped.insert((user.clone(), device.clone()), epoch);
        self.arm(
            now + self.config.disconnect_grace,
            Timer::Grace {
                user,
                device,
                epoch,
            },
        );
    }

    pub(super) fn remove_device(&mut self, user: &UserId, device: &DeviceId) {
        if let Some(devices) = self.devices.get_mut(user) {
            devices.retain(|d| d != device);
            if devices.is_empty() {
                self.devices.remove(user);
            }
        }
    }

    /// The device is gone for good: leave or cancel what it was in.
    pub(super) fn device_gone(&mut self, now: Instant, user: &UserId, device: &DeviceId) {
        let Some(call_id) = self.user_call.get(user).cloned() else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let Some(member) = call.member(user) else {
            return;
        };
        if member.state != MemberState::Accepted || member.device.as_ref() != Some(device) {
            return;
        }
        let nobody_answered = &call.inviter == user
            && !call
                .members
                .iter()
                .any(|m| &m.user != user && m.ever_accepted);
        if nobody_answered {
            let pending: Vec<UserId> = call
                .members
                .iter()
                .filter(|m| m.state.is_pending())
                .map(|m| m.user.clone())
                .collect();
            for invitee in pending {
                self.set_state(
                    &call_id,
                    &invitee,
                    MemberState::Cancelled,
                    Reason::Disconnected,
                    None,
                    None,
                );
                self.broadcast_change(&call_id, &invitee, Some(user.clone()));
            }
            self.end_if_not_live(now, &call_id, Reason::Disconnected, Some(user));
        } else {
            self.set_state(
                &call_id,
                user,
                MemberState::Quit,
                Reason::Disconnected,
                None,
                None,
            );
            self.broadcast_change(&call_id, user, None);
            self.end_if_not_live(now, &call_id, Reason::Disconnected, Some(user));
        }
    }
}
