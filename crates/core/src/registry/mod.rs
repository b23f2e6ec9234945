//! The server's call registry: every call, member state, ending rule, busy
//! rule and timer of DESIGN §2, with time passed in.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use beckon_core::registry::{CallRequest, Input, InviteRequest, Output, Registry, RegistryConfig};
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
//!     request: CallRequest::Invite(InviteRequest {
//!         call_id: CallId::try_from("0123456789abcdef0123456789abcdef").unwrap(),
//!         users: vec![bob.clone()],
//!         unknown: vec![],
//!         kind: CallKind::Video,
//!         timeout_secs: None,
//!         extended_data: Default::default(),
//!     }),
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
//!
//! The registry's files follow its concepts: what it is fed and gives back
//! (`input`), why it refuses (`error`), devices coming and going
//! (`presence`), ringing (`invite`), answering and being in a call
//! (`answer`), leaving and ending (`ending`), timers (`timers`), and who
//! hears of a change (`fanout`).

mod answer;
mod call;
mod ending;
mod error;
mod fanout;
mod input;
mod invite;
mod presence;
mod timers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use beckon_protocol::{
    CallId, DeviceId, Event, MemberState, RequestId, ServerMessage, UserId, limits,
};

use call::Call;
pub use call::CallRecord;
pub use error::RegistryError;
pub use input::{CallRequest, Input, InviteRequest, Output};
use timers::Timer;

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
                let asker = Asker {
                    user: &user,
                    device: &device,
                    id,
                };
                if let Err(e) = self.request(now, &asker, request) {
                    self.send(
                        &user,
                        &device,
                        ServerMessage::error(Some(id), e.code(), e.to_string()),
                    );
                }
            }
        }
    }

    /// One request from `asker`: done, or refused with nothing changed.
    fn request(
        &mut self,
        now: Instant,
        asker: &Asker,
        request: CallRequest,
    ) -> Result<(), RegistryError> {
        match request {
            CallRequest::Invite(invite) => self.invite(now, asker, invite),
            CallRequest::Add {
                call_id,
                users,
                unknown,
            } => self.add(now, asker, &call_id, users, unknown),
            CallRequest::Cancel {
                call_id,
                users,
                extended_data,
            } => self.cancel(now, asker, &call_id, users, extended_data),
            CallRequest::Accept {
                call_id,
                extended_data,
            } => self.accept(now, asker, &call_id, extended_data),
            CallRequest::Reject {
                call_id,
                reason,
                extended_data,
            } => self.reject(now, asker, &call_id, reason, extended_data),
            CallRequest::Quit {
                call_id,
                extended_data,
            } => self.quit(now, asker, &call_id, extended_data),
            CallRequest::End {
                call_id,
                extended_data,
            } => self.end(now, asker, &call_id, extended_data),
            CallRequest::Join { call_id } => self.join(now, asker, &call_id),
            CallRequest::Status { call_id } => self.status(asker, &call_id),
            CallRequest::Signal {
                call_id,
                to,
                signal,
            } => self.signal(asker, call_id, to, signal),
        }
    }

    // --- lookups ---------------------------------------------------------------

    pub(super) fn live_call(&self, call_id: &CallId) -> Result<&Call, RegistryError> {
        match self.calls.get(call_id) {
            Some(call) => Ok(call),
            None if self.ended.contains_key(call_id) => {
                Err(RegistryError::CallEnded(call_id.clone()))
            }
            None => Err(RegistryError::NoSuchCall(call_id.clone())),
        }
    }

    /// Checks that `user` is in the call on `device`.
    pub(super) fn accepted_on(
        &self,
        call_id: &CallId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(), RegistryError> {
        let call = self.live_call(call_id)?;
        let m = call
            .member(user)
            .ok_or_else(|| RegistryError::not_a_member(user, "is not a member of this call"))?;
        match (&m.state, &m.device) {
            (MemberState::Accepted, Some(d)) if d == device => Ok(()),
            (MemberState::Accepted, _) => Err(RegistryError::OnOtherDevice),
            (state, _) => Err(RegistryError::not_a_member(
                user,
                &format!("is not in this call ({state:?})"),
            )),
        }
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

/// Who asked, from where, and which request to answer.
#[derive(Debug, Clone, Copy)]
struct Asker<'a> {
    user: &'a UserId,
    device: &'a DeviceId,
    id: RequestId,
}

fn event(event: Event) -> ServerMessage {
    ServerMessage::Event { event }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
