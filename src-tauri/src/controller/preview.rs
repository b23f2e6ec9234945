//! The camera and microphone outside a call: the self view on the waiting
//! page and in settings, and the microphone level meter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use beckon_client::Client;
use beckon_media::devices as media_devices;
use beckon_media::source::{AudioSource, VideoSource};
use beckon_protocol::CallKind;

use super::{Actor, Ui};
use crate::devices;
use crate::tiles::{SELF_TILE, Tiles};
use crate::view::{Devices, UiError, UiErrorCode, UiEvent};

/// Capture threads feeding the self tile and the level meter.
pub(crate) struct Preview {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Whether the microphone meter runs.
    pub(crate) metering: bool,
}

impl std::fmt::Debug for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preview")
            .field("metering", &self.metering)
            .finish_non_exhaustive()
    }
}

/// Microphone frames per level report (100 ms).
const METER_FRAMES: usize = 5;

impl Preview {
    /// Starts showing `camera` in the self tile and reporting `mic`'s level.
    pub(crate) fn start(
        camera: Option<Box<dyn VideoSource>>,
        mic: Option<Box<dyn AudioSource>>,
        tiles: Arc<Tiles>,
        ui: Arc<dyn Ui>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if let Some(mut camera) = camera {
            let stop = stop.clone();
            let ui = ui.clone();
            threads.push(spawn("beckon-preview", move || {
                while !stop.load(Ordering::Relaxed) {
                    match camera.next_frame() {
                        Ok(frame) => tiles.offer(SELF_TILE, frame),
                        Err(e) => {
                            ui.emit(UiEvent::Problem {
                                message: format!("The camera stopped: {e}"),
                            });
                            break;
                        }
                    }
                }
            }));
        }
        let metering = mic.is_some();
        if let Some(mut mic) = mic {
            let stop = stop.clone();
            threads.push(spawn("beckon-meter", move || {
                let mut sum = 0.0f32;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    match mic.next_frame() {
                        Ok(frame) => {
                            let rms = frame.rms();
                            sum += rms * rms;
                            n += 1;
                        }
                        Err(e) => {
                            ui.emit(UiEvent::Problem {
                                message: format!("The microphone stopped: {e}"),
                            });
                            break;
                        }
                    }
                    if n == METER_FRAMES {
                        let level = (sum / n as f32).sqrt().min(1.0);
                        ui.emit(UiEvent::MicLevel { level });
                        (sum, n) = (0.0, 0);
                    }
                }
            }));
        }
        Self {
            stop,
            threads,
            metering,
        }
    }

    /// Stops capture and waits until the devices are released.
    pub(crate) async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("a thread can be started")
}

impl Actor {
    pub(super) fn refresh_devices(&mut self) {
        let (cameras, camera_problem) = devices::cameras();
        self.listed = devices::list(&self.choice, cameras, camera_problem);
        self.ui(UiEvent::Devices {
            devices: self.devices(),
        });
    }

    /// The listed devices with the current choice.
    pub(super) fn devices(&self) -> Devices {
        Devices {
            camera: self.choice.camera.clone(),
            microphone: self.choice.microphone.clone(),
            speaker: self.choice.speaker.clone(),
            ..self.listed.clone()
        }
    }

    pub(super) async fn choose(
        &mut self,
        camera: Option<String>,
        microphone: Option<String>,
        speaker: Option<String>,
    ) -> Result<(), UiError> {
        let me = self.me.as_ref().map_or("me".to_owned(), |m| m.id.clone());
        if let Some(camera) = camera.filter(|c| *c != self.choice.camera) {
            if let Some(m) = &self.media {
                let source = media_devices::open_camera(&camera, devices::CAPTURE)
                    .map_err(|e| UiError::new(UiErrorCode::CameraFailed, e.to_string()))?;
                match source {
                    Some(source) => m
                        .media()
                        .switch_camera(source)
                        .map_err(|e| UiError::new(UiErrorCode::CameraFailed, e.to_string()))?,
                    None => {
                        m.media().set_camera(false);
                        self.extras.camera = false;
                    }
                }
            }
            self.choice.camera = camera.clone();
            self.settings.camera = Some(camera);
        }
        if let Some(mic) = microphone.filter(|m| *m != self.choice.microphone) {
            if let Some(m) = &self.media {
                let source = media_devices::open_microphone(&mic, &me)
                    .map_err(|e| UiError::new(UiErrorCode::MicrophoneFailed, e.to_string()))?;
                m.media().switch_microphone(source);
            }
            self.choice.microphone = mic.clone();
            self.settings.microphone = Some(mic);
        }
        if let Some(out) = speaker.filter(|s| *s != self.choice.speaker) {
            if let Some(m) = &self.media {
                let (output, problem) = media_devices::speaker_or_null(&out);
                if let Some(e) = problem {
                    return Err(UiError::new(UiErrorCode::SpeakerFailed, e.to_string()));
                }
                m.media().switch_speaker(output);
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

    /// Runs the camera preview when the settings page or the waiting page
    /// of a video call shows it, and the meter for settings.
    pub(super) async fn update_preview(&mut self) {
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
            match media_devices::open_camera(&self.choice.camera, devices::CAPTURE) {
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
            match media_devices::open_microphone(&self.choice.microphone, &me) {
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

    pub(super) async fn stop_preview(&mut self) {
        if let Some(p) = self.preview.take() {
            p.stop().await;
            self.env.tiles.clear(SELF_TILE);
        }
    }
}
