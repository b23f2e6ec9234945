//! The connection task: connect, sign in, serve, and on a drop reconnect
//! with backoff and resume.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beckon_core::manager::{Action, CallManager};
use beckon_protocol::{
    CallId, ClientMessage, ErrorBody, ErrorCode, Event, ExtendedData, PROTOCOL_VERSION, Reason,
    Reply, Request, RequestId, ServerMessage, SessionCloseReason, SessionToken, limits,
};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{ClientConfig, ClientError, ClientEvent, Command, Credentials, Shared, StopReason};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How often the connection checks that its local address is still there.
const ADDRESS_CHECK: Duration = Duration::from_millis(250);

/// The local address of the connection's socket.
fn local_ip(ws: &Ws) -> Option<std::net::IpAddr> {
    let tcp = match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        MaybeTlsStream::Rustls(s) => s.get_ref().0,
        _ => return None,
    };
    tcp.local_addr().ok().map(|a| a.ip())
}

/// Whether `ip` is still one of this computer's addresses: binding to it
/// fails once it is not (on every system, without listing interfaces).
fn still_ours(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// What the task must do with a reply besides handing it back.
#[derive(Debug, Clone)]
enum Track {
    Nothing,
    /// `invite`/`add`/`accept`/`join`: we may now be in a call.
    Entered,
    /// `reject`/`quit`/`end`: we left this call.
    Left(CallId, Reason),
    /// Our own `call_status` after a resume.
    Status(CallId),
    Logout,
}

struct Pending {
    reply: Option<oneshot::Sender<Result<Reply, ClientError>>>,
    track: Track,
}

enum Outcome {
    /// The connection dropped; reconnect.
    Lost(String),
    /// The session is over.
    Stop(StopReason),
}

struct Task {
    config: ClientConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
    shared: Arc<Mutex<Shared>>,
    token: Option<SessionToken>,
    manager: Option<CallManager>,
    next_id: RequestId,
}

pub(crate) async fn run(
    config: ClientConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
    shared: Arc<Mutex<Shared>>,
    ready: oneshot::Sender<Result<(), ClientError>>,
) {
    let token = match &config.credentials {
        Credentials::Token(t) => Some(t.clone()),
        _ => None,
    };
    let task = Task {
        config,
        commands,
        events,
        shared,
        token,
        manager: None,
        next_id: 0,
    };
    task.run(ready).await;
}

impl Task {
    async fn run(mut self, ready: oneshot::Sender<Result<(), ClientError>>) {
        let mut ready = Some(ready);
        let mut backoff = self.config.min_backoff;
        loop {
            let attempt = match self.connect().await {
                Ok(ws) => self.sign_in(ws).await,
                Err(e) => Err(e),
            };
            let outcome = match attempt {
                Ok(ws) => {
                    backoff = self.config.min_backoff;
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                    self.serve(ws).await
                }
                Err(ClientError::SignIn(e)) => {
                    let reason = StopReason::Refused(e.message.clone());
                    match ready.take() {
                        Some(r) => {
                            let _ = r.send(Err(ClientError::SignIn(e)));
                        }
                        None => self.emit(ClientEvent::Stopped { reason }).await,
                    }
                    return;
                }
                Err(e) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e));
                        return;
                    }
                    Outcome::Lost(e.to_string())
                }
            };
            match outcome {
                Outcome::Stop(reason) => {
                    self.set_current_from_manager();
                    self.emit(ClientEvent::Stopped { reason }).await;
                    return;
                }
                Outcome::Lost(reason) => {
                    let jitter = rand::thread_rng().gen_range(0.8..1.2);
                    let wait = backoff.mul_f64(jitter);
                    tracing::info!(%reason, ?wait, "disconnected; reconnecting");
                    self.emit(ClientEvent::Disconnected {
                        reason,
                        retry_in: wait,
                    })
                    .await;
                    if !self.wait_refusing(wait).await {
                        return;
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    /// Sleeps while answering every command with `Disconnected`. False when
    /// every handle is gone.
    async fn wait_refusing(&mut self, wait: Duration) -> bool {
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => { let _ = cmd.reply.send(Err(ClientError::Disconnected)); }
                    None => return false,
                },
            }
        }
    }

    async fn connect(&self) -> Result<Ws, ClientError> {
        // tungstenite's default read buffer is 128 KiB, zero-filled, per
        // connection; messages here are small and a larger one just takes
        // a few more reads.
        let mut ws_config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0);
        ws_config.max_message_size = Some(limits::MAX_FRAME_BYTES);
        ws_config.max_frame_size = Some(limits::MAX_FRAME_BYTES);
        let connect =
            tokio_tungstenite::connect_async_with_config(&self.config.url, Some(ws_config), true);
        match tokio::time::timeout(self.config.request_timeout, connect).await {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => Err(ClientError::Connect(e.to_string())),
            Err(_) => Err(ClientError::Connect("timed out".into())),
        }
    }

    /// Resumes with the token when there is one, else signs in with the
    /// credentials; a refused resume falls back to the password if known.
    async fn sign_in(&mut self, mut ws: Ws) -> Result<Ws, ClientError> {
        loop {
            let device = self.config.device.clone();
            let request = match (&self.token, &self.config.credentials) {
                (Some(token), _) => Request::Resume {
                    version: PROTOCOL_VERSION,
                    token: token.clone(),
                    device,
                },
                (
                    None,
                    Credentials::Register {
                        user,
                        password,
                        display_name,
                    },
                ) => Request::Register {
                    version: PROTOCOL_VERSION,
                    user: user.clone(),
                    password: password.clone(),
                    display_name: display_name.clone(),
                    device,
                },
                (None, Credentials::Login { user, password }) => Request::Login {
                    version: PROTOCOL_VERSION,
                    user: user.clone(),
                    password: password.clone(),
                    device,
                },
                (None, Credentials::Token(_)) => {
                    return Err(ClientError::SignIn(ErrorBody::new(
                        ErrorCode::Unauthorized,
                        "the saved session is no longer valid; sign in again",
                    )));
                }
            };
            let resuming = matches!(request, Request::Resume { .. });
            let id = self.id();
            send(&mut ws, &ClientMessage { id, request }).await?;
            let answer =
                tokio::time::timeout(self.config.request_timeout, read_answer(&mut ws, id))
                    .await
                    .map_err(|_| ClientError::Timeout)??;
            match answer {
                Ok(Reply::Session(session)) => {
                    self.token = Some(session.token.clone());
                    let me = session.profile.id.clone();
                    if self.manager.as_ref().is_none_or(|m| m.me() != &me) {
                        self.manager = Some(CallManager::new(me, self.config.device.clone()));
                    }
                    self.lock().session = Some(session.clone());
                    self.emit(ClientEvent::Connected {
                        session: Box::new(session),
                    })
                    .await;
                    return Ok(ws);
                }
                Ok(other) => return Err(ClientError::unexpected(&other)),
                Err(e) if resuming && e.code == ErrorCode::Unauthorized => {
                    tracing::info!("session not resumable; signing in again");
                    self.token = None;
                    if let Some(m) = &mut self.manager {
                        // A new session starts without the old one's calls.
                        if let Some(call) = m.current().map(|c| c.info.call_id.clone()) {
                            m.on_status(&call, Err(ErrorCode::NotFound));
                        }
                    }
                    self.flush_notices().await;
                    if matches!(self.config.credentials, Credentials::Token(_)) {
                        return Err(ClientError::SignIn(e));
                    }
                }
                Err(e) if e.code.is_retryable() => return Err(ClientError::Server(e)),
                Err(e) => return Err(ClientError::SignIn(e)),
            }
        }
    }

    async fn serve(&mut self, mut ws: Ws) -> Outcome {
        let mut pending: HashMap<RequestId, Pending> = HashMap::new();
        // After a resume, learn whether the call we knew of is still on.
        if let Some(call_id) = self
            .manager
            .as_ref()
            .and_then(|m| m.current())
            .map(|c| c.info.call_id.clone())
        {
            let id = self.id();
            pending.insert(
                id,
                Pending {
                    reply: None,
                    track: Track::Status(call_id.clone()),
                },
            );
            if send(
                &mut ws,
                &ClientMessage {
                    id,
                    request: Request::CallStatus { call_id },
                },
            )
            .await
            .is_err()
            {
                return Outcome::Lost("send failed".into());
            }
        }
        let silence = self.config.silence_timeout;
        let mut deadline = tokio::time::Instant::now() + silence;
        // A socket whose local address went away (the computer moved to
        // another network) is dead, though nothing says so for a long time.
        let local = local_ip(&ws);
        let mut watch = tokio::time::interval(ADDRESS_CHECK);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let outcome = loop {
            tokio::select! {
                _ = watch.tick() => {
                    if local.is_some_and(|ip| !still_ours(ip)) {
                        break Outcome::Lost("this computer's network address changed".into());
                    }
                }
                msg = ws.next() => {
                    deadline = tokio::time::Instant::now() + silence;
                    match msg {
                        Some(Ok(Message::Text(text))) => {
                            match serde_json::from_str::<ServerMessage>(&text) {
                                Ok(msg) => {
                                    if let Some(outcome) = self.on_message(&mut ws, &mut pending, msg).await {
                                        break outcome;
                                    }
                                }
                                Err(e) => tracing::warn!(error = %e, "unreadable message from the server"),
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            break Outcome::Lost(frame.map_or("closed".into(), |f| format!("closed: {}", f.code)));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break Outcome::Lost(e.to_string()),
                        None => break Outcome::Lost("connection closed".into()),
                    }
                }
                cmd = self.commands.recv() => {
                    let Some(Command { request, reply }) = cmd else {
                        let _ = ws.close(None).await;
                        break Outcome::Stop(StopReason::Dropped);
                    };
                    let track = track_of(&request);
                    let id = self.id();
                    if let Err(e) = send(&mut ws, &ClientMessage { id, request }).await {
                        let _ = reply.send(Err(e));
                        break Outcome::Lost("send failed".into());
                    }
                    pending.insert(id, Pending { reply: Some(reply), track });
                }
                () = tokio::time::sleep_until(deadline) => {
                    break Outcome::Lost("the server went silent".into());
                }
            }
        };
        for (_, p) in pending.drain() {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
        }
        outcome
    }

    /// Handles one server message; `Some` ends the connection.
    async fn on_message(
        &mut self,
        ws: &mut Ws,
        pending: &mut HashMap<RequestId, Pending>,
        msg: ServerMessage,
    ) -> Option<Outcome> {
        match msg {
            ServerMessage::Reply { id, reply } => {
                let p = pending.remove(&id)?;
                self.track(&p.track, Ok(&reply));
                // The shared copy first: whoever awaits this reply may ask
                // for the current call the moment it arrives.
                self.set_current_from_manager();
                if let Some(tx) = p.reply {
                    let _ = tx.send(Ok(reply));
                }
                if matches!(p.track, Track::Logout) {
                    self.token = None;
                    return Some(Outcome::Stop(StopReason::Closed(
                        SessionCloseReason::LoggedOut,
                    )));
                }
            }
            ServerMessage::Error {
                id: Some(id),
                error,
            } => {
                let p = pending.remove(&id)?;
                self.track(&p.track, Err(error.code));
                self.set_current_from_manager();
                if let Some(tx) = p.reply {
                    let _ = tx.send(Err(ClientError::Server(error)));
                }
            }
            ServerMessage::Error { id: None, error } => {
                tracing::warn!(code = %error.code, message = %error.message, "server error");
            }
            ServerMessage::Event { event } => match event {
                Event::Signal {
                    call_id,
                    from,
                    signal,
                } => {
                    self.emit(ClientEvent::Signal {
                        call_id,
                        from,
                        signal,
                    })
                    .await;
                }
                Event::Presence { user, online } => {
                    self.emit(ClientEvent::Presence { user, online }).await
                }
                Event::SessionClosed { reason } => {
                    if reason != SessionCloseReason::ServerShutdown {
                        return Some(Outcome::Stop(StopReason::Closed(reason)));
                    }
                    return Some(Outcome::Lost("the server is restarting".into()));
                }
                event => {
                    if let Some(m) = &mut self.manager {
                        m.handle_event(&event);
                    }
                }
            },
        }
        // Replies the manager wants sent (busy auto-reject).
        let actions: Vec<Action> = match &mut self.manager {
            Some(m) => std::iter::from_fn(|| m.poll_action()).collect(),
            None => Vec::new(),
        };
        for Action::Reject { call_id, reason } in actions {
            let id = self.id();
            pending.insert(
                id,
                Pending {
                    reply: None,
                    track: Track::Nothing,
                },
            );
            let request = Request::Reject {
                call_id,
                reason,
                extended_data: ExtendedData::default(),
            };
            if send(ws, &ClientMessage { id, request }).await.is_err() {
                return Some(Outcome::Lost("send failed".into()));
            }
        }
        self.flush_notices().await;
        None
    }

    /// Feeds the outcome of our own requests to the call manager.
    fn track(&mut self, track: &Track, result: Result<&Reply, ErrorCode>) {
        let Some(m) = &mut self.manager else { return };
        match (track, result) {
            (Track::Entered, Ok(Reply::Invitation { call, .. })) => m.on_invited(call.clone()),
            (Track::Entered, Ok(Reply::Call { call })) => m.on_in_call(call.clone()),
            (Track::Left(call_id, reason), Ok(_)) => m.on_left(call_id, *reason),
            (Track::Status(call_id), Ok(Reply::Call { call })) => {
                m.on_status(call_id, Ok(call.clone()))
            }
            (Track::Status(call_id), Err(code)) => m.on_status(call_id, Err(code)),
            _ => {}
        }
    }

    async fn flush_notices(&mut self) {
        let notices: Vec<_> = match &mut self.manager {
            Some(m) => std::iter::from_fn(|| m.poll_notice()).collect(),
            None => return,
        };
        self.set_current_from_manager();
        for n in notices {
            self.emit(ClientEvent::Notice(n)).await;
        }
    }

    fn set_current_from_manager(&self) {
        let current = self.manager.as_ref().and_then(|m| m.current().cloned());
        self.lock().current = current;
    }

    async fn emit(&self, event: ClientEvent) {
        // An owner that stopped listening only loses its events.
        let _ = self.events.send(event).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn id(&mut self) -> RequestId {
        self.next_id += 1;
        self.next_id
    }
}

fn track_of(request: &Request) -> Track {
    match request {
        Request::Invite { .. }
        | Request::Add { .. }
        | Request::Accept { .. }
        | Request::Join { .. } => Track::Entered,
        Request::Reject {
            call_id, reason, ..
        } => Track::Left(call_id.clone(), (*reason).into()),
        Request::Quit { call_id, .. } => Track::Left(call_id.clone(), Reason::Quit),
        Request::End { call_id, .. } => Track::Left(call_id.clone(), Reason::Ended),
        Request::Logout => Track::Logout,
        _ => Track::Nothing,
    }
}

async fn send(ws: &mut Ws, msg: &ClientMessage) -> Result<(), ClientError> {
    let text = serde_json::to_string(msg).expect("client messages always serialize");
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|_| ClientError::Disconnected)
}

/// Reads until the answer to `id` (before sign-in nothing else comes).
async fn read_answer(ws: &mut Ws, id: RequestId) -> Result<Result<Reply, ErrorBody>, ClientError> {
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg.map_err(|e| ClientError::Connect(e.to_string()))? else {
            continue;
        };
        match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::Reply { id: i, reply }) if i == id => return Ok(Ok(reply)),
            Ok(ServerMessage::Error { id: Some(i), error }) if i == id => return Ok(Err(error)),
            Ok(ServerMessage::Error { id: None, error }) => return Ok(Err(error)),
            Ok(_) => {}
            Err(e) => return Err(ClientError::Unexpected(e.to_string())),
        }
    }
    Err(ClientError::Disconnected)
}

#[cfg(test)]
mod tests {
    use super::still_ours;

    #[test]
    fn an_address_that_is_gone_is_noticed() {
        assert!(still_ours([127, 0, 0, 1].into()));
        // A documentation address no machine here has.
        assert!(!still_ours([192, 0, 2, 77].into()));
    }
}
