//! The controller without a window: a hosted server, the echo contact, and
//! calls with real media, as the UI would drive them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use beckon_app::controller::{CallController, Env, Ui};
use beckon_app::tiles::Tiles;
use beckon_app::view::{Command, Connection, MemberStatus, Phase, Reply, UiErrorCode, UiEvent};
use beckon_client::Notice;
use beckon_client::{Client, ClientConfig, ClientEvent, Credentials};
use beckon_media::frame::VideoFrame;
use beckon_media::source::synthetic::read_stamp;
use tokio::sync::Notify;

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<UiEvent>>,
    rings: Mutex<Vec<String>>,
    changed: Notify,
}

impl Ui for Recorder {
    fn emit(&self, event: UiEvent) {
        self.events.lock().expect("lock").push(event);
        self.changed.notify_waiters();
    }
    fn ringing(&self, title: &str, _body: &str) {
        self.rings.lock().expect("lock").push(title.to_owned());
    }
}

impl Recorder {
    /// Waits for an event that `pick` accepts (looking at all so far).
    async fn wait<T>(&self, what: &str, pick: impl Fn(&UiEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.changed.notified();
            if let Some(found) = self
                .events
                .lock()
                .expect("lock")
                .iter()
                .rev()
                .find_map(&pick)
            {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen: Vec<String> = self
                    .events
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|e| format!("{e:?}").chars().take(160).collect())
                    .collect();
                panic!("no {what}; events: {seen:#?}");
            }
        }
    }

    fn clear(&self) {
        self.events.lock().expect("lock").clear();
    }
}

struct App {
    controller: CallController,
    ui: Arc<Recorder>,
    tiles: Arc<Tiles>,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let ui = Arc::new(Recorder::default());
    let tiles = Arc::new(Tiles::default());
    let (controller, task) = CallController::new(Env {
        data_dir: dir.path().to_owned(),
        ui: ui.clone(),
        tiles: tiles.clone(),
    });
    tokio::spawn(task);
    App {
        controller,
        ui,
        tiles,
        _dir: dir,
    }
}

async fn send(app: &App, cmd: Command) -> Reply {
    app.controller
        .send(cmd.clone())
        .await
        .unwrap_or_else(|e| panic!("{cmd:?} failed: {e:?}"))
}

/// Hosts a server, picks synthetic devices and signs `user` up.
async fn host_and_register(app: &App, user: &str) {
    send(app, Command::Host { port: Some(0) }).await;
    send(
        app,
        Command::ChooseDevices {
            camera: Some("synthetic".into()),
            microphone: Some("tone".into()),
            speaker: Some("null".into()),
        },
    )
    .await;
    send(
        app,
        Command::Register {
            user: user.into(),
            name: format!("{user} (test)"),
            password: "correct horse battery".into(),
        },
    )
    .await;
    app.ui
        .wait("online", |e| match e {
            UiEvent::Connection {
                connection: Connection::Online,
                ..
            } => Some(()),
            _ => None,
        })
        .await;
}

