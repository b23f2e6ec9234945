//! The server's call registry: every call, member state, ending rule, busy
//! rule and timer of DESIGN §2, with time passed in.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use beckon_core::registry::{Input, Output, Registry, RegistryConfig, CallRequest};
//! use beckon_protocol::{CallId, CallKind, DeviceId, UserId};
//!
//! let mut reg = Registry::new(RegistryConfig::default());
//! let t0 = Instant::now();
//! let (alice, bob) = (UserId::try_from("alice").unwrap(), UserId::try_from("bob").unwrap());
//! let dev = DeviceId::try_from("d1").unwrap();
//! reg.handle(t0, Input::Online { user: alice.clone(), device: dev.clone() });
//! reg.handle(t0, Input::Online { user: bob.clone(), device: dev.clone() });
//! reg.handle(t0, Input::Request {
//!     user: alice.clone(),
//!     device: dev.clone(),
//!     id: 1,
//!     request: CallRequest::Invite {
//!         call_id: CallId::try_from("0123456789abcdef0123456789abcdef").unwrap(),
//!         users: vec![bob.clone()],
//!         unknown: vec![],
//!         kind: CallKind::Video,
//!         timeout_secs: None,
//!         extended_data: Default::default(),
//!     },
//! });
//! while let Some(out) = reg.poll_output() {
//!     match out {
//!         Output::Send { user, device, message } => { /* write to that connection */ }
//!         Output::CallFinished(record) => { /* store in the history */ }
//!     }
//! }
//! // Arm a timer for `reg.poll_timeout()` and call `reg.handle_timeout(at)`.
//! assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(60)));
//! ```

mod call;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use beckon_protocol::{
    CallId, CallKind, DeviceId, ErrorCode, Event, ExtendedData, MemberChange, MemberState, Reason,
    RejectReason, Reply, RequestId, ServerMessage, Signal, UserId, UserResult, limits,
};

pub use call::CallRecord;
use call::{Call, Member};

/// Tunables of the registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Most members (accepted or ringing) in one call, the inviter included.
    pub max_members: usize,
    /// An invitee undelivered this long is reported `not_yet_received`.
    pub not_received_after: Duration,
    /// How long a dropped device may take to come back before it leaves its
    /// call (or cancels the invitation it sent).
    pub disconnect_grace: Duration,
    /// How long an ended call's id is remembered, so late messages about it
    /// get `call_ended` rather than `not_found`.
    pub ended_retention: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_members: limits::DEFAULT_MAX_CALL_MEMBERS,
            not_received_after: Duration::from_secs(5),
            disconnect_grace: Duration::from_secs(20),
            ended_retention: Duration::from_secs(600),
        }
    }
}

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

/// The call requests of the protocol, with what the server adds: a fresh
/// call id and which named users have no account.
#[derive(Debug, Clone)]
pub enum CallRequest {
    /// Start a call.
    Invite {
        /// A fresh, unguessable id for the call, should it be created.
        call_id: CallId,
        /// Invitees that have accounts.
        users: Vec<UserId>,
        /// Named users without an account; reported `not_found` each.
        unknown: Vec<UserId>,
        /// Video or voice.
        kind: CallKind,
        /// Ring timeout, 1–600 s (default 60).
        timeout_secs: Option<u32>,
        /// For the invitees.
        extended_data: ExtendedData,
    },
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

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
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

type Failure = (ErrorCode, String);

/// The server's view of every live call. See the module docs for the loop.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    calls: HashMap<CallId, Call>,
    /// Calls that ended recently, for `call_ended` answers to late messages.
    ended: HashMap<CallId, ()>,
    /// The one call each user is involved in (ringing, calling, or in).
    user_call: HashMap<UserId, CallId>,
    /// Online devices per user.
    devices: HashMap<UserId, Vec<DeviceId>>,
    /// Devices that dropped and may still come back: their grace epoch.
    dropped: HashMap<(UserId, DeviceId), u64>,
    grace_epoch: u64,
    /// Users who left a call during the current input; they hear its end.
    touched: Vec<UserId>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    out: VecDeque<Output>,
}

