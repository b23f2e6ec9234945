//! Beckon's async signaling client: connects, signs in, reconnects with
//! backoff and resumes its session (a short drop does not end a call), and
//! turns the server's events into the call manager's notices.
//!
//! ```no_run
//! # async fn run() -> Result<(), beckon_client::ClientError> {
//! use beckon_client::{Client, ClientConfig, ClientEvent, Credentials};
//! use beckon_protocol::{CallKind, UserId};
//!
//! let config = ClientConfig::new(
//!     "ws://127.0.0.1:7600/ws",
//!     "laptop".parse().unwrap(),
//!     Credentials::login("alice".parse().unwrap(), "correct horse".parse().unwrap()),
//! );
//! let (client, mut events) = Client::connect(config).await?;
//! client.invite(vec!["bob".parse().unwrap()], CallKind::Video, None).await?;
//! while let Some(event) = events.recv().await {
//!     if let ClientEvent::Notice(notice) = event { println!("{notice:?}"); }
//! }
//! # Ok(()) }
//! ```

mod conn;
mod error;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use beckon_protocol::{
    AvatarUrl, CallId, CallInfo, CallKind, DeviceId, DisplayName, ExtendedData, HistoryEntry,
    IceServer, Password, RejectReason, Reply, Request, SearchQuery, Session, SessionCloseReason,
    Signal, UserId, UserProfile, UserResult,
};
use tokio::sync::{mpsc, oneshot};

/// What the call manager tells a client's user, the current call and its
/// phase, and the rule for how a call went for each member: the client's
/// users need these and nothing else of beckon-core.
pub use beckon_core::manager::{CurrentCall, Notice, Phase};
pub use beckon_core::outcome::{MemberEnd, outcome};
pub use error::ClientError;

/// How to sign in the first time. Later reconnects resume with the token.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Create the account, then sign in.
    Register {
        /// Login name.
        user: UserId,
        /// At least 8 bytes.
        password: Password,
        /// Shown name.
        display_name: DisplayName,
    },
    /// Sign in to an existing account.
    Login {
        /// Login name.
        user: UserId,
        /// Password.
        password: Password,
    },
    /// Continue a saved session.
    Token(beckon_protocol::SessionToken),
}

impl Credentials {
    /// Sign in as `user`.
    pub fn login(user: UserId, password: Password) -> Self {
        Self::Login { user, password }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://host:port/ws` or `wss://…`.
    pub url: String,
    /// This installation.
    pub device: DeviceId,
    /// First sign-in.
    pub credentials: Credentials,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
    /// A request without an answer this long fails with `Timeout`.
    pub request_timeout: Duration,
    /// Without any traffic from the server this long, the connection counts
    /// as dead and is replaced.
    pub silence_timeout: Duration,
}

impl ClientConfig {
    /// Defaults for everything but where and who.
    pub fn new(url: impl Into<String>, device: DeviceId, credentials: Credentials) -> Self {
        Self {
            url: url.into(),
            device,
            credentials,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
            silence_timeout: Duration::from_secs(70),
        }
    }
}

/// What the client tells its owner.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Signed in (the first time, or again after a reconnect).
    Connected {
        /// The session.
        session: Box<Session>,
    },
    /// The connection dropped; the client is reconnecting.
    Disconnected {
        /// What happened.
        reason: String,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// A call notice from the call manager (incoming call, member change,
    /// call started or ended, …).
    Notice(Notice),
    /// Media signaling from another member of the current call.
    Signal {
        /// The call.
        call_id: CallId,
        /// Who sent it.
        from: UserId,
        /// What.
        signal: Signal,
    },
    /// A contact came online or went offline.
    Presence {
        /// Who.
        user: UserId,
        /// Online now.
        online: bool,
    },
    /// The session is over and the client stopped: signed out, replaced by
    /// another sign-in of this device, expired, or refused.
    Stopped {
        /// Why.
        reason: StopReason,
    },
}

/// Why the client stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The server closed the session.
    Closed(SessionCloseReason),
    /// Sign-in was refused (wrong password, unknown or expired token).
    Refused(String),
    /// The owner dropped the client or called `close`.
    Dropped,
}

