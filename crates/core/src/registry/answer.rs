//! Answering and being in a call: `accept`, `reject`, `join`, `call_status`
//! and `signal`.

use std::time::Instant;

use beckon_protocol::{
    CallId, DeviceId, Event, ExtendedData, MemberState, Reason, RejectReason, Reply, Signal, UserId,
};

use super::{Asker, Registry, RegistryError, event};

impl Registry {
    /// `accept`: the asker answers yes on this device.
    pub(super) fn accept(
        &mut self,
        now: Instant,
        asker: &Asker,
        call_id: &CallId,
        extended_data: ExtendedData,
    ) -> Result<(), RegistryError> {
        let Asker { user, device, .. } = *asker;
        let call = self.live_call(call_id)?;
        let member = call
            .member(user)
            .ok_or_else(|| RegistryError::not_a_member(user, "was not invited to this call"))?;
        if member.state == MemberState::Accepted && member.device.as_ref() == Some(device) {
            // A repeated accept from the same device: answer it again.
            let info = call.info();
            self.reply(asker, Reply::Call { call: info });
            return Ok(());
        }
        if !member.state.is_pending() {
            return Err(RegistryError::AlreadyAnswered(member.state));
        }
        self.enter_and_answer(now, asker, call_id, Reason::Answered, extended_data);
        Ok(())
    }

    /// `reject`: the asker answers no.
    pub(super) fn reject(
        &mut self,
        now: Instant,
        asker: &Asker,
        call_id: &CallId,
        reason: RejectReason,
        extended_data: ExtendedData,
    ) -> Result<(), RegistryError> {
        let user = asker.user;
        let call = self.live_call(call_id)?;
        let member = call
            .member(user)
            .ok_or_else(|| RegistryError::not_a_member(user, "was not invited to this call"))?;
        if !member.state.is_pending() {
            return Err(RegistryError::AlreadyAnswered(member.state));
        }
        self.set_state(
            call_id,
            user,
            MemberState::Rejected,
            reason.into(),
            None,
            Some(extended_data),
        );
        self.reply(asker, Reply::Done);
        self.broadcast_change(call_id, user, None);
        self.end_if_not_live(now, call_id, reason.into(), Some(user));
        Ok(())
    }

    /// `join`: comes back into a call, or moves it to this device.
    pub(super) fn join(
        &mut self,
        now: Instant,
        asker: &Asker,
        call_id: &CallId,
    ) -> Result<(), RegistryError> {
        let Asker { user, device, .. } = *asker;
        let call = self.live_call(call_id)?;
        let member = call
            .member(user)
            .ok_or_else(|| RegistryError::not_a_member(user, "is not a member of this call"))?;
        match member.state {
            state if state.is_pending() => {
                return self.accept(now, asker, call_id, ExtendedData::default());
            }
            MemberState::Accepted if member.device.as_ref() == Some(device) => {
                let info = call.info();
                self.reply(asker, Reply::Call { call: info });
                return Ok(());
            }
            MemberState::Accepted | MemberState::Quit => {}
            _ => {
                return Err(RegistryError::not_a_member(
                    user,
                    "did not take part in this call",
                ));
            }
        }
        if let Some(other) = self.user_call.get(user).filter(|c| *c != call_id) {
            return Err(RegistryError::Busy(Some(other.clone())));
        }
        self.enter_and_answer(now, asker, call_id, Reason::Joined, ExtendedData::default());
        Ok(())
    }

    /// Puts `user` in the call, answers request `id` with the call, and
    /// tells everyone involved.
    pub(super) fn enter_and_answer(
        &mut self,
        now: Instant,
        asker: &Asker,
        call_id: &CallId,
        reason: Reason,
        extended_data: ExtendedData,
    ) {
        self.enter_call(
            now,
            call_id,
            asker.user,
            asker.device,
            reason,
            extended_data,
        );
        let info = self.calls[call_id].info();
        self.reply(asker, Reply::Call { call: info });
        self.broadcast_change(call_id, asker.user, None);
    }

    /// Puts `user` in the call on `device` (accept, join, glare).
    pub(super) fn enter_call(
        &mut self,
        now: Instant,
        call_id: &CallId,
        user: &UserId,
        device: &DeviceId,
        reason: Reason,
        extended_data: ExtendedData,
    ) {
        self.set_state(
            call_id,
            user,
            MemberState::Accepted,
            reason,
            Some(device.clone()),
            Some(extended_data),
        );
        if let Some(call) = self.calls.get_mut(call_id)
            && call.connected_at.is_none()
            && call.accepted_count() >= 2
        {
            call.connected_at = Some(now);
        }
    }

    /// `call_status`: how the call stands for this device; changes nothing.
    pub(super) fn status(&mut self, asker: &Asker, call_id: &CallId) -> Result<(), RegistryError> {
        let Asker { user, device, .. } = *asker;
        let call = self.live_call(call_id)?;
        let m = call
            .member(user)
            .ok_or_else(|| RegistryError::not_a_member(user, "is not a member of this call"))?;
        let here = m.state.is_pending()
            || (m.state == MemberState::Accepted && m.device.as_ref() == Some(device));
        if !here {
            return Err(RegistryError::not_a_member(
                user,
                "has no part in this call on this device",
            ));
        }
        let info = call.info();
        self.reply(asker, Reply::Call { call: info });
        Ok(())
    }

    /// `signal`: relays media signaling to another member in the call.
    pub(super) fn signal(
        &mut self,
        asker: &Asker,
        call_id: CallId,
        to: UserId,
        signal: Signal,
    ) -> Result<(), RegistryError> {
        self.accepted_on(&call_id, asker.user, asker.device)?;
        let call = self.live_call(&call_id)?;
        let target = call
            .member(&to)
            .filter(|m| m.state == MemberState::Accepted)
            .and_then(|m| m.device.clone())
            .ok_or_else(|| RegistryError::not_a_member(&to, "is not in this call"))?;
        self.reply(asker, Reply::Done);
        self.send(
            &to,
            &target,
            event(Event::Signal {
                call_id,
                from: asker.user.clone(),
                signal,
            }),
        );
        Ok(())
    }
}
