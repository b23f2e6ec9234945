//! Ringing people: `invite` (with glare and busy), `add`, and `cancel`.

use std::time::{Duration, Instant};

use beckon_protocol::{
    CallId, ErrorCode, Event, ExtendedData, MemberState, Reason, UserId, UserResult, limits,
};

use super::call::{Call, Member};
use super::input::InviteRequest;
use super::timers::Timer;
use super::{Asker, Registry, RegistryError, event, millis};

impl Registry {
    /// `invite`: starts a call and rings the users named, or, from a user
    /// already involved in one, answers glare or refuses as busy.
    pub(super) fn invite(
        &mut self,
        now: Instant,
        asker: &Asker,
        request: InviteRequest,
    ) -> Result<(), RegistryError> {
        let InviteRequest {
            call_id,
            users,
            unknown,
            kind,
            timeout_secs,
            extended_data,
        } = request;
        let timeout_secs = timeout_secs.unwrap_or(limits::DEFAULT_RING_TIMEOUT_SECS);
        if !(limits::MIN_RING_TIMEOUT_SECS..=limits::MAX_RING_TIMEOUT_SECS).contains(&timeout_secs)
        {
            return Err(RegistryError::Invalid(format!(
                "timeout_secs must be {} to {}",
                limits::MIN_RING_TIMEOUT_SECS,
                limits::MAX_RING_TIMEOUT_SECS
            )));
        }
        RegistryError::check_user_count(users.len() + unknown.len())?;
        let Asker { user, device, .. } = *asker;
        if let Some(existing) = self.user_call.get(user).cloned() {
            return self.invite_into_existing(now, asker, &existing, users, unknown);
        }
        if self.calls.contains_key(&call_id) || self.ended.contains_key(&call_id) {
            return Err(RegistryError::IdCollision);
        }
        let has_known = users.iter().any(|u| u != user);
        if !has_known {
            return Err(if unknown.is_empty() {
                RegistryError::Invalid("name at least one other user to call".into())
            } else {
                RegistryError::NobodyKnown
            });
        }
        let call = Call {
            id: call_id.clone(),
            kind,
            inviter: user.clone(),
            extended_data,
            timeout_secs,
            members: vec![Member {
                user: user.clone(),
                state: MemberState::Accepted,
                reason: Reason::Invited,
                invited_by: None,
                extended_data: ExtendedData::default(),
                device: Some(device.clone()),
                deadline: None,
                epoch: 0,
                ever_accepted: true,
            }],
            created_at: now,
            connected_at: None,
        };
        self.calls.insert(call_id.clone(), call);
        self.user_call.insert(user.clone(), call_id.clone());
        let (results, busy) = self.add_invitees(now, &call_id, user, users, unknown, false);
        self.reply_invitation(asker, &call_id, results, false);
        self.announce_busy(&call_id, &busy);
        self.end_if_not_live(now, &call_id, Reason::Busy, None);
        Ok(())
    }

    /// An `invite` from a user who is already involved in a call: either
    /// glare (they are being rung by someone they now call) or busy.
    pub(super) fn invite_into_existing(
        &mut self,
        now: Instant,
        asker: &Asker,
        existing: &CallId,
        users: Vec<UserId>,
        unknown: Vec<UserId>,
    ) -> Result<(), RegistryError> {
        let Asker { user, device, .. } = *asker;
        let call = self.live_call(existing)?;
        let me = call.member(user).ok_or(RegistryError::Busy(None))?;
        let glare = me.state.is_pending()
            && me.invited_by.as_ref().is_some_and(|by| {
                users.contains(by)
                    && call
                        .member(by)
                        .is_some_and(|m| m.state == MemberState::Accepted)
            });
        if !glare {
            return Err(RegistryError::Busy(None));
        }
        // Both called each other at once: answer the ringing call instead of
        // refusing, and ring anyone else named into it.
        self.enter_call(
            now,
            existing,
            user,
            device,
            Reason::Answered,
            ExtendedData::default(),
        );
        self.broadcast_change(existing, user, None);
        let call = &self.calls[existing];
        let (in_call, others): (Vec<UserId>, Vec<UserId>) = users
            .into_iter()
            .partition(|u| call.member(u).is_some_and(|m| m.state.is_involved()));
        let mut results: Vec<UserResult> = in_call
            .into_iter()
            .map(|user| UserResult { user, error: None })
            .collect();
        let (more, busy) = self.add_invitees(now, existing, user, others, unknown, true);
        results.extend(more);
        self.reply_invitation(asker, existing, results, true);
        self.announce_busy(existing, &busy);
        Ok(())
    }

    /// `add`: rings more users into the call the asker is in.
    pub(super) fn add(
        &mut self,
        now: Instant,
        asker: &Asker,
        call_id: &CallId,
        users: Vec<UserId>,
        unknown: Vec<UserId>,
    ) -> Result<(), RegistryError> {
        RegistryError::check_user_count(users.len() + unknown.len())?;
        self.accepted_on(call_id, asker.user, asker.device)?;
        let (results, busy) = self.add_invitees(now, call_id, asker.user, users, unknown, true);
        self.reply_invitation(asker, call_id, results, false);
        self.announce_busy(call_id, &busy);
        self.end_if_not_live(now, call_id, Reason::Busy, None);
        Ok(())
    }

