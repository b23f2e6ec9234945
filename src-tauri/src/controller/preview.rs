//! The camera and microphone outside a call: the self view on the waiting
//! page and in settings, and the microphone level meter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use beckon_media::source::{AudioSource, VideoSource};

use crate::tiles::{SELF_TILE, Tiles};
use crate::view::UiEvent;

use super::Ui;

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
