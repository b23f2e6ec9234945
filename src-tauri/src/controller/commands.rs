//! What the UI asks for: each command, done or refused with a [`UiError`].

use beckon_client::{Client, Credentials};
use beckon_protocol::{CallId, RejectReason, SearchQuery, UserId};

use super::Actor;
use super::convert::{invalid, ui_error};
use super::session::normalise_url;
use crate::devices;
use crate::settings::ServerChoice;
use crate::view::{Command, Reply, UiError, UiErrorCode};

impl Actor {
    pub(super) async fn command(&mut self, cmd: Command) -> Result<Reply, UiError> {
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
                self.client()?
                    .add(call_id, users)
                    .await
                    .map_err(|e| ui_error(&e))?;
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
                    m.media().set_mic(on);
                }
                self.emit_call();
            }
            Command::SetCamera { on } => {
                self.extras.camera = on;
                if let Some(m) = &self.media {
                    m.media().set_camera(on);
                }
                self.update_preview().await;
                self.emit_call();
            }
            Command::SetSpeaker { on } => {
                self.extras.speaker = on;
                if let Some(m) = &self.media {
                    m.media().set_speaker(on);
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

    pub(super) fn client(&self) -> Result<&Client, UiError> {
        self.client
            .as_ref()
            .ok_or_else(|| UiError::new(UiErrorCode::SignedOut, "Sign in first."))
    }

    pub(super) fn call_id(&self) -> Result<CallId, UiError> {
        self.client()?
            .current_call()
            .map(|c| c.info.call_id)
            .ok_or_else(|| UiError::new(UiErrorCode::NoCall, "That call is over."))
    }
}

pub(super) fn parse_user(s: &str) -> Result<UserId, UiError> {
    s.trim().parse().map_err(|e| invalid("User", e))
}
