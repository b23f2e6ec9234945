//! What the app remembers between runs: the server, the session, devices.
//! One JSON file in the app's data folder, written whole (to a temporary
//! file, then renamed) and readable only by its owner, since it holds a
//! session token.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which server the app uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ServerChoice {
    /// Run the server inside the app.
    Hosted {
        /// The port it listened on last (kept so others' saved address
        /// keeps working).
        port: Option<u16>,
    },
    /// A server somewhere else.
    Remote {
        /// Its WebSocket URL.
        url: String,
    },
}

/// A session to resume on the next start.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    /// Server it belongs to.
    pub url: String,
    /// Who.
    pub user: String,
    /// The session token. Secret.
    pub token: String,
}

impl std::fmt::Debug for SavedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedSession")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Everything remembered.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The server, once chosen.
    pub server: Option<ServerChoice>,
    /// The last user signed in (prefills the form).
    pub last_user: Option<String>,
    /// The session to resume.
    pub session: Option<SavedSession>,
    /// Chosen camera id.
    pub camera: Option<String>,
    /// Chosen microphone id.
    pub microphone: Option<String>,
    /// Chosen speaker id.
    pub speaker: Option<String>,
    /// The echo contact's password on the hosted server. Secret.
    pub echo_password: Option<String>,
    /// This installation's device id.
    pub device: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("last_user", &self.last_user)
            .field("session", &self.session)
            .field("camera", &self.camera)
            .field("microphone", &self.microphone)
            .field("speaker", &self.speaker)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Where the settings live.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    path: PathBuf,
}

impl SettingsFile {
    /// `settings.json` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join("settings.json"),
        }
    }

    /// The saved settings; defaults when there are none. A damaged file is
    /// set aside (renamed `.broken`) rather than lost or fatal.
    pub fn load(&self) -> Settings {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Settings::default();
        };
        match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, path = %self.path.display(), "settings unreadable; starting afresh");
                let _ = std::fs::rename(&self.path, self.path.with_extension("json.broken"));
                Settings::default()
            }
        }
    }

    /// Saves `settings`.
    pub fn save(&self, settings: &Settings) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(settings).map_err(std::io::Error::other)?;
        write_private(&tmp, &text)?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_save_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SettingsFile::in_dir(dir.path());
        assert_eq!(file.load(), Settings::default());
        let s = Settings {
            server: Some(ServerChoice::Hosted { port: Some(7600) }),
            last_user: Some("alice".into()),
            session: Some(SavedSession {
                url: "ws://127.0.0.1:7600/ws".into(),
                user: "alice".into(),
                token: "secret-token".into(),
            }),
            camera: Some("synthetic".into()),
            ..Settings::default()
        };
        file.save(&s).expect("save");
        assert_eq!(file.load(), s);
        assert!(!format!("{s:?}").contains("secret-token"));
    }

    #[cfg(unix)]
    #[test]
    fn only_the_owner_can_read_the_settings() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SettingsFile::in_dir(dir.path());
        file.save(&Settings::default()).expect("save");
        let mode = std::fs::metadata(dir.path().join("settings.json"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }

    #[test]
    fn a_damaged_file_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("settings.json"), "{ not json").expect("write");
        let file = SettingsFile::in_dir(dir.path());
        assert_eq!(file.load(), Settings::default());
        assert!(dir.path().join("settings.json.broken").exists());
    }
}
