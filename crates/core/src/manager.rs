//! One client's view of its calls: the current call, whether it is busy, and
//! the events a UI needs (the seed's call manager), built from what the
//! server sends.
//!
//! It has the registry's shape: one [`CallManager::handle`] for everything
//! it is told (server events, the device's own requests and their answers,
//! the connection coming and going) and one [`CallManager::poll_output`]
//! for everything it asks (notices for the UI, requests to send).
//!
//! ```
//! use beckon_core::manager::{CallManager, Input, Output};
//! use beckon_protocol::{DeviceId, UserId};
//!
//! let mut m = CallManager::new(UserId::try_from("bob").unwrap(), DeviceId::try_from("d1").unwrap());
//! m.handle(Input::Connected);
//! // for each request sent: m.handle(Input::Sent { id, request: &request });
//! // for each answer: m.handle(Input::Answered { id, result: Ok(&reply) });
//! // for each server event: m.handle(Input::Event(&event));
//! while let Some(out) = m.poll_output() {
//!     match out {
//!         Output::Notice(notice) => { /* update the UI */ }
//!         Output::Send(request) => { /* send it, then report it as `Sent` */ }
//!     }
//! }
//! assert!(!m.is_busy());
//! ```

use std::collections::{HashMap, VecDeque};

use beckon_protocol::{
    CallId, CallInfo, DeviceId, ErrorCode, Event, ExtendedData, MemberChange, MemberState, Reason,
    RejectReason, Reply, Request, RequestId, UserId,
};

/// Where the current call stands for this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Someone is ringing us; we have not answered.
    Incoming,
    /// We are in the call, and nobody else is yet (the waiting page).
    Outgoing,
    /// We and at least one other member are in.
    Connected,
}

/// The call this device is part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentCall {
    /// The call as last heard, kept up to date from member changes.
    pub info: CallInfo,
    /// Where it stands for us.
    pub phase: Phase,
    /// Who rang us (for incoming calls).
    pub rung_by: Option<UserId>,
}

impl CurrentCall {
    /// Members other than `me` who are in the call.
    pub fn others_in_call<'a>(&'a self, me: &'a UserId) -> impl Iterator<Item = &'a UserId> + 'a {
        self.info
            .members
            .iter()
            .filter(move |m| &m.user != me && m.state == MemberState::Accepted)
            .map(|m| &m.user)
    }
}

/// What the UI should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Someone rings us: show the incoming call dialog.
    IncomingReceived {
        /// The call.
        call: CallInfo,
        /// Who rang.
        by: UserId,
    },
    /// The caller took the invitation back.
    IncomingCancelled {
        /// The call.
        call_id: CallId,
        /// Who cancelled.
        by: Option<UserId>,
    },
    /// We did not answer in time.
    IncomingTimeout {
        /// The call.
        call_id: CallId,
    },
    /// Another device of ours accepted or declined the invitation, or took
    /// the call over.
    AnsweredElsewhere {
        /// The call.
        call_id: CallId,
        /// Accepted there (else declined).
        accepted: bool,
    },
    /// Another member's state changed (accepted, declined, busy, timeout,
    /// quit, not yet received, …).
    MemberChanged {
        /// The change.
        change: MemberChange,
    },
    /// We and at least one other member are in: start media.
    CallStarted {
        /// The call.
        call_id: CallId,
    },
    /// The call is over for us.
    CallEnded {
        /// The call.
        call_id: CallId,
        /// Why.
        reason: Reason,
        /// Who caused it, when someone did.
        by: Option<UserId>,
        /// The call as it last stood: who was in it, who declined, was
        /// busy or never answered, and why (each member's reason).
        last: Box<CallInfo>,
    },
    /// The call ended, or moved on without us, while this device was
    /// disconnected.
    EndedWhileOffline {
        /// The call.
        call_id: CallId,
    },
    /// We went from idle to busy or back.
    BusyChanged {
        /// Now busy.
        busy: bool,
    },
    /// An invitation arrived while we were busy; it was declined as busy.
    MissedWhileBusy {
        /// The call.
        call: CallInfo,
        /// Who rang.
        by: UserId,
    },
}

