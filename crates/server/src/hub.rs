//! Where presence and live calls live: the [`Hub`] trait, and [`LocalHub`],
//! one task that owns `core`'s call registry and drives it with real time.
//!
//! A multi-node deployment implements [`Hub`] over Redis (pub/sub between
//! nodes, one owner node per call, presence in a shared set) without
//! touching `core` or the connection code.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use beckon_core::registry::{CallRecord, CallRequest, Input, Output, Registry, RegistryConfig};
use beckon_protocol::{DeviceId, Event, RequestId, ServerMessage, SessionCloseReason, UserId};
use tokio::sync::{Notify, mpsc};

use crate::metrics::Metrics;
use crate::store::{Store, StoredCall};

/// Identifies one WebSocket connection.
pub type ConnId = u64;

/// How the hub reaches one connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Messages to write, in order.
    pub tx: mpsc::Sender<ServerMessage>,
    /// Tells the connection to close (replaced, or too slow to keep up).
    pub close: Arc<Notify>,
}

/// Presence and live calls, as the connection code sees them.
pub trait Hub: Clone + Send + Sync + 'static {
    /// A device signed in on connection `conn`. Returns true when this made
    /// the user go from offline to online.
    fn attach(
        &self,
        user: UserId,
        device: DeviceId,
        conn: ConnId,
        outbox: Outbox,
    ) -> impl Future<Output = bool> + Send;

    /// Connection `conn` of a device ended (`signed_out`: on purpose, so the
    /// device leaves its call at once). Returns true when the user is now
    /// offline.
    fn detach(
        &self,
        user: UserId,
        device: DeviceId,
        conn: ConnId,
        signed_out: bool,
    ) -> impl Future<Output = bool> + Send;

    /// A call request from a signed-in device; the answer and any events go
    /// out through the outboxes.
    fn request(
        &self,
        user: UserId,
        device: DeviceId,
        id: RequestId,
        request: CallRequest,
    ) -> impl Future<Output = ()> + Send;

    /// Sends `event` to every online device of `users`.
    fn notify(&self, users: Vec<UserId>, event: Event) -> impl Future<Output = ()> + Send;

    /// Whether `user` has a device online.
    fn is_online(&self, user: &UserId) -> bool;
}

enum HubMsg {
    Attach {
        user: UserId,
        device: DeviceId,
        conn: ConnId,
        outbox: Outbox,
        done: tokio::sync::oneshot::Sender<bool>,
    },
    Detach {
        user: UserId,
        device: DeviceId,
        conn: ConnId,
        signed_out: bool,
        done: tokio::sync::oneshot::Sender<bool>,
    },
    Request {
        user: UserId,
        device: DeviceId,
        id: RequestId,
        request: CallRequest,
    },
    Notify {
        users: Vec<UserId>,
        event: Event,
    },
}

/// The single-node hub: one task owning the registry.
#[derive(Debug, Clone)]
pub struct LocalHub {
    tx: mpsc::Sender<HubMsg>,
    online: Arc<RwLock<HashMap<UserId, u32>>>,
}

impl std::fmt::Debug for HubMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Attach { .. } => "Attach",
            Self::Detach { .. } => "Detach",
            Self::Request { .. } => "Request",
            Self::Notify { .. } => "Notify",
        })
    }
}

impl LocalHub {
    /// Starts the hub task. It stops once every handle is dropped.
    pub fn spawn(config: RegistryConfig, store: Store, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let online = Arc::new(RwLock::new(HashMap::new()));
        let task = HubTask {
            registry: Registry::new(config),
            conns: HashMap::new(),
            online: online.clone(),
            history: history_writer(store),
            metrics,
            epoch: (Instant::now(), unix_ms()),
        };
        tokio::spawn(task.run(rx));
        Self { tx, online }
    }

    async fn send(&self, msg: HubMsg) {
        // The hub only stops when every handle is gone, so this cannot fail
        // while `self` exists.
        let _ = self.tx.send(msg).await;
    }
}

impl Hub for LocalHub {
    async fn attach(&self, user: UserId, device: DeviceId, conn: ConnId, outbox: Outbox) -> bool {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.send(HubMsg::Attach {
            user,
            device,
            conn,
            outbox,
            done,
        })
        .await;
        rx.await.unwrap_or(false)
    }

    async fn detach(&self, user: UserId, device: DeviceId, conn: ConnId, signed_out: bool) -> bool {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.send(HubMsg::Detach {
            user,
            device,
            conn,
            signed_out,
            done,
        })
        .await;
        rx.await.unwrap_or(false)
    }

    async fn request(&self, user: UserId, device: DeviceId, id: RequestId, request: CallRequest) {
        self.send(HubMsg::Request {
            user,
            device,
            id,
            request,
        })
        .await;
    }

    async fn notify(&self, users: Vec<UserId>, event: Event) {
        self.send(HubMsg::Notify { users, event }).await;
    }

    fn is_online(&self, user: &UserId) -> bool {
        self.online
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .is_some_and(|n| *n > 0)
    }
}

struct HubTask {
    registry: Registry,
    /// Signed-in connections by user, then device.
    conns: HashMap<UserId, HashMap<DeviceId, (ConnId, Outbox)>>,
    online: Arc<RwLock<HashMap<UserId, u32>>>,
    /// Finished calls, on their way to the database.
    history: mpsc::UnboundedSender<StoredCall>,
    metrics: Arc<Metrics>,
    /// A monotonic instant and the wall clock at that instant, to turn the
    /// registry's instants into history timestamps.
    epoch: (Instant, i64),
}

