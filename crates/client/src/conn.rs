//! The connection task: connect, sign in, serve, and on a drop reconnect
//! with backoff and resume.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beckon_core::manager::{CallManager, Input, Notice, Output};
use beckon_protocol::{
    ClientMessage, ErrorBody, ErrorCode, Event, PROTOCOL_VERSION, Reply, Request, RequestId,
    ServerMessage, SessionCloseReason, SessionToken, limits,
};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{ClientConfig, ClientError, ClientEvent, Command, Credentials, Shared, StopReason};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A TCP connection to the server of a `ws://` or `wss://` address, set up
/// for signaling: no Nagle delay (a reply followed at once by an event would
/// wait for the server's delayed ACK) and, on Linux, thin-stream
/// retransmissions. Signaling keeps a packet or two in flight, too few for
/// fast retransmit, so each loss waits for the retransmission timer, which
/// otherwise doubles at every loss of the same packet; with thin-stream
/// timeouts the first six retransmissions keep the same interval. (Through
/// 30 % loss an SDP answer took up to 1.4 s to cross with or without it:
/// docs/network.md.)
async fn tcp_to(uri: &Uri) -> std::io::Result<TcpStream> {
    use std::io::{Error, ErrorKind};
    let host = uri
        .host()
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "no host"))?;
    // An IPv6 literal comes in brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    #[cfg(target_os = "linux")]
    if let Err(error) = socket2::SockRef::from(&tcp).set_tcp_thin_linear_timeouts(true) {
        tracing::debug!(%error, "cannot set TCP_THIN_LINEAR_TIMEOUTS");
    }
    Ok(tcp)
}

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

/// A request in flight.
struct Pending {
    /// Who waits for the answer (none for the manager's own requests).
    reply: Option<oneshot::Sender<Result<Reply, ClientError>>>,
    /// A `logout`: its answer ends the session.
    logout: bool,
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
    /// The manager's notices, handed on after the answer that caused them.
    notices: Vec<Notice>,
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
        notices: Vec::new(),
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
        let connect = async {
            let request = self
                .config
                .url
                .as_str()
                .into_client_request()
                .map_err(|e| e.to_string())?;
            let tcp = tcp_to(request.uri())
                .await
                .map_err(|e| format!("{}: {e}", request.uri()))?;
            tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(ws_config), None)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.config.request_timeout, connect).await {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => Err(ClientError::Connect(e)),
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
                    // A new session starts without the old one's calls.
                    let asked = self.feed(Input::NewSession);
                    debug_assert!(asked.is_empty(), "a new session asks for nothing");
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
        // After a resume, the manager asks whether its call is still on.
        let asked = self.feed(Input::Connected);
        if let Err(outcome) = self.send_asked(&mut ws, &mut pending, asked).await {
            return outcome;
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
                    let logout = matches!(request, Request::Logout);
                    let id = self.id();
                    let asked = self.feed(Input::Sent { id, request: &request });
                    debug_assert!(asked.is_empty(), "sending asks for nothing");
                    if let Err(e) = send(&mut ws, &ClientMessage { id, request }).await {
                        let _ = reply.send(Err(e));
                        break Outcome::Lost("send failed".into());
                    }
                    pending.insert(id, Pending { reply: Some(reply), logout });
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
        self.feed(Input::Disconnected);
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
                // The manager (and the shared copy of the current call)
                // first: whoever awaits this reply may ask for the current
                // call the moment it arrives.
                let asked = self.feed(Input::Answered {
                    id,
                    result: Ok(&reply),
                });
                if let Some(tx) = p.reply {
                    let _ = tx.send(Ok(reply));
                }
                if let Err(outcome) = self.send_asked(ws, pending, asked).await {
                    return Some(outcome);
                }
                if p.logout {
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
                let asked = self.feed(Input::Answered {
                    id,
                    result: Err(error.code),
                });
                if let Some(tx) = p.reply {
                    let _ = tx.send(Err(ClientError::Server(error)));
                }
                if let Err(outcome) = self.send_asked(ws, pending, asked).await {
                    return Some(outcome);
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
                    // The manager's requests (a busy decline) go out at once.
                    let asked = self.feed(Input::Event(&event));
                    if let Err(outcome) = self.send_asked(ws, pending, asked).await {
                        return Some(outcome);
                    }
                }
            },
        }
        self.flush_notices().await;
        None
    }

    /// Feeds the call manager one input: keeps its notices for
    /// [`Task::flush_notices`], updates the shared copy of the current call,
    /// and returns the requests it asks to send.
    fn feed(&mut self, input: Input<'_>) -> Vec<Request> {
        let Some(m) = &mut self.manager else {
            return Vec::new();
        };
        m.handle(input);
        let mut asked = Vec::new();
        while let Some(out) = m.poll_output() {
            match out {
                Output::Notice(n) => self.notices.push(n),
                Output::Send(request) => asked.push(request),
            }
        }
        self.set_current_from_manager();
        asked
    }

    /// Sends the requests the manager asked for, telling it each was sent.
    async fn send_asked(
        &mut self,
        ws: &mut Ws,
        pending: &mut HashMap<RequestId, Pending>,
        asked: Vec<Request>,
    ) -> Result<(), Outcome> {
        for request in asked {
            let id = self.id();
            let more = self.feed(Input::Sent {
                id,
                request: &request,
            });
            debug_assert!(more.is_empty(), "sending asks for nothing");
            pending.insert(
                id,
                Pending {
                    reply: None,
                    logout: false,
                },
            );
            send(ws, &ClientMessage { id, request })
                .await
                .map_err(|_| Outcome::Lost("send failed".into()))?;
        }
        Ok(())
    }

    /// Hands the manager's notices on to the owner.
    async fn flush_notices(&mut self) {
        for n in std::mem::take(&mut self.notices) {
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

    #[tokio::test]
    async fn the_signaling_socket_is_set_up_for_a_thin_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        for url in [
            format!("ws://127.0.0.1:{port}/ws"),
            format!("ws://localhost:{port}"),
        ] {
            let uri: super::Uri = url.parse().unwrap();
            let tcp = super::tcp_to(&uri).await.expect(&url);
            assert!(tcp.nodelay().unwrap());
            #[cfg(target_os = "linux")]
            assert!(
                socket2::SockRef::from(&tcp)
                    .tcp_thin_linear_timeouts()
                    .unwrap()
            );
        }
        let nobody: super::Uri = "ws://[::1]:9".parse().unwrap();
        assert!(
            super::tcp_to(&nobody).await.is_err(),
            "nothing listens there"
        );
    }
}
