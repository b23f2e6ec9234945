//! The one `CallController`: a task that owns the signaling client (and
//! the call manager inside it), the media of the current call, the hosted
//! server and the settings. Commands come in, [`UiEvent`]s go out.
//!
//! ```no_run
//! # async fn f(env: beckon_app::controller::Env) {
//! use beckon_app::controller::CallController;
//! use beckon_app::view::Command;
//! let (controller, task) = CallController::new(env);
//! tokio::spawn(task);
//! controller.send(Command::Host { port: None }).await.unwrap();
//! # }
//! ```

mod call_view;
mod calls;
mod commands;
mod convert;
mod media;
mod people;
mod preview;
mod session;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use beckon_client::{Client, ClientEvent};
use beckon_session::CallSession;
use tokio::sync::{mpsc, oneshot};

use self::call_view::CallExtras;
use self::media::next_media;
use self::preview::Preview;
use crate::devices::{self, Choice};
use crate::host::Host;
use crate::settings::{Settings, SettingsFile};
use crate::tiles::Tiles;
use crate::view::{
    Command, Connection, Devices, HistoryItem, Person, Reply, ServerView, Snapshot, UiError,
    UiErrorCode, UiEvent,
};

/// Where the controller's news goes (the window, in the app).
pub trait Ui: Send + Sync + 'static {
    /// Something changed.
    fn emit(&self, event: UiEvent);
    /// A call rings: draw attention even when the window is hidden.
    fn ringing(&self, title: &str, body: &str);
}

/// What the controller needs from its surroundings.
#[derive(Clone)]
pub struct Env {
    /// Settings and the hosted server's database live here.
    pub data_dir: PathBuf,
    /// The UI.
    pub ui: Arc<dyn Ui>,
    /// Video tiles.
    pub tiles: Arc<Tiles>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

enum Msg {
    Command(Command, oneshot::Sender<Result<Reply, UiError>>),
    Snapshot(oneshot::Sender<Snapshot>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle to the controller task.
#[derive(Debug, Clone)]
pub struct CallController {
    tx: mpsc::UnboundedSender<Msg>,
}

fn gone() -> UiError {
    UiError::new(UiErrorCode::ShuttingDown, "Beckon is shutting down.")
}

impl CallController {
    /// The handle and the task to spawn on the app's runtime.
    pub fn new(env: Env) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, Actor::new(env).run(rx))
    }

    /// Does what the UI asked.
    pub async fn send(&self, command: Command) -> Result<Reply, UiError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Command(command, tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Everything the UI shows.
    pub async fn snapshot(&self) -> Result<Snapshot, UiError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Snapshot(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Leaves any call, stops the hosted server, and ends the task.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// What the controller task owns: the client, the call's media, the
/// hosted server, settings and what the UI was last told.
struct Actor {
    env: Env,
    file: SettingsFile,
    settings: Settings,
    host: Option<Host>,
    server: Option<ServerView>,
    connection: Connection,
    client: Option<Client>,
    events: Option<mpsc::Receiver<ClientEvent>>,
    me: Option<Person>,
    people: HashMap<String, Person>,
    contacts: Vec<String>,
    history: Vec<HistoryItem>,
    missed: u32,
    /// The devices as last listed (listing asks the system, so it happens
    /// at start and when the settings page opens, not on every change).
    listed: Devices,
    choice: Choice,
    /// The current call's media, once it connected.
    media: Option<CallSession>,
    preview: Option<Preview>,
    /// The settings page wants the camera and meter running.
    preview_wanted: bool,
    extras: CallExtras,
    last_call: Option<crate::view::Call>,
    stats_at: Option<tokio::time::Instant>,
}

const STATS_EVERY: Duration = Duration::from_secs(1);

impl Actor {
    fn new(env: Env) -> Self {
        let file = SettingsFile::in_dir(&env.data_dir);
        let settings = file.load();
        let (cameras, camera_problem) = devices::cameras();
        let choice = Choice::resolve(
            settings.camera.as_deref(),
            settings.microphone.as_deref(),
            settings.speaker.as_deref(),
            &cameras,
        );
        let listed = devices::list(&choice, cameras, camera_problem);
        Self {
            env,
            file,
            settings,
            host: None,
            server: None,
            connection: Connection::NoServer,
            client: None,
            events: None,
            me: None,
            people: HashMap::new(),
            contacts: Vec::new(),
            history: Vec::new(),
            missed: 0,
            listed,
            choice,
            media: None,
            preview: None,
            preview_wanted: false,
            extras: CallExtras::default(),
            last_call: None,
            stats_at: None,
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        self.restore().await;
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Command(cmd, reply)) => {
                        let result = self.command(cmd).await;
                        let _ = reply.send(result);
                    }
                    Some(Msg::Snapshot(reply)) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Some(Msg::Shutdown(done)) => {
                        self.close().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.close().await;
                        return;
                    }
                },
                Some(event) = next(&mut self.events) => self.client_event(event).await,
                Some(event) = next_media(&mut self.media) => self.media_event(event).await,
                () = sleep_until(self.stats_at) => self.stats().await,
            }
        }
    }

    fn ui(&self, event: UiEvent) {
        self.env.ui.emit(event);
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            connection: self.connection.clone(),
            server: self.server.clone(),
            me: self.me.clone(),
            contacts: self.contact_list(),
            history: self.history.clone(),
            missed: self.missed,
            call: self.last_call.clone(),
            devices: self.devices(),
            last_user: self.settings.last_user.clone(),
        }
    }
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64)
}

async fn next<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