/// What a device's call manager is told.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The server sent an event.
    Event(&'a Event),
    /// The device sent request `id` (its own, or one the manager asked for).
    Sent {
        /// The request's id.
        id: RequestId,
        /// What was asked.
        request: &'a Request,
    },
    /// The server answered request `id`: its reply, or the error's code.
    Answered {
        /// The request's id.
        id: RequestId,
        /// The reply, or the error's code.
        result: Result<&'a Reply, ErrorCode>,
    },
    /// Signed in (again): the manager asks how the call it knew of stands.
    Connected,
    /// Signed in on a fresh session, the old one not resumable: the old
    /// session's call is over for this device.
    NewSession,
    /// The connection dropped: requests in flight will not be answered.
    Disconnected,
}

/// What the manager asks of its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Tell the UI.
    Notice(Notice),
    /// Send this request for the device (a busy decline, a status check
    /// after a reconnect), and report it as [`Input::Sent`] like any other.
    Send(Request),
}

/// What the answer to one of our requests means for the current call.
#[derive(Debug, Clone)]
enum Expect {
    /// `invite`/`add`/`accept`/`join`: we may now be in a call.
    Entered,
    /// `reject`/`quit`/`end`: we left this call.
    Left(CallId, Reason),
    /// `call_status` after a reconnect.
    Status(CallId),
}

impl Expect {
    fn of(request: &Request) -> Option<Self> {
        Some(match request {
            Request::Invite { .. }
            | Request::Add { .. }
            | Request::Accept { .. }
            | Request::Join { .. } => Self::Entered,
            Request::Reject {
                call_id, reason, ..
            } => Self::Left(call_id.clone(), (*reason).into()),
            Request::Quit { call_id, .. } => Self::Left(call_id.clone(), Reason::Quit),
            Request::End { call_id, .. } => Self::Left(call_id.clone(), Reason::Ended),
            Request::CallStatus { call_id } => Self::Status(call_id.clone()),
            _ => return None,
        })
    }
}

/// A device's call state machine; see the module docs for the loop.
#[derive(Debug)]
pub struct CallManager {
    me: UserId,
    device: DeviceId,
    current: Option<CurrentCall>,
    /// Requests in flight whose answer changes the current call.
    expect: HashMap<RequestId, Expect>,
    out: VecDeque<Output>,
}

