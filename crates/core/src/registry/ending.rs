//! Leaving and ending: `quit`, `end` for everyone, and a call that is no
//! longer live ending by itself, with its record for the history.

use std::time::Instant;

use beckon_protocol::{CallId, DeviceId, Event, ExtendedData, MemberState, Reason, Reply, UserId};

use super::call::CallRecord;
use super::input::Output;
use super::timers::Timer;
use super::{Asker, Registry, RegistryError, event};

impl Registry {
    /// `quit`: the asker leaves; the call goes on if it still can.
    pub(super) fn quit(
        &mut self,
        now: Instant,
        asker: &Asker,
        call_id: &CallId,
        extended_data: ExtendedData,
    ) -> Result<(), RegistryError> {
        let user = asker.user;
        self.accepted_on(call_id, user, asker.device)?;
        self.set_state(
            call_id,
            user,
            MemberState::Quit,
            Reason::Quit,
            None,
            Some(extended_data),
        );
        self.reply(asker, Reply::Done);
        self.broadcast_change(call_id, user, None);
        self.end_if_not_live(now, call_id, Reason::Quit, Some(user));
        Ok(())
    }

    /// `end`: ends the call for everyone; any member in it may
    /// ([`MemberState::may_end_for_all`]).
    pub(super) fn end(
        &mut self,
        now: Instant,
        asker: &Asker,
        call_id: &CallId,
        extended_data: ExtendedData,
    ) -> Result<(), RegistryError> {
        let user = asker.user;
        let state = self.live_call(call_id)?.member(user).map(|m| m.state);
        if !state.is_some_and(MemberState::may_end_for_all) {
            return Err(RegistryError::not_a_member(
                user,
                "may not end this call: only a member in it may",
            ));
        }
        self.accepted_on(call_id, user, asker.device)?;
        if let Some(m) = self.calls.get_mut(call_id).and_then(|c| c.member_mut(user)) {
            m.extended_data = extended_data;
        }
        self.reply(asker, Reply::Done);
        self.end_call(now, call_id, Reason::Ended, Some(user));
        Ok(())
    }

    pub(super) fn end_if_not_live(
        &mut self,
        now: Instant,
        call_id: &CallId,
        reason: Reason,
        by: Option<&UserId>,
    ) {
        if self.calls.get(call_id).is_some_and(|c| !c.is_live()) {
            self.end_call(now, call_id, reason, by);
        }
    }

    /// Ends a call: every member still involved becomes `ended`; they, `by`
    /// and whoever just left hear `call_ended`; the history gets a record.
    pub(super) fn end_call(
        &mut self,
        now: Instant,
        call_id: &CallId,
        reason: Reason,
        by: Option<&UserId>,
    ) {
        let Some(mut call) = self.calls.remove(call_id) else {
            return;
        };
        let mut told: Vec<(UserId, DeviceId)> = Vec::new();
        for m in call.members.iter_mut() {
            let involved = m.state.is_involved();
            if involved || Some(&m.user) == by || self.touched.contains(&m.user) {
                for d in self.member_devices(m) {
                    told.push((m.user.clone(), d));
                }
            }
            if involved {
                m.state = MemberState::Ended;
                m.deadline = None;
                m.device = None;
                if self.user_call.get(&m.user) == Some(call_id) {
                    self.user_call.remove(&m.user);
                }
            }
        }
        // What `end` attached goes out with the end; other endings carried
        // their data in the member change before.
        let extended_data = by
            .filter(|_| reason == Reason::Ended)
            .and_then(|u| call.member(u))
            .map(|m| m.extended_data.clone())
            .unwrap_or_default();
        let msg = event(Event::CallEnded {
            call_id: call_id.clone(),
            reason,
            by: by.cloned(),
            extended_data,
        });
        for (u, d) in told {
            self.send(&u, &d, msg.clone());
        }
        self.out.push_back(Output::CallFinished(CallRecord {
            call_id: call.id.clone(),
            kind: call.kind,
            inviter: call.inviter.clone(),
            created_at: call.created_at,
            connected_at: call.connected_at,
            ended_at: now,
            reason,
            members: call.outcomes(reason),
        }));
        self.ended.insert(call_id.clone(), ());
        self.arm(
            now + self.config.ended_retention,
            Timer::ForgetEnded {
                call: call_id.clone(),
            },
        );
    }
}
