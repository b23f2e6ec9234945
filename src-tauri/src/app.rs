//! The Tauri side: the window, plugins, and commands of a few lines each
//! that forward to the controller.

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use tauri::ipc::Response;
use tauri::{AppHandle, Emitter, Manager, State};
use tauri_plugin_notification::NotificationExt;

use crate::controller::{CallController, Env, Ui};
use crate::tiles::Tiles;
use crate::view::{Command, EVENT, Reply, Snapshot, UiError, UiEvent};

/// Does what the UI asked; changes arrive as events.
#[tauri::command]
async fn send(cmd: Command, controller: State<'_, CallController>) -> Result<Reply, UiError> {
    controller.send(cmd).await
}

/// Everything the UI shows, for its first paint.
#[tauri::command]
async fn snapshot(controller: State<'_, CallController>) -> Result<Snapshot, UiError> {
    controller.snapshot().await
}

/// The newest frame of `tile` after frame number `after` (raw bytes; empty
/// when none came within a second, so the window can stop asking).
#[tauri::command]
async fn next_frame(
    tile: String,
    after: u64,
    tiles: State<'_, Arc<Tiles>>,
) -> Result<Response, UiError> {
    let frame = tiles.next(&tile, after, Duration::from_secs(1)).await;
    Ok(Response::new(frame.unwrap_or_default()))
}

/// Events to the window; a notification when a call rings while the
/// window is hidden or in the background.
struct WindowUi(AppHandle);

impl Ui for WindowUi {
    fn emit(&self, event: UiEvent) {
        if let Err(e) = self.0.emit(EVENT, event) {
            tracing::warn!(error = %e, "event not delivered to the window");
        }
    }

    fn ringing(&self, title: &str, body: &str) {
        let window = self.0.get_webview_window("main");
        let in_view = window
            .as_ref()
            .is_some_and(|w| w.is_visible().unwrap_or(false) && w.is_focused().unwrap_or(false));
        if in_view {
            return;
        }
        if let Some(w) = &window {
            let _ = w.request_user_attention(Some(tauri::UserAttentionType::Critical));
        }
        if let Err(e) = self
            .0
            .notification()
            .builder()
            .title(title)
            .body(body)
            .show()
        {
            tracing::info!(error = %e, "no system notification for the incoming call");
        }
    }
}

/// A separate profile: `--data-dir DIR` or `BECKON_DATA_DIR` (e.g. a
/// second user on one machine, or a test). Such an instance runs beside
/// others instead of handing over to the first.
fn profile_dir() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--data-dir" {
            return args.next().map(PathBuf::from);
        }
    }
    std::env::var_os("BECKON_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// Settings and the hosted server's data: the profile's folder, else the
/// system's place for app data.
fn data_dir(app: &AppHandle) -> PathBuf {
    profile_dir().unwrap_or_else(|| {
        app.path()
            .app_data_dir()
            .unwrap_or_else(|_| PathBuf::from(".beckon"))
    })
}

/// Starts the app.
pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BECKON_LOG")
                .unwrap_or_else(|_| "info,webrtc=error,webrtc_ice=error,rtc=error".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let separate_profile = profile_dir().is_some();
    let mut builder = tauri::Builder::default();
    if !separate_profile {
        builder = builder.plugin(tauri_plugin_single_instance::init(|app, _, _| {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.unminimize();
                let _ = w.show();
                let _ = w.set_focus();
            }
        }));
    }
    builder
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_notification::init())
        .setup(|app| {
            let handle = app.handle().clone();
            let dir = data_dir(&handle);
            let tiles = Arc::new(Tiles::default());
            let env = Env {
                data_dir: dir,
                ui: Arc::new(WindowUi(handle)),
                tiles: tiles.clone(),
            };
            let (controller, task) = CallController::new(env);
            tauri::async_runtime::spawn(task);
            app.manage(controller);
            app.manage(tiles);
            // Take the keyboard at start (a window manager would give it);
            // WebKit also answers snapshots only for a focused view.
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.set_focus();
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![send, snapshot, next_frame])
        .build(tauri::generate_context!("../tauri.conf.json"))
        .expect("the app could not be built")
        .run(|app, event| {
            if let tauri::RunEvent::ExitRequested { .. } = event {
                let controller = app.state::<CallController>().inner().clone();
                tauri::async_runtime::block_on(async move {
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(3),
                        controller.shutdown(),
                    )
                    .await;
                });
            }
        });
}
