//! The server and the session: hosting one, choosing one, signing in and
//! out, the saved settings, start-up and shut-down.

use beckon_client::{Client, ClientConfig, Credentials};
use beckon_protocol::DeviceId;

use super::Actor;
use super::convert::ui_error;
use crate::host::{self, Host};
use crate::settings::{SavedSession, ServerChoice};
use crate::view::{Connection, ServerView, UiError, UiErrorCode, UiEvent};

impl Actor {
    pub(super) fn save(&self) {
        if let Err(e) = self.file.save(&self.settings) {
            tracing::warn!(error = %e, "settings not saved");
            self.ui(UiEvent::Problem {
                message: format!("Settings could not be saved: {e}"),
            });
        }
    }

    /// Starts the chosen server and resumes the saved session.
    pub(super) async fn restore(&mut self) {
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

    pub(super) async fn close(&mut self) {
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

    pub(super) async fn start_host(&mut self, port: Option<u16>) -> Result<(), UiError> {
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

    pub(super) fn use_server(&mut self, url: String) {
        self.server = Some(ServerView {
            url,
            hosted: false,
            lan_urls: Vec::new(),
        });
        self.set_connection(Connection::SignedOut { reason: None });
    }

    pub(super) async fn sign_in(&mut self, credentials: Credentials) -> Result<(), UiError> {
        self.sign_out_locally().await;
        let result = self.connect(credentials).await;
        if let Err(e) = &result {
            self.set_connection(Connection::SignedOut {
                reason: Some(e.message.clone()),
            });
        }
        result
    }

    pub(super) async fn connect(&mut self, credentials: Credentials) -> Result<(), UiError> {
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

    pub(super) fn device_id(&mut self) -> DeviceId {
        if let Some(id) = self.settings.device.as_deref().and_then(|d| d.parse().ok()) {
            return id;
        }
        let id = format!("desktop-{}", &host::new_echo_password()[..8]).to_lowercase();
        self.settings.device = Some(id.clone());
        self.save();
        id.parse().expect("a valid device id")
    }

    /// Forgets the session here (the server keeps it unless logged out).
    pub(super) async fn sign_out_locally(&mut self) {
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

    pub(super) fn set_connection(&mut self, connection: Connection) {
        self.connection = connection;
        self.ui(UiEvent::Connection {
            connection: self.connection.clone(),
            server: self.server.clone(),
            me: self.me.clone(),
        });
    }
}

/// `host:port` → `ws://host:port/ws`; a `ws(s)://` URL is kept.
pub(super) fn normalise_url(input: &str) -> Result<String, UiError> {
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