impl Registry {
    /// An empty registry.
    pub fn new(config: RegistryConfig) -> Self {
        Self {
            config,
            calls: HashMap::new(),
            ended: HashMap::new(),
            user_call: HashMap::new(),
            devices: HashMap::new(),
            dropped: HashMap::new(),
            grace_epoch: 0,
            touched: Vec::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Live calls right now.
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Whether `user` is calling, being called or in a call.
    pub fn is_busy(&self, user: &UserId) -> bool {
        self.user_call.contains_key(user)
    }

    /// The call `user` is involved in, if any.
    pub fn call_of(&self, user: &UserId) -> Option<&CallId> {
        self.user_call.get(user)
    }

    /// Whether `user` has a device online.
    pub fn is_online(&self, user: &UserId) -> bool {
        self.devices.get(user).is_some_and(|d| !d.is_empty())
    }

    /// A snapshot of a live call.
    pub fn call_info(&self, call_id: &CallId) -> Option<beckon_protocol::CallInfo> {
        self.calls.get(call_id).map(Call::info)
    }

    /// The next output, if any. Drain after every `handle*` call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, timer))) = self.timers.pop() else {
                break;
            };
            self.touched.clear();
            self.fire(at, timer);
        }
    }

    /// Feeds one input at time `now`. Timers due by `now` fire first, so a
    /// late answer loses against its ring timeout.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.handle_timeout(now);
        self.touched.clear();
        match input {
            Input::Online { user, device } => self.online(now, user, device),
            Input::Offline { user, device } => self.offline(now, user, device),
            Input::SignedOut { user, device } => {
                self.remove_device(&user, &device);
                self.dropped.remove(&(user.clone(), device.clone()));
                self.device_gone(now, &user, &device);
            }
            Input::Request {
                user,
                device,
                id,
                request,
            } => {
                let result = self.request(now, &user, &device, id, request);
                if let Err((code, message)) = result {
                    self.send(
                        &user,
                        &device,
                        ServerMessage::error(Some(id), code, message),
                    );
                }
            }
        }
    }

    // --- devices -----------------------------------------------------------

    fn online(&mut self, now: Instant, user: UserId, device: DeviceId) {
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

    fn offline(&mut self, now: Instant, user: UserId, device: DeviceId) {
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

    fn remove_device(&mut self, user: &UserId, device: &DeviceId) {
        if let Some(devices) = self.devices.get_mut(user) {
            devices.retain(|d| d != device);
            if devices.is_empty() {
                self.devices.remove(user);
            }
        }
    }

    /// The device is gone for good: leave or cancel what it was in.
    fn device_gone(&mut self, now: Instant, user: &UserId, device: &DeviceId) {
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

    // --- requests ----------------------------------------------------------

    fn request(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        id: RequestId,
        request: CallRequest,
    ) -> Result<(), Failure> {
        match request {
            CallRequest::Invite {
                call_id,
                users,
                unknown,
                kind,
                timeout_secs,
                extended_data,
            } => {
                let timeout_secs = timeout_secs.unwrap_or(limits::DEFAULT_RING_TIMEOUT_SECS);
                if !(limits::MIN_RING_TIMEOUT_SECS..=limits::MAX_RING_TIMEOUT_SECS)
                    .contains(&timeout_secs)
                {
                    return Err((
                        ErrorCode::Invalid,
                        format!(
                            "timeout_secs must be {} to {}",
                            limits::MIN_RING_TIMEOUT_SECS,
                            limits::MAX_RING_TIMEOUT_SECS
                        ),
                    ));
                }
                check_user_count(users.len() + unknown.len())?;
                if let Some(existing) = self.user_call.get(user).cloned() {
                    return self
                        .invite_into_existing(now, user, device, id, &existing, users, unknown);
                }
                self.invite(
                    now,
                    user,
                    device,
                    id,
                    call_id,
                    users,
                    unknown,
                    kind,
                    timeout_secs,
                    extended_data,
                )
            }
            CallRequest::Add {
                call_id,
                users,
                unknown,
            } => {
                check_user_count(users.len() + unknown.len())?;
                self.accepted_on(&call_id, user, device)?;
                let (results, busy) = self.add_invitees(now, &call_id, user, users, unknown, true);
                self.reply_invitation(user, device, id, &call_id, results, false);
                self.announce_busy(&call_id, &busy);
                self.end_if_not_live(now, &call_id, Reason::Busy, None);
                Ok(())
            }
            CallRequest::Cancel {
                call_id,
                users,
                extended_data,
            } => self.cancel(now, user, device, id, &call_id, users, extended_data),
            CallRequest::Accept {
                call_id,
                extended_data,
            } => self.accept(now, user, device, id, &call_id, extended_data),
            CallRequest::Reject {
                call_id,
                reason,
                extended_data,
            } => {
                let call = self.live_call(&call_id)?;
                let member = call
                    .member(user)
                    .ok_or_else(|| not_a_member(user, "was not invited to this call"))?;
                if !member.state.is_pending() {
                    return Err(already_answered(member.state));
                }
                self.set_state(
                    &call_id,
                    user,
                    MemberState::Rejected,
                    reason.into(),
                    None,
                    Some(extended_data),
                );
                self.reply(user, device, id, Reply::Done);
                self.broadcast_change(&call_id, user, None);
                self.end_if_not_live(now, &call_id, reason.into(), Some(user));
                Ok(())
            }
            CallRequest::Quit {
                call_id,
                extended_data,
            } => {
                self.accepted_on(&call_id, user, device)?;
                self.set_state(
                    &call_id,
                    user,
                    MemberState::Quit,
                    Reason::Quit,
                    None,
                    Some(extended_data),
                );
                self.reply(user, device, id, Reply::Done);
                self.broadcast_change(&call_id, user, None);
                self.end_if_not_live(now, &call_id, Reason::Quit, Some(user));
                Ok(())
            }
            CallRequest::End {
                call_id,
                extended_data,
            } => {
                let state = self.live_call(&call_id)?.member(user).map(|m| m.state);
                if !state.is_some_and(MemberState::may_end_for_all) {
                    return Err(not_a_member(
                        user,
                        "may not end this call: only a member in it may",
                    ));
                }
                self.accepted_on(&call_id, user, device)?;
                if let Some(m) = self
                    .calls
                    .get_mut(&call_id)
                    .and_then(|c| c.member_mut(user))
                {
                    m.extended_data = extended_data;
                }
                self.reply(user, device, id, Reply::Done);
                self.end_call(now, &call_id, Reason::Ended, Some(user));
                Ok(())
            }
            CallRequest::Join { call_id } => self.join(now, user, device, id, &call_id),
            CallRequest::Status { call_id } => {
                let call = self.live_call(&call_id)?;
                let m = call
                    .member(user)
                    .ok_or_else(|| not_a_member(user, "is not a member of this call"))?;
                let here = m.state.is_pending()
                    || (m.state == MemberState::Accepted && m.device.as_ref() == Some(device));
                if !here {
                    return Err(not_a_member(
                        user,
                        "has no part in this call on this device",
                    ));
                }
                let info = call.info();
                self.reply(user, device, id, Reply::Call { call: info });
                Ok(())
            }
            CallRequest::Signal {
                call_id,
                to,
                signal,
            } => {
                self.accepted_on(&call_id, user, device)?;
                let call = self.live_call(&call_id)?;
                let target = call
                    .member(&to)
                    .filter(|m| m.state == MemberState::Accepted)
                    .and_then(|m| m.device.clone())
                    .ok_or_else(|| (ErrorCode::NotAMember, format!("{to} is not in this call")))?;
                self.reply(user, device, id, Reply::Done);
                self.send(
                    &to,
                    &target,
                    event(Event::Signal {
                        call_id,
                        from: user.clone(),
                        signal,
                    }),
                );
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn invite(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        id: RequestId,
        call_id: CallId,
        users: Vec<UserId>,
        unknown: Vec<UserId>,
        kind: CallKind,
        timeout_secs: u32,
        extended_data: ExtendedData,
    ) -> Result<(), Failure> {
        if self.calls.contains_key(&call_id) || self.ended.contains_key(&call_id) {
            return Err((ErrorCode::Internal, "call id collision; try again".into()));
        }
        let has_known = users.iter().any(|u| u != user);
        if !has_known {
            let (code, what) = if unknown.is_empty() {
                (ErrorCode::Invalid, "name at least one other user to call")
            } else {
                (
                    ErrorCode::NotFound,
                    "none of the users named has an account",
                )
            };
            return Err((code, what.into()));
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
        self.reply_invitation(user, device, id, &call_id, results, false);
        self.announce_busy(&call_id, &busy);
        self.end_if_not_live(now, &call_id, Reason::Busy, None);
        Ok(())
    }

    /// An `invite` from a user who is already involved in a call: either
    /// glare (they are being rung by someone they now call) or busy.
    #[allow(clippy::too_many_arguments)]
    fn invite_into_existing(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        id: RequestId,
        existing: &CallId,
        users: Vec<UserId>,
        unknown: Vec<UserId>,
    ) -> Result<(), Failure> {
        let call = self.live_call(existing)?;
        let me = call.member(user).ok_or_else(busy_self)?;
        let glare = me.state.is_pending()
            && me.invited_by.as_ref().is_some_and(|by| {
                users.contains(by)
                    && call
                        .member(by)
                        .is_some_and(|m| m.state == MemberState::Accepted)
            });
        if !glare {
            return Err(busy_self());
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
        self.reply_invitation(user, device, id, existing, results, true);
        self.announce_busy(existing, &busy);
        Ok(())
    }

    /// Rings `users` (already known to exist) into a call on behalf of
    /// `by`, reporting one result per user named. With `announce`, members
    /// already involved hear of each new invitee (a new call's only member
    /// learns everything from the reply instead).
    fn add_invitees(
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
    fn announce_busy(&mut self, call_id: &CallId, busy: &[UserId]) {
        for u in busy {
            self.broadcast_change_except(call_id, u, None, std::slice::from_ref(u));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cancel(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        id: RequestId,
        call_id: &CallId,
        users: Option<Vec<UserId>>,
        extended_data: ExtendedData,
    ) -> Result<(), Failure> {
        self.accepted_on(call_id, user, device)?;
        let call = &self.calls[call_id];
        let targets: Vec<UserId> = match users {
            Some(users) => {
                check_user_count(users.len())?;
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
        self.reply_invitation(user, device, id, call_id, results, false);
        for target in &cancelled {
            self.broadcast_change(call_id, target, Some(user.clone()));
        }
        self.end_if_not_live(now, call_id, Reason::Cancelled, Some(user));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        id: RequestId,
        call_id: &CallId,
        extended_data: ExtendedData,
    ) -> Result<(), Failure> {
        let call = self.live_call(call_id)?;
        let member = call
            .member(user)
            .ok_or_else(|| not_a_member(user, "was not invited to this call"))?;
        if member.state == MemberState::Accepted && member.device.as_ref() == Some(device) {
            // A repeated accept from the same device: answer it again.
            let info = call.info();
            self.reply(user, device, id, Reply::Call { call: info });
            return Ok(());
        }
        if !member.state.is_pending() {
            return Err(already_answered(member.state));
        }
        self.enter_and_answer(
            now,
            call_id,
            user,
            device,
            id,
            Reason::Answered,
            extended_data,
        );
        Ok(())
    }

    fn join(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        id: RequestId,
        call_id: &CallId,
    ) -> Result<(), Failure> {
        let call = self.live_call(call_id)?;
        let member = call
            .member(user)
            .ok_or_else(|| not_a_member(user, "is not a member of this call"))?;
        match member.state {
            state if state.is_pending() => {
                return self.accept(now, user, device, id, call_id, ExtendedData::default());
            }
            MemberState::Accepted if member.device.as_ref() == Some(device) => {
                let info = call.info();
                self.reply(user, device, id, Reply::Call { call: info });
                return Ok(());
            }
            MemberState::Accepted | MemberState::Quit => {}
            _ => return Err(not_a_member(user, "did not take part in this call")),
        }
        if let Some(other) = self.user_call.get(user).filter(|c| *c != call_id) {
            return Err((ErrorCode::Busy, format!("you are already in call {other}")));
        }
        self.enter_and_answer(
            now,
            call_id,
            user,
            device,
            id,
            Reason::Joined,
            ExtendedData::default(),
        );
        Ok(())
    }

    /// Puts `user` in the call, answers request `id` with the call, and
    /// tells everyone involved.
    #[allow(clippy::too_many_arguments)]
    fn enter_and_answer(
        &mut self,
        now: Instant,
        call_id: &CallId,
        user: &UserId,
        device: &DeviceId,
        id: RequestId,
        reason: Reason,
        extended_data: ExtendedData,
    ) {
        self.enter_call(now, call_id, user, device, reason, extended_data);
        let info = self.calls[call_id].info();
        self.reply(user, device, id, Reply::Call { call: info });
        self.broadcast_change(call_id, user, None);
    }

    /// Puts `user` in the call on `device` (accept, join, glare).
    fn enter_call(
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

    // --- timers --------------------------------------------------------------

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    fn fire(&mut self, at: Instant, timer: Timer) {
        match timer {
            Timer::Ring { call, user, epoch } => {
                if !self.pending_at_epoch(&call, &user, epoch) {
                    return;
                }
                self.set_state(
                    &call,
                    &user,
                    MemberState::Timeout,
                    Reason::Timeout,
                    None,
                    None,
                );
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

    fn pending_at_epoch(&self, call_id: &CallId, user: &UserId, epoch: u32) -> bool {
        self.calls
            .get(call_id)
            .and_then(|c| c.member(user))
            .is_some_and(|m| m.epoch == epoch && m.state.is_pending())
    }

    // --- state changes and who hears of them ---------------------------------

    fn set_state(
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
    fn member_devices(&self, m: &Member) -> Vec<DeviceId> {
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
    fn broadcast_change(&mut self, call_id: &CallId, user: &UserId, by: Option<UserId>) {
        self.broadcast_change_except(call_id, user, by, &[]);
    }

    /// As `broadcast_change`, leaving out `skip` (new invitees that learnt
    /// the state from their snapshot).
    fn broadcast_change_except(
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

    fn end_if_not_live(
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
    fn end_call(&mut self, now: Instant, call_id: &CallId, reason: Reason, by: Option<&UserId>) {
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

    // --- lookups and replies ---------------------------------------------------

    fn live_call(&self, call_id: &CallId) -> Result<&Call, Failure> {
        match self.calls.get(call_id) {
            Some(call) => Ok(call),
            None if self.ended.contains_key(call_id) => {
                Err((ErrorCode::CallEnded, format!("call {call_id} has ended")))
            }
            None => Err((ErrorCode::NotFound, format!("no call {call_id}"))),
        }
    }

    /// Checks that `user` is in the call on `device`.
    fn accepted_on(
        &self,
        call_id: &CallId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(), Failure> {
        let call = self.live_call(call_id)?;
        let m = call
            .member(user)
            .ok_or_else(|| not_a_member(user, "is not a member of this call"))?;
        match (&m.state, &m.device) {
            (MemberState::Accepted, Some(d)) if d == device => Ok(()),
            (MemberState::Accepted, _) => Err((
                ErrorCode::NotAMember,
                "this call is on your other device; join it here first".into(),
            )),
            (state, _) => Err(not_a_member(
                user,
                &format!("is not in this call ({state:?})"),
            )),
        }
    }

    fn reply_invitation(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        id: RequestId,
        call_id: &CallId,
        results: Vec<UserResult>,
        merged: bool,
    ) {
        let call = self.calls[call_id].info();
        self.reply(
            user,
            device,
            id,
            Reply::Invitation {
                call,
                results,
                merged,
            },
        );
    }

    fn reply(&mut self, user: &UserId, device: &DeviceId, id: RequestId, reply: Reply) {
        self.send(user, device, ServerMessage::Reply { id, reply });
    }

    fn send(&mut self, user: &UserId, device: &DeviceId, message: ServerMessage) {
        self.out.push_back(Output::Send {
            user: user.clone(),
            device: device.clone(),
            message,
        });
    }

    /// Panics when the registry's bookkeeping disagrees with itself.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        for (user, call_id) in &self.user_call {
            let call = self
                .calls
                .get(call_id)
                .expect("busy users point at live calls");
            let m = call.member(user).expect("busy users are members");
            assert!(
                m.state.is_involved(),
                "{user} busy in {call_id} as {:?}",
                m.state
            );
        }
        for (call_id, call) in &self.calls {
            assert!(call.is_live(), "{call_id} kept although not live");
            for m in call.members.iter().filter(|m| m.state.is_involved()) {
                assert_eq!(
                    self.user_call.get(&m.user),
                    Some(call_id),
                    "{} in two calls",
                    m.user
                );
                assert_eq!(m.state == MemberState::Accepted, m.device.is_some());
                assert_eq!(m.state.is_pending(), m.deadline.is_some());
            }
        }
    }
}

fn event(event: Event) -> ServerMessage {
    ServerMessage::Event { event }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn check_user_count(n: usize) -> Result<(), Failure> {
    limits::check_user_count(n).map_err(|e| (e.code, e.message))
}

fn busy_self() -> Failure {
    (
        ErrorCode::Busy,
        "you are already calling, being called, or in a call".into(),
    )
}

fn not_a_member(user: &UserId, what: &str) -> Failure {
    (ErrorCode::NotAMember, format!("{user} {what}"))
}

fn already_answered(state: MemberState) -> Failure {
    let what = match state {
        MemberState::Accepted => "the invitation was already accepted on another device",
        MemberState::Rejected => "the invitation was already declined",
        MemberState::Timeout => "the invitation timed out",
        MemberState::Cancelled => "the caller cancelled the invitation",
        MemberState::Quit => "you left this call; join it instead",
        _ => "the invitation is no longer open",
    };
    (ErrorCode::AlreadyAnswered, what.into())
}

#[cfg(test)]
mod tests;
