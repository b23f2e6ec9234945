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

mod call;
mod convert;
mod preview;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use beckon_client::Notice;
use beckon_client::{Client, ClientConfig, ClientEvent, Credentials, StopReason};
use beckon_media::call::{CallConfig, CallMedia, MediaEvent};
use beckon_protocol::{
    CallId, CallKind, DeviceId, MemberState, Reason, RejectReason, SearchQuery, UserId,
};
use tokio::sync::{mpsc, oneshot};

use self::call::CallExtras;
use self::convert::{invalid, person, stranger, ui_error};
use self::preview::Preview;
use crate::devices::{self, Choice};
use crate::host::{self, Host};
use crate::settings::{SavedSession, ServerChoice, Settings, SettingsFile};
use crate::tiles::{SELF_TILE, TileSink, Tiles};
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

/// The media of the call in progress.
struct Media {
    call_id: CallId,
    media: Arc<CallMedia>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
}

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
    media: Option<Media>,
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

    fn save(&self) {
        if let Err(e) = self.file.save(&self.settings) {
            tracing::warn!(error = %e, "settings not saved");
            self.ui(UiEvent::Problem {
                message: format!("Settings could not be saved: {e}"),
            });
        }
    }

    // ---- start-up and shut-down ------------------------------------------

    /// Starts the chosen server and resumes the saved session.
    async fn restore(&mut self) {
        match self.settings.server.clone() {
            Some(ServerChoice::Hosted { port }) => {
                if let Err(e) = self.start_host(port).await {
                    self.ui(UiEvent::Problem {
                        message: e.message.clone(),
                    });
                }
            }
            Some(ServerChoice::Remote { url }) => self.use_server(url),
            None => {}
        }
        let Some(server) = &self.server else { return };
        let session = self
            .settings
            .session
            .clone()
            .filter(|s| s.url == server.url);
        if let Some(saved) = session {
            match saved.token.parse() {
                Ok(token) => {
                    if let Err(e) = self.connect(Credentials::Token(token)).await {
                        tracing::info!(code = ?e.code, "saved session not resumed");
                        self.settings.session = None;
                        self.save();
                        self.set_connection(Connection::SignedOut {
                            reason: Some(if e.code == UiErrorCode::Unauthorized {
                                "Your session has expired; sign in again.".into()
                            } else {
                                e.message
                            }),
                        });
                    }
                }
                Err(_) => self.settings.session = None,
            }
        }
    }

    async fn close(&mut self) {
        self.stop_media().await;
        self.stop_preview().await;
        if let Some(client) = self.client.take()
            && let Some(call) = client.current_call()
        {
            let _ = client.quit(call.info.call_id).await;
        }
        if let Some(host) = self.host.take() {
            host.stop().await;
        }
    }

    // ---- commands -----------------------------------------------------

    async fn command(&mut self, cmd: Command) -> Result<Reply, UiError> {
        match cmd {
            Command::Host { port } => {
                self.sign_out_locally().await;
                if self.host.is_none() {
                    self.start_host(port).await?;
                }
            }
            Command::UseServer { url } => {
                let url = normalise_url(&url)?;
                self.sign_out_locally().await;
                if let Some(host) = self.host.take() {
                    host.stop().await;
                }
                self.settings.server = Some(ServerChoice::Remote { url: url.clone() });
                self.save();
                self.use_server(url);
            }
            Command::SignIn { user, password } => {
                let credentials = Credentials::Login {
                    user: user.trim().parse().map_err(|e| invalid("User name", e))?,
                    password: password.parse().map_err(|e| invalid("Password", e))?,
                };
                self.sign_in(credentials).await?;
            }
            Command::Register {
                user,
                name,
                password,
            } => {
                let credentials = Credentials::Register {
                    user: user.trim().parse().map_err(|e| invalid("User name", e))?,
                    password: password.parse().map_err(|e| invalid("Password", e))?,
                    display_name: name.trim().parse().map_err(|e| invalid("Name", e))?,
                };
                self.sign_in(credentials).await?;
            }
            Command::SignOut => {
                if let Some(client) = &self.client {
                    let _ = client.logout().await;
                }
                self.sign_out_locally().await;
            }
            Command::Search { query } => {
                let query: SearchQuery = query.trim().parse().map_err(|e| invalid("Search", e))?;
                let found = self
                    .client()?
                    .search(query)
                    .await
                    .map_err(|e| ui_error(&e))?;
                let users = found.iter().map(|p| self.remember(p)).collect();
                return Ok(Reply::Users { users });
            }
            Command::AddContact { user } => {
                let user = parse_user(&user)?;
                self.client()?
                    .add_contact(user)
                    .await
                    .map_err(|e| ui_error(&e))?;
                self.refresh_contacts().await;
            }
            Command::RemoveContact { user } => {
                let user = parse_user(&user)?;
                self.client()?
                    .remove_contact(user)
                    .await
                    .map_err(|e| ui_error(&e))?;
                self.refresh_contacts().await;
            }
            Command::Call { users, video } => self.call(users, video).await?,
            Command::AddMembers { users } => {
                let users = users
                    .iter()
                    .map(|u| parse_user(u))
                    .collect::<Result<_, _>>()?;
                let call_id = self.call_id()?;
                let inv = self
                    .client()?
                    .add(call_id, users)
                    .await
                    .map_err(|e| ui_error(&e))?;
                self.note_results(&inv.results);
                self.emit_call();
            }
            Command::Accept => {
                let call_id = self.call_id()?;
                self.client()?
                    .accept(call_id)
                    .await
                    .map_err(|e| ui_error(&e))?;
                self.extras.we_offer = true;
            }
            Command::Decline => {
                let call_id = self.call_id()?;
                self.client()?
                    .reject(call_id, RejectReason::Declined)
                    .await
                    .map_err(|e| ui_error(&e))?;
            }
            Command::Cancel => {
                let call_id = self.call_id()?;
                self.client()?
                    .cancel(call_id, None)
                    .await
                    .map_err(|e| ui_error(&e))?;
            }
            Command::Hangup => {
                let call_id = self.call_id()?;
                self.client()?
                    .quit(call_id)
                    .await
                    .map_err(|e| ui_error(&e))?;
            }
            Command::EndForAll => {
                let call_id = self.call_id()?;
                self.client()?
                    .end(call_id)
                    .await
                    .map_err(|e| ui_error(&e))?;
            }
            Command::SetMic { on } => {
                self.extras.mic = on;
                if let Some(m) = &self.media {
                    m.media.set_mic(on);
                }
                self.emit_call();
            }
            Command::SetCamera { on } => {
                self.extras.camera = on;
                if let Some(m) = &self.media {
                    m.media.set_camera(on);
                }
                self.update_preview().await;
                self.emit_call();
            }
            Command::SetSpeaker { on } => {
                self.extras.speaker = on;
                if let Some(m) = &self.media {
                    m.media.set_speaker(on);
                }
                self.emit_call();
            }
            Command::SwitchCamera => {
                let next = devices::next_camera(&self.listed.cameras, &self.choice.camera)
                    .ok_or_else(|| {
                        UiError::new(UiErrorCode::NoOtherCamera, "There is no other camera.")
                    })?;
                self.choose(Some(next), None, None).await?;
            }
            Command::ChooseDevices {
                camera,
                microphone,
                speaker,
            } => self.choose(camera, microphone, speaker).await?,
            Command::Preview { on } => {
                self.preview_wanted = on;
                if on {
                    self.refresh_devices();
                }
                self.update_preview().await;
            }
            Command::MarkHistorySeen => {
                self.client()?
                    .mark_history_seen()
                    .await
                    .map_err(|e| ui_error(&e))?;
                self.missed = 0;
                self.emit_history();
            }
        }
        Ok(Reply::Done)
    }

    fn client(&self) -> Result<&Client, UiError> {
        self.client
            .as_ref()
            .ok_or_else(|| UiError::new(UiErrorCode::SignedOut, "Sign in first."))
    }

    fn call_id(&self) -> Result<CallId, UiError> {
        self.client()?
            .current_call()
            .map(|c| c.info.call_id)
            .ok_or_else(|| UiError::new(UiErrorCode::NoCall, "That call is over."))
    }

    // ---- server and session ---------------------------------------------

    async fn start_host(&mut self, port: Option<u16>) -> Result<(), UiError> {
        let password = self
            .settings
            .echo_password
            .get_or_insert_with(host::new_echo_password)
            .clone();
        let dir = self.env.data_dir.join("server");
        let host = Host::start(&dir, port, &password).await.map_err(|e| {
            UiError::new(
                UiErrorCode::HostFailed,
                format!("The server could not start on this computer: {e:#}"),
            )
        })?;
        self.server = Some(ServerView {
            url: host.local_url(),
            hosted: true,
            lan_urls: host.lan_urls(),
        });
        self.settings.server = Some(ServerChoice::Hosted {
            port: Some(host.port()),
        });
        self.host = Some(host);
        self.save();
        self.set_connection(Connection::SignedOut { reason: None });
        Ok(())
    }

    fn use_server(&mut self, url: String) {
        self.server = Some(ServerView {
            url,
            hosted: false,
            lan_urls: Vec::new(),
        });
        self.set_connection(Connection::SignedOut { reason: None });
    }

    async fn sign_in(&mut self, credentials: Credentials) -> Result<(), UiError> {
        self.sign_out_locally().await;
        let result = self.connect(credentials).await;
        if let Err(e) = &result {
            self.set_connection(Connection::SignedOut {
                reason: Some(e.message.clone()),
            });
        }
        result
    }

    async fn connect(&mut self, credentials: Credentials) -> Result<(), UiError> {
        let url = self
            .server
            .as_ref()
            .map(|s| s.url.clone())
            .ok_or_else(|| UiError::new(UiErrorCode::NoServer, "Choose a server first."))?;
        self.set_connection(Connection::Connecting);
        let device = self.device_id();
        let (client, events) = Client::connect(ClientConfig::new(&url, device, credentials))
            .await
            .map_err(|e| ui_error(&e))?;
        if let Some(session) = client.session() {
            self.settings.last_user = Some(session.profile.id.to_string());
            self.settings.session = Some(SavedSession {
                url,
                user: session.profile.id.to_string(),
                token: session.token.expose().to_owned(),
            });
            self.save();
        }
        self.client = Some(client);
        self.events = Some(events);
        Ok(())
    }

    fn device_id(&mut self) -> DeviceId {
        if let Some(id) = self.settings.device.as_deref().and_then(|d| d.parse().ok()) {
            return id;
        }
        let id = format!("desktop-{}", &host::new_echo_password()[..8]).to_lowercase();
        self.settings.device = Some(id.clone());
        self.save();
        id.parse().expect("a valid device id")
    }

    /// Forgets the session here (the server keeps it unless logged out).
    async fn sign_out_locally(&mut self) {
        self.stop_media().await;
        self.client = None;
        self.events = None;
        self.me = None;
        self.contacts.clear();
        self.history.clear();
        self.missed = 0;
        self.settings.session = None;
        self.save();
        self.clear_call();
        if self.server.is_some() {
            self.set_connection(Connection::SignedOut { reason: None });
        }
        self.emit_contacts();
        self.emit_history();
    }

    fn set_connection(&mut self, connection: Connection) {
        self.connection = connection;
        self.ui(UiEvent::Connection {
            connection: self.connection.clone(),
            server: self.server.clone(),
            me: self.me.clone(),
        });
    }

    // ---- people -------------------------------------------------------

    fn is_echo(&self, id: &str) -> bool {
        self.host.as_ref().is_some_and(Host::has_echo) && id == host::ECHO_USER
    }

    fn remember(&mut self, p: &beckon_protocol::UserProfile) -> Person {
        let person = person(p, self.is_echo(p.id.as_str()));
        self.people.insert(person.id.clone(), person.clone());
        person
    }

    fn who(&self, id: &UserId) -> Person {
        if let Some(me) = self.me.as_ref().filter(|m| m.id == id.as_str()) {
            return me.clone();
        }
        self.people
            .get(id.as_str())
            .cloned()
            .unwrap_or_else(|| stranger(id))
    }

    /// Fetches the profiles of people we have not seen yet.
    async fn learn(&mut self, ids: impl IntoIterator<Item = UserId>) {
        let mut unknown: Vec<UserId> = ids
            .into_iter()
            .filter(|u| !self.people.contains_key(u.as_str()))
            .collect();
        unknown.sort();
        unknown.dedup();
        let Some(client) = self.client.clone() else {
            return;
        };
        for chunk in unknown.chunks(beckon_protocol::limits::MAX_USERS_PER_REQUEST) {
            if let Ok(found) = client.get_users(chunk.to_vec()).await {
                for p in &found {
                    self.remember(p);
                }
            }
        }
    }

    async fn refresh_contacts(&mut self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        match client.contacts().await {
            Ok(list) => {
                self.contacts = list.iter().map(|p| self.remember(p).id).collect();
                // The echo test is everyone's contact on a hosted server.
                if self.host.as_ref().is_some_and(Host::has_echo)
                    && !self.contacts.iter().any(|c| c == host::ECHO_USER)
                    && self.me.as_ref().is_some_and(|m| m.id != host::ECHO_USER)
                    && let Ok(echo) = host::ECHO_USER.parse::<UserId>()
                    && client.add_contact(echo.clone()).await.is_ok()
                {
                    self.learn([echo]).await;
                    self.contacts.insert(0, host::ECHO_USER.to_owned());
                }
                self.contacts.sort_by_key(|c| c != host::ECHO_USER);
                self.emit_contacts();
            }
            Err(e) => tracing::warn!(error = %e, "contacts not loaded"),
        }
    }

    async fn refresh_history(&mut self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let Some(me) = client.me() else { return };
        let Ok((entries, _)) = client.history(None, Some(50)).await else {
            return;
        };
        let people: Vec<UserId> = entries
            .iter()
            .flat_map(|e| e.members.iter().map(|m| m.user.clone()))
            .collect();
        self.learn(people).await;
        self.history = entries
            .iter()
            .map(|e| convert::history_item(e, &me, |u| self.who(u)))
            .collect();
        self.missed = client.missed_count().await.unwrap_or(self.missed);
        self.emit_history();
    }

    fn emit_contacts(&self) {
        self.ui(UiEvent::Contacts {
            contacts: self.contact_list(),
        });
    }

    fn contact_list(&self) -> Vec<Person> {
        self.contacts
            .iter()
            .filter_map(|c| self.people.get(c).cloned())
            .collect()
    }

    fn emit_history(&self) {
        self.ui(UiEvent::History {
            history: self.history.clone(),
            missed: self.missed,
        });
    }

    // ---- devices ------------------------------------------------------

    fn refresh_devices(&mut self) {
        let (cameras, camera_problem) = devices::cameras();
        self.listed = devices::list(&self.choice, cameras, camera_problem);
        self.ui(UiEvent::Devices {
            devices: self.devices(),
        });
    }

    /// The listed devices with the current choice.
    fn devices(&self) -> Devices {
        Devices {
            camera: self.choice.camera.clone(),
            microphone: self.choice.microphone.clone(),
            speaker: self.choice.speaker.clone(),
            ..self.listed.clone()
        }
    }

    async fn choose(
        &mut self,
        camera: Option<String>,
        microphone: Option<String>,
        speaker: Option<String>,
    ) -> Result<(), UiError> {
        let me = self.me.as_ref().map_or("me".to_owned(), |m| m.id.clone());
        if let Some(camera) = camera.filter(|c| *c != self.choice.camera) {
            if let Some(m) = &self.media {
                let source = devices::open_camera(&camera)
                    .map_err(|e| UiError::new(UiErrorCode::CameraFailed, e.to_string()))?;
                match source {
                    Some(source) => m
                        .media
                        .switch_camera(source)
                        .map_err(|e| UiError::new(UiErrorCode::CameraFailed, e.to_string()))?,
                    None => {
                        m.media.set_camera(false);
                        self.extras.camera = false;
                    }
                }
            }
            self.choice.camera = camera.clone();
            self.settings.camera = Some(camera);
        }
        if let Some(mic) = microphone.filter(|m| *m != self.choice.microphone) {
            if let Some(m) = &self.media {
                let source = devices::open_microphone(&mic, &me)
                    .map_err(|e| UiError::new(UiErrorCode::MicrophoneFailed, e.to_string()))?;
                m.media.switch_microphone(source);
            }
            self.choice.microphone = mic.clone();
            self.settings.microphone = Some(mic);
        }
        if let Some(out) = speaker.filter(|s| *s != self.choice.speaker) {
            if let Some(m) = &self.media {
                let (output, problem) = devices::speaker_or_null(&out);
                if let Some(e) = problem {
                    return Err(UiError::new(UiErrorCode::SpeakerFailed, e.to_string()));
                }
                m.media.switch_speaker(output);
            }
            self.choice.speaker = out.clone();
            self.settings.speaker = Some(out);
        }
        self.save();
        if self.preview.is_some() {
            // Reopen with the new devices.
            self.stop_preview().await;
        }
        self.update_preview().await;
        self.ui(UiEvent::Devices {
            devices: self.devices(),
        });
        self.emit_call();
        Ok(())
    }

    // ---- preview ------------------------------------------------------

    /// Runs the camera preview when the settings page or the waiting page
    /// of a video call shows it, and the meter for settings.
    async fn update_preview(&mut self) {
        if self.media.is_some() {
            self.stop_preview().await;
            return;
        }
        let waiting = self
            .client
            .as_ref()
            .and_then(Client::current_call)
            .is_some_and(|c| {
                c.phase == beckon_client::Phase::Outgoing && c.info.kind == CallKind::Video
            })
            && self.extras.camera;
        let want_camera = self.preview_wanted || waiting;
        let want_meter = self.preview_wanted;
        if let Some(p) = &self.preview {
            if p.metering == want_meter && want_camera {
                return;
            }
            self.stop_preview().await;
        }
        if !want_camera && !want_meter {
            return;
        }
        let camera = if want_camera {
            match devices::open_camera(&self.choice.camera) {
                Ok(c) => c,
                Err(e) => {
                    self.ui(UiEvent::Problem {
                        message: format!("Camera unavailable: {e}"),
                    });
                    None
                }
            }
        } else {
            None
        };
        let mic = if want_meter {
            let me = self.me.as_ref().map_or("me".to_owned(), |m| m.id.clone());
            match devices::open_microphone(&self.choice.microphone, &me) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.ui(UiEvent::Problem {
                        message: format!("Microphone unavailable: {e}"),
                    });
                    None
                }
            }
        } else {
            None
        };
        self.preview = Some(Preview::start(
            camera,
            mic,
            self.env.tiles.clone(),
            self.env.ui.clone(),
        ));
    }

    async fn stop_preview(&mut self) {
        if let Some(p) = self.preview.take() {
            p.stop().await;
            self.env.tiles.clear(SELF_TILE);
        }
    }

    // ---- calls --------------------------------------------------------

    async fn call(&mut self, users: Vec<String>, video: bool) -> Result<(), UiError> {
        let users: Vec<UserId> = users
            .iter()
            .map(|u| parse_user(u))
            .collect::<Result<_, _>>()?;
        if users.is_empty() {
            return Err(UiError::new(UiErrorCode::NoOne, "Pick someone to call."));
        }
        let kind = if video {
            CallKind::Video
        } else {
            CallKind::Voice
        };
        let client = self.client()?.clone();
        if client.current_call().is_some() {
            return Err(UiError::new(
                UiErrorCode::InCall,
                "You are already in a call.",
            ));
        }
        self.extras = CallExtras::default();
        let inv = client
            .invite(users.clone(), kind, None)
            .await
            .map_err(|e| ui_error(&e))?;
        self.extras.we_offer = inv.merged;
        self.note_results(&inv.results);
        if let Some(failure) = inv.results.iter().find_map(|r| r.error)
            && inv.results.iter().all(|r| r.error.is_some())
        {
            let _ = client.cancel(inv.call.call_id, None).await;
            return Err(UiError::new(
                failure.into(),
                match failure {
                    beckon_protocol::ErrorCode::Busy => "They are busy on another call.",
                    beckon_protocol::ErrorCode::NotFound => "There is no such user.",
                    _ => "The call could not be placed.",
                },
            ));
        }
        self.learn(users).await;
        self.update_preview().await;
        self.emit_call();
        Ok(())
    }

    fn note_results(&mut self, results: &[beckon_protocol::UserResult]) {
        for r in results {
            if r.error == Some(beckon_protocol::ErrorCode::Busy) {
                self.extras.reasons.insert(r.user.clone(), Reason::Busy);
            }
        }
    }

    fn clear_call(&mut self) {
        self.extras = CallExtras::default();
        if self.last_call.take().is_some() {
            self.ui(UiEvent::Call { call: None });
        }
    }

    /// Tells the UI about the call when what it shows changed.
    fn emit_call(&mut self) {
        let view = match (
            self.client.as_ref().and_then(Client::current_call),
            self.client.as_ref().and_then(Client::me),
        ) {
            (Some(current), Some(me)) => {
                self.extras.others = current
                    .info
                    .members
                    .iter()
                    .filter(|m| m.user != me)
                    .map(|m| m.user.clone())
                    .collect();
                Some(call::view(&current, &me, &self.extras, |u| self.who(u)))
            }
            _ => None,
        };
        if let Some(v) = &view {
            self.extras.last_phase = Some(v.phase);
        }
        if view != self.last_call {
            self.last_call = view.clone();
            self.ui(UiEvent::Call { call: view });
        }
    }

    async fn client_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Connected { session } => {
                if session.resumed
                    && let Some(m) = &self.media
                {
                    // What broke signaling may have broken the media paths.
                    m.media.reconnect_all();
                }
                self.me = Some(person(&session.profile, false));
                self.set_connection(Connection::Online);
                self.refresh_contacts().await;
                self.refresh_history().await;
                self.emit_call();
            }
            ClientEvent::Disconnected { reason, retry_in } => {
                self.set_connection(Connection::Reconnecting {
                    reason,
                    retry_in_ms: u32::try_from(retry_in.as_millis()).unwrap_or(u32::MAX),
                });
            }
            ClientEvent::Presence { user, online } => {
                if let Some(p) = self.people.get_mut(user.as_str()) {
                    p.online = online;
                }
                self.emit_contacts();
                self.emit_call();
            }
            ClientEvent::Signal {
                call_id,
                from,
                signal,
            } => {
                if let Some(m) = self.media.as_ref().filter(|m| m.call_id == call_id)
                    && let Err(e) = m.media.on_signal(&from, signal).await
                {
                    tracing::debug!(error = %e, "media signal refused");
                }
            }
            ClientEvent::Stopped { reason } => {
                let why = match reason {
                    StopReason::Closed(r) => Some(format!(
                        "Signed out by the server ({}).",
                        convert::wire_name(&r).replace('_', " ")
                    )),
                    StopReason::Refused(m) => Some(m),
                    _ => None,
                };
                self.sign_out_locally().await;
                self.set_connection(Connection::SignedOut { reason: why });
            }
            ClientEvent::Notice(notice) => self.notice(notice).await,
            _ => {}
        }
    }

    async fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::IncomingReceived { call, by } => {
                self.extras = CallExtras::default();
                let people: Vec<UserId> = call
                    .members
                    .iter()
                    .map(|m| m.user.clone())
                    .chain([by.clone()])
                    .collect();
                self.learn(people).await;
                let name = self.who(&by).name;
                let what = match call.kind {
                    CallKind::Video => "Video call",
                    CallKind::Voice => "Voice call",
                };
                self.env.ui.ringing(
                    &format!("{name} is calling"),
                    &format!("{what} — open Beckon to answer"),
                );
                self.emit_call();
            }
            Notice::IncomingCancelled { call_id, by } => {
                let name = by.map_or("The caller".to_owned(), |b| self.who(&b).name);
                self.call_over(&call_id, "cancelled", format!("{name} cancelled the call."))
                    .await;
            }
            Notice::IncomingTimeout { call_id } => {
                let message = match &self.last_call {
                    Some(c) => format!("You missed a call from {}.", c.inviter.name),
                    None => "You missed a call.".to_owned(),
                };
                self.call_over(&call_id, "missed", message).await;
            }
            Notice::AnsweredElsewhere { call_id, accepted } => {
                let message = if accepted {
                    "Answered on another of your devices."
                } else {
                    "Declined on another of your devices."
                };
                self.call_over(&call_id, "answered_elsewhere", message.into())
                    .await;
            }
            Notice::MemberChanged { change } => {
                self.extras
                    .reasons
                    .insert(change.user.clone(), change.reason);
                if change.state == MemberState::NotYetReceived {
                    self.extras.offline.insert(change.user.clone());
                } else if change.state == MemberState::Received {
                    self.extras.offline.remove(&change.user);
                }
                self.learn([change.user.clone()]).await;
                if let Some(m) = self.media.as_ref().filter(|m| m.call_id == change.call_id) {
                    if change.state == MemberState::Accepted {
                        // They joined after us: they offer.
                        if let Err(e) = m.media.add_member(change.user.clone(), false).await {
                            tracing::warn!(error = %e, "could not connect to a new member");
                        }
                    } else if !change.state.is_pending() {
                        m.media.remove_member(&change.user).await;
                        self.extras.remote.remove(&change.user);
                        self.env.tiles.clear(change.user.as_str());
                    }
                }
                self.emit_call();
            }
            Notice::CallStarted { call_id } => {
                self.extras.connected_at_ms = Some(now_ms());
                self.start_media(call_id).await;
                self.emit_call();
            }
            Notice::CallEnded {
                call_id,
                reason,
                by,
            } => {
                let invited = self.extras.others.clone();
                // Leaving or ending it ourselves needs no name.
                let by = by.filter(|b| self.me.as_ref().is_none_or(|m| m.id != b.as_str()));
                let outcome = call::ended(
                    call_id.as_str(),
                    reason,
                    by.as_ref(),
                    &self.extras,
                    &invited,
                    |u| self.who(u),
                );
                self.call_over(&call_id, &outcome.reason, outcome.message)
                    .await;
            }
            Notice::EndedWhileOffline { call_id } => {
                self.call_over(
                    &call_id,
                    "failed",
                    "The call ended while you were offline.".into(),
                )
                .await;
            }
            Notice::MissedWhileBusy { .. } => self.refresh_history().await,
            _ => {}
        }
    }

    async fn call_over(&mut self, call_id: &CallId, reason: &str, message: String) {
        self.stop_media().await;
        self.ui(UiEvent::CallEnded {
            outcome: crate::view::CallOutcome {
                id: call_id.to_string(),
                reason: reason.to_owned(),
                message,
            },
        });
        self.clear_call();
        self.update_preview().await;
        self.refresh_history().await;
    }

    async fn start_media(&mut self, call_id: CallId) {
        if self.media.is_some() {
            return;
        }
        self.stop_preview().await;
        let Some(client) = self.client.clone() else {
            return;
        };
        let (Some(me), Some(current)) = (client.me(), client.current_call()) else {
            return;
        };
        let kind = current.info.kind;
        let mut config = CallConfig::new(me.clone(), kind);
        config.ice_servers = client.session().map(|s| s.ice_servers).unwrap_or_default();
        config.mic_on = self.extras.mic;
        config.camera_on = self.extras.camera && kind == CallKind::Video;
        let mut problems = Vec::new();
        let camera = match kind {
            CallKind::Video => devices::open_camera(&self.choice.camera).unwrap_or_else(|e| {
                problems.push(format!(
                    "Camera unavailable: {e}. The others see your picture instead."
                ));
                None
            }),
            CallKind::Voice => None,
        };
        let (mic, mic_problem) =
            devices::microphone_or_silence(&self.choice.microphone, me.as_str());
        if let Some(e) = mic_problem {
            problems.push(format!(
                "Microphone unavailable: {e}. The others cannot hear you."
            ));
        }
        let (speaker, speaker_problem) = devices::speaker_or_null(&self.choice.speaker);
        if let Some(e) = speaker_problem {
            problems.push(format!(
                "Speaker unavailable: {e}. You cannot hear the call."
            ));
        }
        for message in problems {
            self.ui(UiEvent::Problem { message });
        }
        let sink = Arc::new(TileSink {
            tiles: self.env.tiles.clone(),
            me: me.clone(),
        });
        let started = CallMedia::start(config, camera, mic, sink.clone(), speaker, Some(sink));
        let (media, events) = match started {
            Ok(pair) => pair,
            Err(e) => {
                self.ui(UiEvent::Problem {
                    message: format!("Media could not start: {e}"),
                });
                return;
            }
        };
        let media = Arc::new(media);
        media.set_speaker(self.extras.speaker);
        for user in current.others_in_call(&me) {
            if let Err(e) = media.add_member(user.clone(), self.extras.we_offer).await {
                tracing::warn!(error = %e, "could not connect to a member");
            }
        }
        self.media = Some(Media {
            call_id,
            media,
            events,
        });
        self.stats_at = Some(tokio::time::Instant::now() + STATS_EVERY);
    }

    async fn stop_media(&mut self) {
        self.stats_at = None;
        if let Some(m) = self.media.take() {
            m.media.close().await;
            for user in m.media.members() {
                self.env.tiles.clear(user.as_str());
            }
            self.env.tiles.clear(SELF_TILE);
        }
    }

    async fn media_event(&mut self, event: MediaEvent) {
        let Some(call_id) = self.media.as_ref().map(|m| m.call_id.clone()) else {
            return;
        };
        match event {
            MediaEvent::Signal { to, signal } => {
                if let Some(client) = &self.client
                    && let Err(e) = client.signal(call_id, to, signal).await
                {
                    tracing::debug!(error = %e, "media signal not sent");
                }
            }
            MediaEvent::RemoteMediaState { user, mic, camera } => {
                let r = self.extras.remote.entry(user).or_default();
                (r.mic, r.camera) = (mic, camera);
                self.emit_call();
            }
            MediaEvent::PeerState { .. } => self.stats().await,
            MediaEvent::DeviceFailed(e) => self.ui(UiEvent::Problem {
                message: format!("A device stopped: {e}"),
            }),
            MediaEvent::Rejected { from, error } => {
                tracing::warn!(%from, error = %error, "unusable media signaling");
            }
            _ => {}
        }
    }

    async fn stats(&mut self) {
        let Some(m) = &self.media else {
            self.stats_at = None;
            return;
        };
        let stats = m.media.stats().await;
        call::apply_stats(&mut self.extras, &stats);
        self.extras.video_paused =
            m.media.send_stats().video_step == Some(beckon_media::ladder::Step::Paused);
        self.stats_at = Some(tokio::time::Instant::now() + STATS_EVERY);
        self.emit_call();
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

fn parse_user(s: &str) -> Result<UserId, UiError> {
    s.trim().parse().map_err(|e| invalid("User", e))
}

/// `host:port` → `ws://host:port/ws`; a `ws(s)://` URL is kept.
fn normalise_url(input: &str) -> Result<String, UiError> {
    let s = input.trim();
    let with_scheme = if s.contains("://") {
        s.to_owned()
    } else {
        format!("ws://{s}")
    };
    let mut url = url::Url::parse(&with_scheme).map_err(|e| {
        UiError::new(
            UiErrorCode::BadUrl,
            format!("\"{s}\" is not a server address ({e})."),
        )
    })?;
    if !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none() {
        return Err(UiError::new(
            UiErrorCode::BadUrl,
            format!("\"{s}\" is not a server address; use ws://host:port/ws."),
        ));
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/ws");
    }
    Ok(url.to_string())
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

async fn next_media(media: &mut Option<Media>) -> Option<MediaEvent> {
    match media {
        Some(m) => m.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_completed() {
        assert_eq!(
            normalise_url("192.168.1.5:7600").expect("ok"),
            "ws://192.168.1.5:7600/ws"
        );
        assert_eq!(
            normalise_url("wss://beckon.example.org/ws").expect("ok"),
            "wss://beckon.example.org/ws"
        );
        assert_eq!(
            normalise_url("http://x:1").expect_err("bad").code,
            UiErrorCode::BadUrl
        );
        assert_eq!(
            normalise_url("ws://").expect_err("bad").code,
            UiErrorCode::BadUrl
        );
    }
}
