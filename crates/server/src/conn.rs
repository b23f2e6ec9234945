//! One WebSocket connection: limits first, then sign-in, then requests.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use beckon_core::registry::{CallRequest, InviteRequest};
use beckon_protocol::{
    DeviceId, ErrorBody, ErrorCode, Event, Reply, Request, RequestId, ServerMessage, Session,
    SessionCloseReason, SessionToken, UserId, UserProfile, decode_client_message, limits,
    peek_request_id,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};

use crate::AppState;
use crate::auth;
use crate::hub::{ConnId, Hub, Outbox, unix_ms};
use crate::ratelimit::TokenBucket;
use crate::store::{StoreError, UserRow};

/// Messages the hub may queue for one connection before it counts as too
/// slow and is dropped.
const OUTBOX_CAPACITY: usize = 512;
/// Messages over the rate limit in a row after which a connection is
/// closed for abuse.
const MAX_EXCESS: u32 = 200;
/// How long a closing connection waits for the client to read its last
/// frames and answer the close.
const LINGER: Duration = Duration::from_secs(1);

struct Signed {
    user: UserId,
    device: DeviceId,
    token_hash: Vec<u8>,
    expires_at: i64,
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// What a handled message asks of the loop.
enum Next {
    Continue,
    Close(SessionCloseReason),
}

struct Conn<H: Hub> {
    state: AppState<H>,
    id: ConnId,
    sink: Sink,
    outbox: Outbox,
    signed: Option<Signed>,
    bucket: TokenBucket,
    excess: u32,
    logged_out: bool,
}

/// Serves one upgraded socket until it closes.
pub(crate) async fn serve<H: Hub>(socket: WebSocket, state: AppState<H>) {
    let metrics = state.metrics.clone();
    metrics.connections.fetch_add(1, Ordering::Relaxed);
    let id = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel(OUTBOX_CAPACITY);
    let close = Arc::new(Notify::new());
    let mut shutdown = state.shutdown.clone();
    let bucket = TokenBucket::new(
        state.config.rate_burst,
        state.config.rate_per_sec,
        Instant::now(),
    );
    let mut conn = Conn {
        state,
        id,
        sink,
        outbox: Outbox {
            tx,
            close: close.clone(),
        },
        signed: None,
        bucket,
        excess: 0,
        logged_out: false,
    };
    let mut ping = tokio::time::interval(conn.state.config.ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let reason = loop {
        tokio::select! {
            incoming = stream.next() => {
                last_heard = Instant::now();
                let msg = match incoming {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        tracing::debug!(conn = id, error = %e, "socket error");
                        if is_too_big(e) {
                            let frame = CloseFrame {
                                code: 1009,
                                reason: Utf8Bytes::from_static("message too big"),
                            };
                            let _ = conn.sink.send(Message::Close(Some(frame))).await;
                            // The rest of the frame stays unread, so closing
                            // the socket resets the connection. Give the
                            // client time to read the close frame first.
                            tokio::time::sleep(LINGER).await;
                        }
                        break None;
                    }
                    None => break None,
                };
                match msg {
                    Message::Text(text) => match conn.on_text(&text).await {
                        Next::Continue => {}
                        Next::Close(reason) => break Some(reason),
                    },
                    Message::Binary(_) => match conn.over_limit(None).await {
                        Some(Next::Close(reason)) => break Some(reason),
                        Some(Next::Continue) => {}
                        None => {
                            conn.error(None, ErrorCode::Invalid, "binary frames are not part of the protocol; send JSON text").await;
                        }
                    },
                    Message::Close(_) => break None,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            Some(msg) = rx.recv() => {
                let closing = matches!(&msg, ServerMessage::Event { event: Event::SessionClosed { .. } });
                if conn.write(&msg).await.is_err() || closing {
                    break None;
                }
            }
            () = close.notified() => {
                // Replaced or too slow: flush what is queued (the reason is
                // in there), then go.
                while let Ok(msg) = rx.try_recv() {
                    if conn.write(&msg).await.is_err() { break; }
                }
                break None;
            }
            _ = shutdown.changed() => break Some(SessionCloseReason::ServerShutdown),
            _ = ping.tick() => {
                if last_heard.elapsed() > conn.state.config.ping_interval * 3 {
                    tracing::debug!(conn = id, "no traffic; dropping");
                    break None;
                }
                if conn.sink.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some(reason) = reason {
        let _ = conn
            .write(&ServerMessage::Event {
                event: Event::SessionClosed { reason },
            })
            .await;
        let frame = CloseFrame {
            code: close_code(reason),
            reason: Utf8Bytes::from_static(""),
        };
        let _ = conn.sink.send(Message::Close(Some(frame))).await;
    }
    let _ = conn.sink.close().await;
    // Read and drop what the client still sends until its close frame
    // arrives: closing a socket with unread input resets the connection,
    // and the client can then lose our last frames before it reads them.
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    if let Some(s) = conn.signed.take() {
        conn.state.metrics.sessions.fetch_sub(1, Ordering::Relaxed);
        let went_offline = conn
            .state
            .hub
            .detach(s.user.clone(), s.device, id, false)
            .await;
        if went_offline {
            conn.announce(&s.user, false).await;
        }
    }
    metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Whether a read failed because a frame or message was over the size limit.
fn is_too_big(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

fn close_code(reason: SessionCloseReason) -> u16 {
    match reason {
        SessionCloseReason::ServerShutdown => 1001,
        SessionCloseReason::Abuse => 1008,
        _ => 1000,
    }
}

impl<H: Hub> Conn<H> {
    /// Counts one incoming message against the rate limit. `Some` when it is
    /// over: the message was answered with `rate_limited` (or the connection
    /// must close for abuse) and must not be carried out.
    async fn over_limit(&mut self, text: Option<&str>) -> Option<Next> {
        self.state
            .metrics
            .messages_in
            .fetch_add(1, Ordering::Relaxed);
        if self.bucket.take(Instant::now()) {
            self.excess = 0;
            return None;
        }
        self.excess += 1;
        if self.excess > MAX_EXCESS {
            tracing::warn!(conn = self.id, "rate limit exceeded persistently; closing");
            return Some(Next::Close(SessionCloseReason::Abuse));
        }
        let id = text.and_then(peek_request_id);
        self.error(id, ErrorCode::RateLimited, "too many messages; slow down")
            .await;
        Some(Next::Continue)
    }

    async fn on_text(&mut self, text: &str) -> Next {
        if let Some(next) = self.over_limit(Some(text)).await {
            return next;
        }
        let msg = match decode_client_message(text) {
            Ok(msg) => msg,
            Err((id, body)) => {
                self.error(id, body.code, body.message).await;
                return Next::Continue;
            }
        };
        let id = msg.id;
        if let Some(s) = &self.signed
            && s.expires_at < unix_ms()
        {
            return Next::Close(SessionCloseReason::Expired);
        }
        match self.on_request(id, msg.request).await {
            Ok(Some(reply)) => {
                let signed_in = matches!(reply, Reply::Session(_));
                let _ = self.write(&ServerMessage::Reply { id, reply }).await;
                if signed_in {
                    self.attach().await;
                }
                if self.logged_out {
                    return Next::Close(SessionCloseReason::LoggedOut);
                }
            }
            Ok(None) => {}
            Err(e) => self.error(Some(id), e.code, e.message).await,
        }
        Next::Continue
    }

    /// Handles one request. `Ok(None)`: the hub answers.
    async fn on_request(
        &mut self,
        id: RequestId,
        request: Request,
    ) -> Result<Option<Reply>, ErrorBody> {
        if request.is_pre_auth() {
            return self.on_pre_auth(request).await.map(Some);
        }
        let Some(signed) = &self.signed else {
            return Err(ErrorBody::new(
                ErrorCode::Unauthorized,
                "sign in first (register, login or resume)",
            ));
        };
        let (me, device) = (signed.user.clone(), signed.device.clone());
        let store = self.state.store.clone();
        let reply = match request {
            Request::Logout => {
                let hash = signed.token_hash.clone();
                store
                    .run(move |s| s.delete_session(&hash))
                    .await
                    .map_err(internal)?;
                let s = self.signed.take().expect("signed in");
                self.state.metrics.sessions.fetch_sub(1, Ordering::Relaxed);
                self.state
                    .hub
                    .detach(s.user.clone(), s.device, self.id, true)
                    .await;
                self.announce_offline_if_gone(&s.user).await;
                self.logged_out = true;
                Reply::Done
            }
            Request::IceServers => {
                let now = u64::try_from(unix_ms() / 1000).unwrap_or(0);
                Reply::IceServers {
                    servers: self.state.config.ice.servers_for(&me, now),
                }
            }
            Request::UpdateProfile {
                display_name,
                avatar_url,
            } => {
                let who = me.clone();
                let row = store
                    .run(move |s| {
                        s.update_profile(&who, display_name.as_ref(), avatar_url.as_ref())?;
                        s.user(&who)
                    })
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| {
                        ErrorBody::new(ErrorCode::NotFound, "your account no longer exists")
                    })?;
                Reply::Profile {
                    profile: self.profile(row),
                }
            }
            Request::SearchUsers { query, limit } => {
                let limit = limit.unwrap_or(20).clamp(1, limits::MAX_PAGE);
                let rows = store
                    .run(move |s| s.search(query.as_str(), limit))
                    .await
                    .map_err(internal)?;
                Reply::Users {
                    users: rows.into_iter().map(|r| self.profile(r)).collect(),
                    unknown: vec![],
                }
            }
            Request::GetUsers { users } => {
                limits::check_user_count(users.len())?;
                let asked = users.clone();
                let rows = store
                    .run(move |s| s.users(&asked))
                    .await
                    .map_err(internal)?;
                let unknown = users
                    .into_iter()
                    .filter(|u| !rows.iter().any(|r| &r.id == u))
                    .collect();
                Reply::Users {
                    users: rows.into_iter().map(|r| self.profile(r)).collect(),
                    unknown,
                }
            }
            Request::Contacts => {
                let rows = store
                    .run(move |s| s.contacts(&me))
                    .await
                    .map_err(internal)?;
                Reply::Users {
                    users: rows.into_iter().map(|r| self.profile(r)).collect(),
                    unknown: vec![],
                }
            }
            Request::AddContact { user } => {
                if user == me {
                    return Err(ErrorBody::new(
                        ErrorCode::Invalid,
                        "you cannot add yourself as a contact",
                    ));
                }
                let now = unix_ms();
                let added = store
                    .run(move |s| match s.user(&user)? {
                        Some(_) => s.add_contact(&me, &user, now).map(|()| true),
                        None => Ok(false),
                    })
                    .await
                    .map_err(internal)?;
                if !added {
                    return Err(ErrorBody::new(ErrorCode::NotFound, "no such user"));
                }
                Reply::Done
            }
            Request::RemoveContact { user } => {
                store
                    .run(move |s| s.remove_contact(&me, &user))
                    .await
                    .map_err(internal)?;
                Reply::Done
            }
            Request::History { before, limit } => {
                let limit = limit.unwrap_or(20).clamp(1, limits::MAX_PAGE);
                let (entries, next_before) = store
                    .run(move |s| s.history(&me, before, limit))
                    .await
                    .map_err(internal)?;
                Reply::History {
                    entries,
                    next_before,
                }
            }
            Request::MissedCount => {
                let count = store
                    .run(move |s| s.missed_count(&me))
                    .await
                    .map_err(internal)?;
                Reply::MissedCount { count }
            }
            Request::MarkHistorySeen => {
                let now = unix_ms();
                store
                    .run(move |s| s.mark_history_seen(&me, now))
                    .await
                    .map_err(internal)?;
                Reply::Done
            }
            request => {
                let call_request = self.call_request(request).await?;
                self.state.hub.request(me, device, id, call_request).await;
                return Ok(None);
            }
        };
        Ok(Some(reply))
    }

    /// Turns a protocol call request into the registry's, adding a fresh
    /// call id and which users have no account.
    async fn call_request(&self, request: Request) -> Result<CallRequest, ErrorBody> {
        Ok(match request {
            Request::Invite {
                users,
                kind,
                timeout_secs,
                extended_data,
            } => {
                limits::check_user_count(users.len())?;
                let (users, unknown) = self.split_known(users).await?;
                CallRequest::Invite(InviteRequest {
                    call_id: auth::new_call_id(),
                    users,
                    unknown,
                    kind,
                    timeout_secs,
                    extended_data,
                })
            }
            Request::Add { call_id, users } => {
                limits::check_user_count(users.len())?;
                let (users, unknown) = self.split_known(users).await?;
                CallRequest::Add {
                    call_id,
                    users,
                    unknown,
                }
            }
            Request::Cancel {
                call_id,
                users,
                extended_data,
            } => CallRequest::Cancel {
                call_id,
                users,
                extended_data,
            },
            Request::Accept {
                call_id,
                extended_data,
            } => CallRequest::Accept {
                call_id,
                extended_data,
            },
            Request::Reject {
                call_id,
                reason,
                extended_data,
            } => CallRequest::Reject {
                call_id,
                reason,
                extended_data,
            },
            Request::Quit {
                call_id,
                extended_data,
            } => CallRequest::Quit {
                call_id,
                extended_data,
            },
            Request::End {
                call_id,
                extended_data,
            } => CallRequest::End {
                call_id,
                extended_data,
            },
            Request::Join { call_id } => CallRequest::Join { call_id },
            Request::CallStatus { call_id } => CallRequest::Status { call_id },
            Request::Signal {
                call_id,
                to,
                signal,
            } => CallRequest::Signal {
                call_id,
                to,
                signal,
            },
            other => {
                return Err(ErrorBody::new(
                    ErrorCode::Invalid,
                    format!("{} is not supported here", other.name()),
                ));
            }
        })
    }

    async fn split_known(
        &self,
        users: Vec<beckon_protocol::UserId>,
    ) -> Result<(Vec<UserId>, Vec<UserId>), ErrorBody> {
        let asked = users.clone();
        let rows = self
            .state
            .store
            .run(move |s| s.users(&asked))
            .await
            .map_err(internal)?;
        Ok(users
            .into_iter()
            .partition(|u| rows.iter().any(|r| &r.id == u)))
    }

    async fn on_pre_auth(&mut self, request: Request) -> Result<Reply, ErrorBody> {
        if matches!(request, Request::Ping) {
            return Ok(Reply::Pong);
        }
        if self.signed.is_some() {
            return Err(ErrorBody::new(
                ErrorCode::Invalid,
                "already signed in on this connection",
            ));
        }
        let cost = self.state.config.password_cost;
        let store = self.state.store.clone();
        let (user, device, token, resumed) = match request {
            Request::Register {
                version,
                user,
                password,
                display_name,
                device,
            } => {
                check_version(version)?;
                if password.expose().len() < limits::PASSWORD_MIN_BYTES {
                    return Err(ErrorBody::new(
                        ErrorCode::Invalid,
                        format!(
                            "password: must be at least {} bytes",
                            limits::PASSWORD_MIN_BYTES
                        ),
                    ));
                }
                let who = user.clone();
                let hash = self
                    .hashing(move |m| auth::hash_password(password.expose(), cost, m))
                    .await?
                    .map_err(|e| internal(StoreError::Task(e)))?;
                store
                    .run(move |s| s.create_user(&who, &display_name, &hash, unix_ms()))
                    .await
                    .map_err(|e| match e {
                        StoreError::UserExists => {
                            ErrorBody::new(ErrorCode::UserExists, "that user id is taken")
                        }
                        e => internal(e),
                    })?;
                tracing::info!(%user, "account created");
                let token = self.new_session(&user, &device).await?;
                (user, device, token, false)
            }
            Request::Login {
                version,
                user,
                password,
                device,
            } => {
                check_version(version)?;
                let who = user.clone();
                let stored = store
                    .run(move |s| s.password_hash(&who))
                    .await
                    .map_err(internal)?;
                let ok = self
                    .hashing(move |m| {
                        auth::verify_password(password.expose(), stored.as_deref(), cost, m)
                    })
                    .await?;
                if !ok {
                    tracing::info!(%user, "failed sign-in");
                    return Err(ErrorBody::new(
                        ErrorCode::Unauthorized,
                        "wrong user id or password",
                    ));
                }
                let token = self.new_session(&user, &device).await?;
                (user, device, token, false)
            }
            Request::Resume {
                version,
                token,
                device,
            } => {
                check_version(version)?;
                let hash = auth::token_hash(&token);
                let row = store
                    .run(move |s| s.session(&hash))
                    .await
                    .map_err(internal)?;
                let expired = |e: &str| ErrorBody::new(ErrorCode::Unauthorized, e.to_owned());
                let row = row.ok_or_else(|| expired("unknown session; sign in again"))?;
                if row.expires_at < unix_ms() {
                    return Err(expired("the session expired; sign in again"));
                }
                if row.device != device {
                    return Err(expired("that session belongs to another device"));
                }
                (row.user, device, token, true)
            }
            _ => return Err(ErrorBody::new(ErrorCode::Invalid, "not a sign-in request")),
        };
        self.sign_in(user, device, token, resumed).await
    }

    /// Runs a password hash on a blocking thread when its turn comes (one
    /// per core at once), with argon2 memory reused from earlier turns; or
    /// `rate_limited` when too many sign-ins already wait for a turn.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut auth::Memory) -> T + Send + 'static,
    ) -> Result<T, ErrorBody> {
        let gate = &self.state.hash_gate;
        let _turn = gate.enter().await.map_err(|_| {
            tracing::debug!("sign-in refused: too many waiting for a password hash");
            ErrorBody::new(
                ErrorCode::RateLimited,
                "the server is busy signing others in; retry in a moment",
            )
        })?;
        let mut memory = gate.take_memory();
        let (out, memory) = tokio::task::spawn_blocking(move || {
            let out = f(&mut memory);
            (out, memory)
        })
        .await
        .map_err(|e| internal(StoreError::Task(e.to_string())))?;
        gate.put_memory(memory);
        Ok(out)
    }

    async fn new_session(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<SessionToken, ErrorBody> {
        let token = auth::new_token();
        let hash = auth::token_hash(&token);
        let now = unix_ms();
        let expires = now + self.state.config.session_ttl.as_millis() as i64;
        let (u, d) = (user.clone(), device.clone());
        self.state
            .store
            .run(move |s| s.create_session(&hash, &u, &d, now, expires))
            .await
            .map_err(internal)?;
        Ok(token)
    }

    /// Sends the `session` reply first, then attaches to the hub (which may
    /// follow up with the device's call), then announces presence.
    async fn sign_in(
        &mut self,
        user: UserId,
        device: DeviceId,
        token: SessionToken,
        resumed: bool,
    ) -> Result<Reply, ErrorBody> {
        let hash = auth::token_hash(&token);
        let who = user.clone();
        let row = self.state.store.run(move |s| {
            let row = s.user(&who)?;
            let session = s.session(&hash)?;
            Ok(row.zip(session))
        });
        let (row, session) = row.await.map_err(internal)?.ok_or_else(|| {
            ErrorBody::new(ErrorCode::Unauthorized, "the account no longer exists")
        })?;
        let now_secs = u64::try_from(unix_ms() / 1000).unwrap_or(0);
        let reply = Reply::Session(Session {
            profile: UserProfile {
                online: true,
                ..self.profile(row)
            },
            device: device.clone(),
            token,
            expires_at_ms: session.expires_at,
            resumed,
            version: beckon_protocol::PROTOCOL_VERSION,
            ice_servers: self.state.config.ice.servers_for(&user, now_secs),
        });
        self.signed = Some(Signed {
            user: user.clone(),
            device: device.clone(),
            token_hash: auth::token_hash(match &reply {
                Reply::Session(s) => &s.token,
                _ => unreachable!(),
            }),
            expires_at: session.expires_at,
        });
        self.state.metrics.sessions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%user, %device, resumed, "signed in");
        Ok(reply)
    }

    /// After the session reply is out: join the hub and tell watchers.
    async fn attach(&mut self) {
        let Some(s) = &self.signed else { return };
        let (user, device) = (s.user.clone(), s.device.clone());
        let came_online = self
            .state
            .hub
            .attach(user.clone(), device, self.id, self.outbox.clone())
            .await;
        if came_online {
            self.announce(&user, true).await;
        }
    }

    async fn announce_offline_if_gone(&self, user: &UserId) {
        if !self.state.hub.is_online(user) {
            self.announce(user, false).await;
        }
    }

    /// Tells everyone who has `user` as a contact that it came or went.
    async fn announce(&self, user: &UserId, online: bool) {
        let who = user.clone();
        match self.state.store.run(move |s| s.watchers(&who)).await {
            Ok(watchers) if !watchers.is_empty() => {
                self.state
                    .hub
                    .notify(
                        watchers,
                        Event::Presence {
                            user: user.clone(),
                            online,
                        },
                    )
                    .await;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "presence lookup failed"),
        }
    }

    fn profile(&self, row: UserRow) -> UserProfile {
        UserProfile {
            online: self.state.hub.is_online(&row.id),
            id: row.id,
            display_name: row.display_name,
            avatar_url: row.avatar_url,
        }
    }

    async fn write(&mut self, msg: &ServerMessage) -> Result<(), axum::Error> {
        let text = serde_json::to_string(msg).expect("server messages always serialize");
        self.state
            .metrics
            .messages_out
            .fetch_add(1, Ordering::Relaxed);
        self.sink.send(Message::Text(text.into())).await
    }

    async fn error(&mut self, id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) {
        self.state.metrics.error(code);
        let _ = self.write(&ServerMessage::error(id, code, message)).await;
    }
}

fn check_version(version: u32) -> Result<(), ErrorBody> {
    if version != beckon_protocol::PROTOCOL_VERSION {
        return Err(ErrorBody::new(
            ErrorCode::VersionMismatch,
            format!(
                "this server speaks protocol version {}, the client {version}; update the app",
                beckon_protocol::PROTOCOL_VERSION
            ),
        ));
    }
    Ok(())
}

fn internal(e: StoreError) -> ErrorBody {
    tracing::error!(error = %e, "store failed");
    ErrorBody::new(
        ErrorCode::Internal,
        "the server could not complete this; try again",
    )
}