    /// Rings `users` (already known to exist) into a call on behalf of
    /// `by`, reporting one result per user named. With `announce`, members
    /// already involved hear of each new invitee (a new call's only member
    /// learns everything from the reply instead).
    pub(super) fn add_invitees(
        &mut self,
        now: Instant,
        call_id: &CallId,
        by: &UserId,
        users: Vec<UserId>,
        unknown: Vec<UserId>,
        announce: bool,
    ) -> (Vec<UserResult>, Vec<UserId>) {
        let mut results = Vec::new();
        let mut seen: Vec<UserId> = Vec::new();
        for u in unknown {
            if !seen.contains(&u) {
                seen.push(u.clone());
                results.push(UserResult {
                    user: u,
                    error: Some(ErrorCode::NotFound),
                });
            }
        }
        let timeout = Duration::from_secs(u64::from(self.calls[call_id].timeout_secs));
        let mut newly_busy = Vec::new();
        for u in users {
            if seen.contains(&u) {
                continue;
            }
            seen.push(u.clone());
            let call = &self.calls[call_id];
            let error = if &u == by {
                Some(ErrorCode::Invalid)
            } else if call.member(&u).is_some_and(|m| m.state.is_involved()) {
                Some(ErrorCode::AlreadyAnswered)
            } else if call.involved_count() >= self.config.max_members {
                Some(ErrorCode::LimitExceeded)
            } else {
                None
            };
            if error.is_some() {
                results.push(UserResult { user: u, error });
                continue;
            }
            let busy = self.user_call.contains_key(&u);
            let online = self.is_online(&u);
            let call = self.calls.get_mut(call_id).expect("call exists");
            let epoch = call.member(&u).map_or(0, |m| m.epoch + 1);
            let (state, reason) = if busy {
                (MemberState::Rejected, Reason::Busy)
            } else if online {
                (MemberState::Received, Reason::Delivered)
            } else {
                (MemberState::Inviting, Reason::Invited)
            };
            let member = Member {
                user: u.clone(),
                state,
                reason,
                invited_by: Some(by.clone()),
                extended_data: ExtendedData::default(),
                device: None,
                deadline: (!busy).then_some(now + timeout),
                epoch,
                ever_accepted: call.member(&u).is_some_and(|m| m.ever_accepted),
            };
            match call.member_mut(&u) {
                Some(m) => *m = member,
                None => call.members.push(member),
            }
            results.push(UserResult {
                user: u.clone(),
                error: None,
            });
            if busy {
                newly_busy.push(u);
                continue;
            }
            self.user_call.insert(u.clone(), call_id.clone());
            self.arm(
                now + timeout,
                Timer::Ring {
                    call: call_id.clone(),
                    user: u.clone(),
                    epoch,
                },
            );
            if !online {
                self.arm(
                    now + self.config.not_received_after,
                    Timer::NotReceived {
                        call: call_id.clone(),
                        user: u.clone(),
                        epoch,
                    },
                );
            }
        }
        // Tell the new invitees (a snapshot), then everyone already involved
        // (a change each), then who turned out busy.
        let call = &self.calls[call_id];
        let info = call.info();
        let mut sends = Vec::new();
        let mut changes = Vec::new();
        for r in results.iter().filter(|r| r.error.is_none()) {
            let m = call.member(&r.user).expect("just added");
            if m.state.is_pending() {
                for d in self.devices.get(&m.user).into_iter().flatten() {
                    sends.push((
                        m.user.clone(),
                        d.clone(),
                        event(Event::CallInvited {
                            call: info.clone(),
                            by: by.clone(),
                            remaining_ms: millis(timeout),
                        }),
                    ));
                }
                changes.push(m.user.clone());
            }
        }
        for (u, d, msg) in sends {
            self.send(&u, &d, msg);
        }
        if announce {
            for u in &changes {
                self.broadcast_change_except(call_id, u, Some(by.clone()), &changes);
            }
        }
        (results, newly_busy)
    }

    /// Tells the others that these invitees were refused as busy; the busy
    /// users themselves are not disturbed. Sent after the reply, so the
    /// inviter knows the call before it hears about it.
    pub(super) fn announce_busy(&mut self, call_id: &CallId, busy: &[UserId]) {
        for u in busy {
            self.broadcast_change_except(call_id, u, None, std::slice::from_ref(u));
        }
    }

    /// `cancel`: takes back invitations the asker sent.
    pub(super) fn cancel(
        &mut self,
        now: Instant,
        asker: &Asker,
        call_id: &CallId,
        users: Option<Vec<UserId>>,
        extended_data: ExtendedData,
    ) -> Result<(), RegistryError> {
        let Asker { user, device, .. } = *asker;
        self.accepted_on(call_id, user, device)?;
        let call = &self.calls[call_id];
        let targets: Vec<UserId> = match users {
            Some(users) => {
                RegistryError::check_user_count(users.len())?;
                users
            }
            None => call
                .members
                .iter()
                .filter(|m| m.state.is_pending() && m.invited_by.as_ref() == Some(user))
                .map(|m| m.user.clone())
                .collect(),
        };
        let mut results = Vec::new();
        let mut cancelled = Vec::new();
        for target in targets {
            let call = &self.calls[call_id];
            let error = match call.member(&target) {
                None => Some(ErrorCode::NotFound),
                Some(m) if !m.state.is_pending() => Some(ErrorCode::AlreadyAnswered),
                Some(m) if m.invited_by.as_ref() != Some(user) => Some(ErrorCode::NotAllowed),
                Some(_) => None,
            };
            if error.is_none() && !cancelled.contains(&target) {
                self.set_state(
                    call_id,
                    &target,
                    MemberState::Cancelled,
                    Reason::Cancelled,
                    None,
                    Some(extended_data.clone()),
                );
                cancelled.push(target.clone());
            }
            results.push(UserResult {
                user: target,
                error,
            });
        }
        self.reply_invitation(asker, call_id, results, false);
        for target in &cancelled {
            self.broadcast_change(call_id, target, Some(user.clone()));
        }
        self.end_if_not_live(now, call_id, Reason::Cancelled, Some(user));
        Ok(())
    }
}