fn server_url(app: &App) -> String {
    app.ui
        .events
        .lock()
        .expect("lock")
        .iter()
        .find_map(|e| match e {
            UiEvent::Connection {
                server: Some(s), ..
            } => Some(s.url.clone()),
            _ => None,
        })
        .expect("a server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calling_the_echo_test_returns_your_own_video() {
    let app = app();
    host_and_register(&app, "alice").await;
    let contacts = app
        .ui
        .wait("the echo contact", |e| match e {
            UiEvent::Contacts { contacts } if contacts.iter().any(|c| c.echo) => {
                Some(contacts.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(contacts[0].id, "echo", "the echo test is listed first");
    assert!(contacts[0].online);

    send(
        &app,
        Command::Call {
            users: vec!["echo".into()],
            video: true,
        },
    )
    .await;
    app.ui
        .wait("the calling page", |e| match e {
            UiEvent::Call { call: Some(c) }
                if c.phase == Phase::Connected
                    && c.members.iter().any(|m| m.status == MemberStatus::Joined) =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    // Our own test pattern comes back: its stamps read back at the tile.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (mut stamped, mut after) = (0, 0);
    while stamped < 5 && tokio::time::Instant::now() < deadline {
        let Some(bytes) = app.tiles.next("echo", after, Duration::from_secs(1)).await else {
            continue;
        };
        let w = u32::from_le_bytes(bytes[0..4].try_into().expect("4"));
        let h = u32::from_le_bytes(bytes[4..8].try_into().expect("4"));
        after = u64::from_le_bytes(bytes[16..24].try_into().expect("8"));
        let frame = VideoFrame::new(w, h, bytes[24..].to_vec(), 0).expect("an I420 frame");
        if read_stamp(&frame).is_some() {
            stamped += 1;
        }
    }
    assert!(
        stamped >= 5,
        "only {stamped} echoed frames carried our stamp"
    );

    send(&app, Command::Hangup).await;
    let outcome = app
        .ui
        .wait("the end of the call", |e| match e {
            UiEvent::CallEnded { outcome } => Some(outcome.clone()),
            _ => None,
        })
        .await;
    assert_eq!(outcome.reason, "ended");
    let history = app
        .ui
        .wait("the call in the history", |e| match e {
            UiEvent::History { history, .. } if !history.is_empty() => Some(history.clone()),
            _ => None,
        })
        .await;
    assert!(history[0].outgoing);
    assert_eq!(history[0].with[0].id, "echo");
    app.controller.shutdown().await;
}

async fn other_user(url: &str, user: &str) -> (Client, tokio::sync::mpsc::Receiver<ClientEvent>) {
    let credentials = Credentials::Register {
        user: user.parse().expect("id"),
        password: "correct horse battery".parse().expect("password"),
        display_name: user.parse().expect("name"),
    };
    Client::connect(ClientConfig::new(
        url,
        "phone".parse().expect("device"),
        credentials,
    ))
    .await
    .expect("bob signs in")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_incoming_call_rings_and_a_cancel_closes_the_dialog() {
    let app = app();
    host_and_register(&app, "alice").await;
    let (bob, _bob_events) = other_user(&server_url(&app), "bob").await;
    let inv = bob
        .invite(
            vec!["alice".parse().expect("id")],
            beckon_protocol::CallKind::Video,
            None,
        )
        .await
        .expect("bob rings alice");
    let call = app
        .ui
        .wait("the incoming dialog", |e| match e {
            UiEvent::Call { call: Some(c) } if c.phase == Phase::Incoming => Some(c.clone()),
            _ => None,
        })
        .await;
    assert_eq!(call.inviter.id, "bob");
    assert_eq!(app.ui.rings.lock().expect("lock").len(), 1);
    bob.cancel(inv.call.call_id, None).await.expect("cancel");
    let outcome = app
        .ui
        .wait("the dialog closing", |e| match e {
            UiEvent::CallEnded { outcome } => Some(outcome.clone()),
            _ => None,
        })
        .await;
    assert_eq!(outcome.reason, "cancelled");
    assert_eq!(outcome.message, "bob cancelled the call.");
    app.ui
        .wait("no call", |e| match e {
            UiEvent::Call { call: None } => Some(()),
            _ => None,
        })
        .await;
    app.controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_call_says_so_on_the_waiting_page() {
    let app = app();
    host_and_register(&app, "alice").await;
    let (bob, mut bob_events) = other_user(&server_url(&app), "bob").await;
    send(
        &app,
        Command::Call {
            users: vec!["bob".into()],
            video: false,
        },
    )
    .await;
    app.ui
        .wait("the waiting page", |e| match e {
            UiEvent::Call { call: Some(c) } if c.phase == Phase::Outgoing => Some(()),
            _ => None,
        })
        .await;
    let call_id = loop {
        match tokio::time::timeout(Duration::from_secs(10), bob_events.recv()).await {
            Ok(Some(ClientEvent::Notice(Notice::IncomingReceived { call, .. }))) => {
                break call.call_id;
            }
            Ok(Some(_)) => {}
            other => panic!("bob was not rung: {other:?}"),
        }
    };
    bob.reject(call_id, beckon_protocol::RejectReason::Declined)
        .await
        .expect("decline");
    let outcome = app
        .ui
        .wait("why", |e| match e {
            UiEvent::CallEnded { outcome } => Some(outcome.clone()),
            _ => None,
        })
        .await;
    assert_eq!(outcome.reason, "declined");
    assert_eq!(outcome.message, "bob declined.");
    app.ui.clear();

    // Bad input loses nothing: a stale command and a bad id get clear errors.
    let stale = app
        .controller
        .send(Command::Accept)
        .await
        .expect_err("no call");
    assert_eq!(stale.code, UiErrorCode::NoCall);
    let bad = app
        .controller
        .send(Command::Call {
            users: vec!["No Such User!".into()],
            video: true,
        })
        .await
        .expect_err("bad id");
    assert_eq!(bad.code, UiErrorCode::InvalidInput);
    app.controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_is_resumed_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |dir: &std::path::Path| {
        let ui = Arc::new(Recorder::default());
        let (controller, task) = CallController::new(Env {
            data_dir: dir.to_owned(),
            ui: ui.clone(),
            tiles: Arc::new(Tiles::default()),
        });
        tokio::spawn(task);
        (controller, ui)
    };
    let (first, ui) = start(dir.path());
    let app = App {
        controller: first.clone(),
        ui: ui.clone(),
        tiles: Arc::new(Tiles::default()),
        _dir: tempfile::tempdir().expect("unused"),
    };
    host_and_register(&app, "carol").await;
    first.shutdown().await;

    let (second, ui) = start(dir.path());
    let snapshot = loop {
        let s = second.snapshot().await.expect("snapshot");
        if s.connection == Connection::Online {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(snapshot.me.expect("signed in").id, "carol");
    assert!(snapshot.server.expect("server").hosted);
    assert_eq!(snapshot.devices.camera, "synthetic");
    drop(ui);
    second.shutdown().await;
}