/// The result of `invite`, `add` and `cancel`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    /// The call as it now stands.
    pub call: CallInfo,
    /// Per user named.
    pub results: Vec<UserResult>,
    /// The invite joined an invitation ringing the other way.
    pub merged: bool,
}

pub(crate) struct Command {
    pub(crate) request: Request,
    pub(crate) reply: oneshot::Sender<Result<Reply, ClientError>>,
}

/// State the task shares with the handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) session: Option<Session>,
    pub(crate) current: Option<CurrentCall>,
}

/// A handle to the signaling connection. Cheap to clone; the connection
/// stops when every handle is dropped or `close` is called.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    shared: Arc<Mutex<Shared>>,
    timeout: Duration,
}

impl Client {
    /// Connects and signs in. Returns once signed in, or with the reason
    /// the first sign-in failed; reconnects on its own after that.
    pub async fn connect(
        config: ClientConfig,
    ) -> Result<(Client, mpsc::Receiver<ClientEvent>), ClientError> {
        let (commands, command_rx) = mpsc::channel(256);
        let (events, event_rx) = mpsc::channel(1024);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let timeout = config.request_timeout;
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(conn::run(
            config,
            command_rx,
            events,
            shared.clone(),
            ready_tx,
        ));
        ready_rx.await.map_err(|_| ClientError::Closed)??;
        Ok((
            Client {
                commands,
                shared,
                timeout,
            },
            event_rx,
        ))
    }

