//! Calls: placing one, what the client reports about it, and how it ended.

use beckon_client::{Client, ClientEvent, Notice, StopReason};
use beckon_protocol::{CallId, CallKind, UserId};
use beckon_session::Followed;

use super::call_view::{self, CallExtras};
use super::commands::parse_user;
use super::convert::{self, person, ui_error};
use super::{Actor, now_ms};
use crate::view::{Connection, UiError, UiErrorCode, UiEvent};

impl Actor {
    pub(super) async fn call(&mut self, users: Vec<String>, video: bool) -> Result<(), UiError> {
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

    pub(super) fn clear_call(&mut self) {
        self.extras = CallExtras::default();
        if self.last_call.take().is_some() {
            self.ui(UiEvent::Call { call: None });
        }
    }

    /// Tells the UI about the call when what it shows changed.
    pub(super) fn emit_call(&mut self) {
        let view = match (
            self.client.as_ref().and_then(Client::current_call),
            self.client.as_ref().and_then(Client::me),
        ) {
            (Some(current), Some(me)) => Some(call_view::view(&current, &me, &self.extras, |u| {
                self.who(u)
            })),
            _ => None,
        };
        if view != self.last_call {
            self.last_call = view.clone();
            self.ui(UiEvent::Call { call: view });
        }
    }

    pub(super) async fn client_event(&mut self, event: ClientEvent) {
        // The call's media follows members coming and going, and their
        // signals.
        let followed = match &self.media {
            Some(m) => m.follow(&event).await,
            None => Ok(Followed::Nothing),
        };
        match followed {
            Ok(Followed::Removed(user)) => {
                self.extras.remote.remove(&user);
                self.env.tiles.clear(user.as_str());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "the call's media could not follow"),
        }
        match event {
            ClientEvent::Connected { session } => {
                if session.resumed
                    && let Some(m) = &self.media
                {
                    // What broke signaling may have broken the media paths.
                    m.media().reconnect_all();
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

    pub(super) async fn notice(&mut self, notice: Notice) {
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
                self.learn([change.user.clone()]).await;
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
                last,
            } => {
                let me = self.client.as_ref().and_then(Client::me);
                // Leaving or ending it ourselves needs no name.
                let by = by.filter(|b| me.as_ref() != Some(b));
                let outcome = call_view::ended(
                    &last,
                    me.as_ref(),
                    reason,
                    by.as_ref(),
                    self.extras.connected_at_ms.is_some(),
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

    pub(super) async fn call_over(&mut self, call_id: &CallId, reason: &str, message: String) {
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
}