impl CallManager {
    /// A manager for `me` on `device`, with no call.
    pub fn new(me: UserId, device: DeviceId) -> Self {
        Self {
            me,
            device,
            current: None,
            expect: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    /// Who this manager is for.
    pub fn me(&self) -> &UserId {
        &self.me
    }

    /// The call we are in, calling from, or being rung for.
    pub fn current(&self) -> Option<&CurrentCall> {
        self.current.as_ref()
    }

    /// Calling, being called, or in a call.
    pub fn is_busy(&self) -> bool {
        self.current.is_some()
    }

    /// The next notice or request. Drain after every `handle`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input<'_>) {
        match input {
            Input::Event(event) => self.handle_event(event),
            Input::Sent { id, request } => {
                if let Some(expect) = Expect::of(request) {
                    self.expect.insert(id, expect);
                }
            }
            Input::Answered { id, result } => {
                if let Some(expect) = self.expect.remove(&id) {
                    self.answered(expect, result);
                }
            }
            Input::Connected => {
                if let Some(call_id) = self.current.as_ref().map(|c| c.info.call_id.clone()) {
                    self.out
                        .push_back(Output::Send(Request::CallStatus { call_id }));
                }
            }
            Input::NewSession => {
                self.expect.clear();
                if let Some(call_id) = self.current.as_ref().map(|c| c.info.call_id.clone()) {
                    self.lost(&call_id);
                }
            }
            Input::Disconnected => self.expect.clear(),
        }
    }

    fn answered(&mut self, expect: Expect, result: Result<&Reply, ErrorCode>) {
        match (expect, result) {
            (Expect::Entered, Ok(Reply::Invitation { call, .. })) => self.on_invited(call.clone()),
            (Expect::Entered, Ok(Reply::Call { call })) => self.on_in_call(call.clone()),
            (Expect::Left(call_id, reason), Ok(_)) => self.on_left(&call_id, reason),
            (Expect::Status(call_id), Ok(Reply::Call { call })) => {
                self.on_status(&call_id, Ok(call.clone()))
            }
            (Expect::Status(call_id), Err(code)) => self.on_status(&call_id, Err(code)),
            _ => {}
        }
    }

    fn notice(&mut self, notice: Notice) {
        self.out.push_back(Output::Notice(notice));
    }

    /// Our `invite` (or `add`) succeeded with this call. Ignored unless we
    /// are in it (an invite to busy users only may have ended it already).
    fn on_invited(&mut self, call: CallInfo) {
        if call
            .member(&self.me)
            .is_some_and(|m| m.state == MemberState::Accepted)
        {
            self.on_in_call(call);
        }
    }

    /// Our `accept` or `join` succeeded, or the server sent a snapshot of a
    /// call we are in.
    fn on_in_call(&mut self, call: CallInfo) {
        let same = self
            .current
            .as_ref()
            .is_some_and(|c| c.info.call_id == call.call_id);
        let rung_by = if same {
            self.current.as_ref().and_then(|c| c.rung_by.clone())
        } else {
            None
        };
        let phase = self.phase_of(&call);
        let was_connected = same
            && self
                .current
                .as_ref()
                .is_some_and(|c| c.phase == Phase::Connected);
        let call_id = call.call_id.clone();
        self.set_current(Some(CurrentCall {
            info: call,
            phase,
            rung_by,
        }));
        if phase == Phase::Connected && !was_connected {
            self.notice(Notice::CallStarted { call_id });
        }
    }

    /// The answer to `call_status` for `call_id` after a reconnect: the call
    /// as it stands, or an error when it is over for this device.
    fn on_status(&mut self, call_id: &CallId, status: Result<CallInfo, ErrorCode>) {
        if !self.is_current(call_id) {
            return;
        }
        match status {
            Ok(call) => match call.member(&self.me).map(|m| m.state) {
                Some(MemberState::Accepted) => self.on_in_call(call),
                Some(state) if state.is_pending() => {
                    if let Some(current) = &mut self.current {
                        current.info = call;
                    }
                }
                _ => self.lost(call_id),
            },
            Err(_) => self.lost(call_id),
        }
    }

    fn lost(&mut self, call_id: &CallId) {
        self.set_current(None);
        self.notice(Notice::EndedWhileOffline {
            call_id: call_id.clone(),
        });
    }

    /// We declined (`Declined`/`Busy`), quit (`Quit`) or ended (`Ended`) the
    /// call ourselves: it is over for us.
    fn on_left(&mut self, call_id: &CallId, reason: Reason) {
        if self.is_current(call_id) {
            let last = self.end_current();
            self.notice(Notice::CallEnded {
                call_id: call_id.clone(),
                reason,
                by: Some(self.me.clone()),
                last,
            });
        }
    }

    /// Drops the current call, returning it as it last stood.
    fn end_current(&mut self) -> Box<CallInfo> {
        let last = self.current.as_ref().map(|c| c.info.clone());
        self.set_current(None);
        Box::new(last.expect("only a current call ends"))
    }

    fn handle_event(&mut self, event: &Event) {
        match event {
            Event::CallInvited { call, by, .. } => self.invited(call, by),
            Event::CallState { call }
                if call
                    .member(&self.me)
                    .is_some_and(|m| m.state == MemberState::Accepted) =>
            {
                self.on_in_call(call.clone());
            }
            Event::MemberState(change) => self.member_changed(change),
            Event::CallEnded {
                call_id,
                reason,
                by,
                ..
            } if self.is_current(call_id) => {
                let last = self.end_current();
                self.notice(Notice::CallEnded {
                    call_id: call_id.clone(),
                    reason: *reason,
                    by: by.clone(),
                    last,
                });
            }
            _ => {}
        }
    }

    fn invited(&mut self, call: &CallInfo, by: &UserId) {
        match &mut self.current {
            Some(current) if current.info.call_id == call.call_id => {
                // Delivered again (a reconnect): refresh, do not ring twice.
                current.info = call.clone();
            }
            Some(_) => {
                self.out.push_back(Output::Send(Request::Reject {
                    call_id: call.call_id.clone(),
                    reason: RejectReason::Busy,
                    extended_data: ExtendedData::default(),
                }));
                self.notice(Notice::MissedWhileBusy {
                    call: call.clone(),
                    by: by.clone(),
                });
            }
            None => {
                self.set_current(Some(CurrentCall {
                    info: call.clone(),
                    phase: Phase::Incoming,
                    rung_by: Some(by.clone()),
                }));
                self.notice(Notice::IncomingReceived {
                    call: call.clone(),
                    by: by.clone(),
                });
            }
        }
    }

    fn member_changed(&mut self, change: &MemberChange) {
        let Some(current) = self
            .current
            .as_mut()
            .filter(|c| c.info.call_id == change.call_id)
        else {
            return;
        };
        match current
            .info
            .members
            .iter_mut()
            .find(|m| m.user == change.user)
        {
            Some(m) => {
                m.state = change.state;
                m.reason = Some(change.reason);
                m.extended_data = change.extended_data.clone();
            }
            None => current.info.members.push(beckon_protocol::MemberInfo {
                user: change.user.clone(),
                state: change.state,
                reason: Some(change.reason),
                invited_by: change.by.clone(),
                extended_data: change.extended_data.clone(),
            }),
        }
        if change.user == self.me {
            self.my_change(change);
            return;
        }
        self.notice(Notice::MemberChanged {
            change: change.clone(),
        });
        let phase = self.phase_of(&self.current.as_ref().expect("checked").info);
        let current = self.current.as_mut().expect("checked");
        if current.phase != phase && current.phase != Phase::Incoming {
            current.phase = phase;
            if phase == Phase::Connected {
                self.notice(Notice::CallStarted {
                    call_id: change.call_id.clone(),
                });
            }
        }
    }

    fn my_change(&mut self, change: &MemberChange) {
        let call_id = change.call_id.clone();
        let here = change.device.as_ref() == Some(&self.device);
        let phase = self.current.as_ref().map(|c| c.phase);
        match change.state {
            MemberState::Accepted if !here => {
                self.set_current(None);
                self.notice(Notice::AnsweredElsewhere {
                    call_id,
                    accepted: true,
                });
            }
            MemberState::Accepted => {
                let info = self.current.as_ref().expect("current").info.clone();
                self.on_in_call(info);
            }
            MemberState::Rejected if !here && phase == Some(Phase::Incoming) => {
                self.set_current(None);
                self.notice(Notice::AnsweredElsewhere {
                    call_id,
                    accepted: false,
                });
            }
            MemberState::Cancelled => {
                self.set_current(None);
                self.notice(Notice::IncomingCancelled {
                    call_id,
                    by: change.by.clone(),
                });
            }
            MemberState::Timeout => {
                self.set_current(None);
                self.notice(Notice::IncomingTimeout { call_id });
            }
            state if !state.is_involved() => self.set_current(None),
            _ => {}
        }
    }

    fn phase_of(&self, call: &CallInfo) -> Phase {
        let me_in = call
            .member(&self.me)
            .is_some_and(|m| m.state == MemberState::Accepted);
        let others_in = call
            .members
            .iter()
            .any(|m| m.user != self.me && m.state == MemberState::Accepted);
        match (me_in, others_in) {
            (false, _) => Phase::Incoming,
            (true, false) => Phase::Outgoing,
            (true, true) => Phase::Connected,
        }
    }

    fn is_current(&self, call_id: &CallId) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| &c.info.call_id == call_id)
    }

    fn set_current(&mut self, next: Option<CurrentCall>) {
        let was_busy = self.current.is_some();
        self.current = next;
        if was_busy != self.current.is_some() {
            self.notice(Notice::BusyChanged {
                busy: self.current.is_some(),
            });
        }
    }
}

#[cfg(test)]
mod tests;