    /// Sends any request and waits for its answer.
    pub async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command { request, reply })
            .await
            .map_err(|_| ClientError::Closed)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout),
        }
    }

    /// The current session, once signed in.
    pub fn session(&self) -> Option<Session> {
        self.lock().session.clone()
    }

    /// Who we are signed in as.
    pub fn me(&self) -> Option<UserId> {
        self.lock().session.as_ref().map(|s| s.profile.id.clone())
    }

    /// The call we are in, calling from, or being rung for.
    pub fn current_call(&self) -> Option<CurrentCall> {
        self.lock().current.clone()
    }

    /// Calling, being called, or in a call.
    pub fn is_busy(&self) -> bool {
        self.lock().current.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rings `users` in a new call (or joins a call they are ringing us in).
    pub async fn invite(
        &self,
        users: Vec<UserId>,
        kind: CallKind,
        timeout_secs: Option<u32>,
    ) -> Result<Invitation, ClientError> {
        let request = Request::Invite {
            users,
            kind,
            timeout_secs,
            extended_data: ExtendedData::default(),
        };
        invitation(self.request(request).await?)
    }

    /// Rings more users into the current call.
    pub async fn add(
        &self,
        call_id: CallId,
        users: Vec<UserId>,
    ) -> Result<Invitation, ClientError> {
        invitation(self.request(Request::Add { call_id, users }).await?)
    }

    /// Takes back invitations we sent (all of ours when `users` is `None`).
    pub async fn cancel(
        &self,
        call_id: CallId,
        users: Option<Vec<UserId>>,
    ) -> Result<Invitation, ClientError> {
        let request = Request::Cancel {
            call_id,
            users,
            extended_data: ExtendedData::default(),
        };
        invitation(self.request(request).await?)
    }

    /// Accepts an invitation.
    pub async fn accept(&self, call_id: CallId) -> Result<CallInfo, ClientError> {
        call(
            self.request(Request::Accept {
                call_id,
                extended_data: ExtendedData::default(),
            })
            .await?,
        )
    }

    /// Declines an invitation.
    pub async fn reject(&self, call_id: CallId, reason: RejectReason) -> Result<(), ClientError> {
        let request = Request::Reject {
            call_id,
            reason,
            extended_data: ExtendedData::default(),
        };
        done(self.request(request).await?)
    }

    /// Leaves the call; it goes on for the others.
    pub async fn quit(&self, call_id: CallId) -> Result<(), ClientError> {
        done(
            self.request(Request::Quit {
                call_id,
                extended_data: ExtendedData::default(),
            })
            .await?,
        )
    }

    /// Ends the call for everyone.
    pub async fn end(&self, call_id: CallId) -> Result<(), ClientError> {
        done(
            self.request(Request::End {
                call_id,
                extended_data: ExtendedData::default(),
            })
            .await?,
        )
    }

    /// Comes back to a call we quit, or moves it to this device.
    pub async fn join(&self, call_id: CallId) -> Result<CallInfo, ClientError> {
        call(self.request(Request::Join { call_id }).await?)
    }

    /// Sends media signaling to another member of the call.
    pub async fn signal(
        &self,
        call_id: CallId,
        to: UserId,
        signal: Signal,
    ) -> Result<(), ClientError> {
        done(
            self.request(Request::Signal {
                call_id,
                to,
                signal,
            })
            .await?,
        )
    }

    /// Our contacts with presence.
    pub async fn contacts(&self) -> Result<Vec<UserProfile>, ClientError> {
        users(self.request(Request::Contacts).await?)
    }

    /// Adds a contact.
    pub async fn add_contact(&self, user: UserId) -> Result<(), ClientError> {
        done(self.request(Request::AddContact { user }).await?)
    }

    /// Removes a contact.
    pub async fn remove_contact(&self, user: UserId) -> Result<(), ClientError> {
        done(self.request(Request::RemoveContact { user }).await?)
    }

    /// Finds users by id or name.
    pub async fn search(&self, query: SearchQuery) -> Result<Vec<UserProfile>, ClientError> {
        users(
            self.request(Request::SearchUsers { query, limit: None })
                .await?,
        )
    }

    /// Profiles of the users named.
    pub async fn get_users(&self, ids: Vec<UserId>) -> Result<Vec<UserProfile>, ClientError> {
        users(self.request(Request::GetUsers { users: ids }).await?)
    }

    /// Changes how others see us.
    pub async fn update_profile(
        &self,
        display_name: Option<DisplayName>,
        avatar_url: Option<AvatarUrl>,
    ) -> Result<UserProfile, ClientError> {
        match self
            .request(Request::UpdateProfile {
                display_name,
                avatar_url,
            })
            .await?
        {
            Reply::Profile { profile } => Ok(profile),
            other => Err(ClientError::unexpected(&other)),
        }
    }

    /// A page of call history, newest first, and the cursor of the next.
    pub async fn history(
        &self,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> Result<(Vec<HistoryEntry>, Option<i64>), ClientError> {
        match self.request(Request::History { before, limit }).await? {
            Reply::History {
                entries,
                next_before,
            } => Ok((entries, next_before)),
            other => Err(ClientError::unexpected(&other)),
        }
    }

    /// Missed calls since history was last marked as seen.
    pub async fn missed_count(&self) -> Result<u32, ClientError> {
        match self.request(Request::MissedCount).await? {
            Reply::MissedCount { count } => Ok(count),
            other => Err(ClientError::unexpected(&other)),
        }
    }

    /// Marks the history as seen.
    pub async fn mark_history_seen(&self) -> Result<(), ClientError> {
        done(self.request(Request::MarkHistorySeen).await?)
    }

    /// STUN/TURN servers with fresh credentials.
    pub async fn ice_servers(&self) -> Result<Vec<IceServer>, ClientError> {
        match self.request(Request::IceServers).await? {
            Reply::IceServers { servers } => Ok(servers),
            other => Err(ClientError::unexpected(&other)),
        }
    }

    /// Signs out (the token stops working) and stops the client.
    pub async fn logout(&self) -> Result<(), ClientError> {
        done(self.request(Request::Logout).await?)
    }
}

fn invitation(reply: Reply) -> Result<Invitation, ClientError> {
    match reply {
        Reply::Invitation {
            call,
            results,
            merged,
        } => Ok(Invitation {
            call,
            results,
            merged,
        }),
        other => Err(ClientError::unexpected(&other)),
    }
}

fn call(reply: Reply) -> Result<CallInfo, ClientError> {
    match reply {
        Reply::Call { call } => Ok(call),
        other => Err(ClientError::unexpected(&other)),
    }
}

fn done(reply: Reply) -> Result<(), ClientError> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(ClientError::unexpected(&other)),
    }
}

fn users(reply: Reply) -> Result<Vec<UserProfile>, ClientError> {
    match reply {
        Reply::Users { users, .. } => Ok(users),
        other => Err(ClientError::unexpected(&other)),
    }
}
