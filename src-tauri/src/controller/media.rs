//! The media of the current call: started when the call connects,
//! stopped when it ends, its events and per-second stats.

use std::sync::Arc;

use beckon_media::call::MediaEvent;
use beckon_media::devices as media_devices;
use beckon_protocol::{CallId, CallKind};
use beckon_session::{CallSession, SessionEvent, SessionOptions, Sources};

use super::call_view;
use super::{Actor, STATS_EVERY};
use crate::devices;
use crate::tiles::{SELF_TILE, TileSink};
use crate::view::UiEvent;

impl Actor {
    pub(super) async fn start_media(&mut self, call_id: CallId) {
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
        let mut problems = Vec::new();
        let camera = match kind {
            CallKind::Video => media_devices::open_camera(&self.choice.camera, devices::CAPTURE)
                .unwrap_or_else(|e| {
                    problems.push(format!(
                        "Camera unavailable: {e}. The others see your picture instead."
                    ));
                    None
                }),
            CallKind::Voice => None,
        };
        let (mic, mic_problem) =
            media_devices::microphone_or_silence(&self.choice.microphone, me.as_str());
        if let Some(e) = mic_problem {
            problems.push(format!(
                "Microphone unavailable: {e}. The others cannot hear you."
            ));
        }
        let (speaker, speaker_problem) = media_devices::speaker_or_null(&self.choice.speaker);
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
        let sources = Sources {
            camera,
            mic,
            speaker,
            sink: sink.clone(),
            self_view: Some(sink),
        };
        let options = SessionOptions {
            we_offer: self.extras.we_offer,
            mic_on: self.extras.mic,
            camera_on: self.extras.camera,
            ..SessionOptions::default()
        };
        let session = match CallSession::start(&client, call_id, sources, options).await {
            Ok(session) => session,
            Err(e) => {
                self.ui(UiEvent::Problem {
                    message: format!("Media could not start: {e}"),
                });
                return;
            }
        };
        session.media().set_speaker(self.extras.speaker);
        self.media = Some(session);
        self.stats_at = Some(tokio::time::Instant::now() + STATS_EVERY);
    }

    pub(super) async fn stop_media(&mut self) {
        self.stats_at = None;
        if let Some(m) = self.media.take() {
            m.close().await;
            for user in m.media().members() {
                self.env.tiles.clear(user.as_str());
            }
            self.env.tiles.clear(SELF_TILE);
        }
    }

    pub(super) async fn media_event(&mut self, event: SessionEvent) {
        let event = match event {
            SessionEvent::Media(event) => event,
            SessionEvent::SignalNotSent { error, .. } => {
                tracing::debug!(%error, "media signal not sent");
                return;
            }
        };
        match event {
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

    pub(super) async fn stats(&mut self) {
        let Some(m) = &self.media else {
            self.stats_at = None;
            return;
        };
        let stats = m.media().stats().await;
        call_view::apply_stats(&mut self.extras, &stats);
        self.extras.video_paused =
            m.media().send_stats().video_step == Some(beckon_media::ladder::Step::Paused);
        self.stats_at = Some(tokio::time::Instant::now() + STATS_EVERY);
        self.emit_call();
    }
}

pub(super) async fn next_media(media: &mut Option<CallSession>) -> Option<SessionEvent> {
    match media {
        Some(m) => m.next_event().await,
        None => std::future::pending().await,
    }
}