impl HubTask {
    async fn run(mut self, mut rx: mpsc::Receiver<HubMsg>) {
        loop {
            let deadline = self.registry.poll_timeout();
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                () = sleep_until(deadline) => {
                    self.registry.handle_timeout(now());
                }
            }
            self.drain();
        }
        tracing::debug!("hub stopped");
    }

    fn handle(&mut self, msg: HubMsg) {
        let now = now();
        match msg {
            HubMsg::Attach {
                user,
                device,
                conn,
                outbox,
                done,
            } => {
                let devices = self.conns.entry(user.clone()).or_default();
                if let Some((old, old_box)) = devices.insert(device.clone(), (conn, outbox))
                    && old != conn
                {
                    let _ = old_box.tx.try_send(ServerMessage::Event {
                        event: Event::SessionClosed {
                            reason: SessionCloseReason::Replaced,
                        },
                    });
                    old_box.close.notify_one();
                }
                let came_online = self.recount(&user);
                self.registry.handle(now, Input::Online { user, device });
                let _ = done.send(came_online);
            }
            HubMsg::Detach {
                user,
                device,
                conn,
                signed_out,
                done,
            } => {
                let Some(devices) = self.conns.get_mut(&user) else {
                    let _ = done.send(false);
                    return;
                };
                if devices.get(&device).is_none_or(|(c, _)| *c != conn) {
                    // A replaced connection: its device lives on elsewhere.
                    let _ = done.send(false);
                    return;
                }
                devices.remove(&device);
                if devices.is_empty() {
                    self.conns.remove(&user);
                }
                let online_before = self.is_online(&user);
                self.recount(&user);
                let input = if signed_out {
                    Input::SignedOut {
                        user: user.clone(),
                        device,
                    }
                } else {
                    Input::Offline {
                        user: user.clone(),
                        device,
                    }
                };
                self.registry.handle(now, input);
                let _ = done.send(online_before && !self.is_online(&user));
            }
            HubMsg::Request {
                user,
                device,
                id,
                request,
            } => {
                self.registry.handle(
                    now,
                    Input::Request {
                        user,
                        device,
                        id,
                        request,
                    },
                );
            }
            HubMsg::Notify { users, event } => {
                for user in users {
                    let targets: Vec<DeviceId> = self
                        .conns
                        .get(&user)
                        .map(|d| d.keys().cloned().collect())
                        .unwrap_or_default();
                    for device in targets {
                        self.deliver(
                            &user,
                            &device,
                            ServerMessage::Event {
                                event: event.clone(),
                            },
                        );
                    }
                }
            }
        }
    }

    /// Updates the shared device count of `user`; true when it went from 0.
    fn recount(&mut self, user: &UserId) -> bool {
        let n = self.conns.get(user).map_or(0, |d| d.len() as u32);
        let mut online = self.online.write().unwrap_or_else(|p| p.into_inner());
        let before = online.get(user).copied().unwrap_or(0);
        if n == 0 {
            online.remove(user);
        } else {
            online.insert(user.clone(), n);
        }
        before == 0 && n > 0
    }

    fn is_online(&self, user: &UserId) -> bool {
        self.online
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(user)
    }

    fn drain(&mut self) {
        while let Some(out) = self.registry.poll_output() {
            match out {
                Output::Send {
                    user,
                    device,
                    message,
                } => self.deliver(&user, &device, message),
                Output::CallFinished(record) => self.finished(record),
            }
        }
        self.metrics
            .live_calls
            .store(self.registry.live_calls() as i64, Ordering::Relaxed);
    }

    fn deliver(&mut self, user: &UserId, device: &DeviceId, message: ServerMessage) {
        let Some((_, outbox)) = self.conns.get(user).and_then(|d| d.get(device)) else {
            return;
        };
        if let ServerMessage::Error { error, .. } = &message {
            self.metrics.error(error.code);
        }
        if outbox.tx.try_send(message).is_err() {
            // The client reads too slowly (or is gone): drop the connection
            // rather than queue without bound. It resumes with a snapshot.
            tracing::warn!(%user, %device, "outbox full; closing the connection");
            outbox.close.notify_one();
        }
    }

    fn finished(&mut self, r: CallRecord) {
        self.metrics.calls_finished.fetch_add(1, Ordering::Relaxed);
        for (user, outcome) in &r.members {
            if user != &r.inviter {
                self.metrics.invite_outcome(*outcome);
            }
        }
        let wall = |i: Instant| {
            self.epoch.1 + (i.saturating_duration_since(self.epoch.0).as_millis() as i64)
        };
        let call = StoredCall {
            call_id: r.call_id.clone(),
            kind: r.kind,
            inviter: r.inviter.clone(),
            started_at: wall(r.created_at),
            connected_at: r.connected_at.map(wall),
            ended_at: wall(r.ended_at),
            end_reason: serde_json::to_value(r.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            members: r.members,
        };
        tracing::info!(call = %call.call_id, reason = %call.end_reason, "call ended");
        // The writer only stops when the hub does.
        let _ = self.history.send(call);
    }
}

/// Stores finished calls in the background, in batches: whatever ended while
/// the last batch was written goes in one transaction, on one trip to a
/// blocking thread (at thousands of calls a second, a transaction and a
/// thread hand-over per call cost more than the writes).
fn history_writer(store: Store) -> mpsc::UnboundedSender<StoredCall> {
    let (tx, mut rx) = mpsc::unbounded_channel::<StoredCall>();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 1024).await > 0 {
            let calls = std::mem::take(&mut batch);
            let n = calls.len();
            if let Err(e) = store.run(move |s| s.record_calls(&calls)).await {
                tracing::error!(error = %e, calls = n, "could not store finished calls");
            }
        }
    });
    tx
}

/// The registry's clock: tokio's, so tests with paused time move it too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
