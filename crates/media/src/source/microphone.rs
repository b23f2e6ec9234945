//! Microphones through cpal: any device, sample format, channel count and
//! rate in; 20 ms frames of 48 kHz mono out.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use rubato::{FftFixedOut, Resampler};

use crate::MediaError;
use crate::frame::{AudioFrame, FRAME_SAMPLES, SAMPLE_RATE, now_us};
use crate::source::AudioSource;
use crate::source::stream_thread::StreamThread;

/// An audio device as the user picks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDeviceInfo {
    /// Stable id to open it by.
    pub id: String,
    /// Shown to the user.
    pub name: String,
    /// The system's default for its direction.
    pub is_default: bool,
}

/// Microphones on this machine. Empty (not an error) when there are none.
pub fn list_microphones() -> Result<Vec<AudioDeviceInfo>, MediaError> {
    list(true)
}

/// Speakers/headphones on this machine.
pub fn list_speakers() -> Result<Vec<AudioDeviceInfo>, MediaError> {
    list(false)
}

fn list(input: bool) -> Result<Vec<AudioDeviceInfo>, MediaError> {
    let host = cpal::default_host();
    let default = if input {
        host.default_input_device()
    } else {
        host.default_output_device()
    };
    let default_id = default.and_then(|d| d.id().ok()).map(|id| id.to_string());
    let devices = if input {
        host.input_devices()
    } else {
        host.output_devices()
    };
    let devices = devices.map_err(|e| MediaError::DeviceNotFound {
        kind: kind(input),
        detail: format!("cannot list devices: {e}"),
    })?;
    Ok(devices
        .filter_map(|d| {
            let id = d.id().ok()?.to_string();
            Some(AudioDeviceInfo {
                is_default: Some(&id) == default_id.as_ref(),
                name: d.to_string(),
                id,
            })
        })
        .collect())
}

pub(crate) fn kind(input: bool) -> &'static str {
    if input { "microphone" } else { "speaker" }
}

/// Finds a device by id, or the default one.
pub(crate) fn find_device(id: Option<&str>, input: bool) -> Result<cpal::Device, MediaError> {
    let host = cpal::default_host();
    let not_found = |detail: String| MediaError::DeviceNotFound {
        kind: kind(input),
        detail,
    };
    match id {
        None => {
            let d = if input {
                host.default_input_device()
            } else {
                host.default_output_device()
            };
            d.ok_or_else(|| not_found("no default device".into()))
        }
        Some(id) => {
            let devices = if input {
                host.input_devices()
            } else {
                host.output_devices()
            };
            devices
                .map_err(|e| not_found(e.to_string()))?
                .find(|d| d.id().is_ok_and(|d| d.to_string() == id))
                .ok_or_else(|| not_found(format!("no device {id:?}")))
        }
    }
}

/// Maps cpal's errors to ours: a missing device, a busy or forbidden one,
/// or one that stopped.
pub(crate) fn device_error(input: bool, e: &cpal::Error) -> MediaError {
    let detail = e.to_string();
    match e.kind() {
        cpal::ErrorKind::DeviceBusy | cpal::ErrorKind::PermissionDenied => MediaError::DeviceBusy {
            kind: kind(input),
            detail,
        },
        cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::HostUnavailable => {
            MediaError::DeviceNotFound {
                kind: kind(input),
                detail,
            }
        }
        _ => MediaError::DeviceLost {
            kind: kind(input),
            detail,
        },
    }
}

/// Turns captured blocks of any rate and channel count into 20 ms frames of
/// 48 kHz mono.
struct Framer {
    channels: usize,
    resampler: Option<FftFixedOut<f32>>,
    pending: Vec<f32>,
    tx: SyncSender<Result<AudioFrame, MediaError>>,
}

impl Framer {
    fn new(
        rate: u32,
        channels: usize,
        tx: SyncSender<Result<AudioFrame, MediaError>>,
    ) -> Result<Self, MediaError> {
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                FftFixedOut::<f32>::new(rate as usize, SAMPLE_RATE as usize, FRAME_SAMPLES, 1, 1)
                    .map_err(|e| MediaError::Codec(format!("resampler {rate} Hz: {e}")))?,
            )
        };
        Ok(Self {
            channels: channels.max(1),
            resampler,
            pending: Vec::with_capacity(4096),
            tx,
        })
    }

    fn push<S: Copy>(&mut self, data: &[S], to_f32: impl Fn(S) -> f32) {
        let ch = self.channels;
        self.pending.extend(
            data.chunks(ch)
                .map(|frame| frame.iter().map(|s| to_f32(*s)).sum::<f32>() / ch as f32),
        );
        loop {
            let need = self
                .resampler
                .as_ref()
                .map_or(FRAME_SAMPLES, |r| r.input_frames_next());
            if self.pending.len() < need {
                break;
            }
            let chunk: Vec<f32> = self.pending.drain(..need).collect();
            let samples = match &mut self.resampler {
                None => chunk,
                Some(r) => match r.process(&[chunk], None) {
                    Ok(mut out) => out.remove(0),
                    Err(e) => {
                        tracing::warn!(error = %e, "resampling failed; dropping 20 ms");
                        continue;
                    }
                },
            };
            let frame = AudioFrame {
                samples: samples.into(),
                timestamp_us: now_us(),
            };
            // A reader that fell behind loses the newest 20 ms rather than
            // letting latency grow.
            if let Err(TrySendError::Disconnected(_)) = self.tx.try_send(Ok(frame)) {
                return;
            }
        }
    }
}

/// A microphone. Capture runs on its own thread (cpal streams may not leave
/// the thread that made them); dropping it stops capture and frees the device.
#[derive(Debug)]
pub struct Microphone {
    rx: Receiver<Result<AudioFrame, MediaError>>,
    stream: StreamThread,
    started: bool,
}

impl Microphone {
    /// Opens the microphone with this id, or the default one.
    pub fn open(id: Option<&str>) -> Result<Self, MediaError> {
        let (tx, rx) = sync_channel(10);
        let id = id.map(str::to_owned);
        let stream = StreamThread::spawn("beckon-mic-device", "microphone", move || {
            start_capture(id.as_deref(), tx)
        })?;
        Ok(Self {
            rx,
            stream,
            started: false,
        })
    }
}

fn start_capture(
    id: Option<&str>,
    tx: SyncSender<Result<AudioFrame, MediaError>>,
) -> Result<(cpal::Stream, String), MediaError> {
    let device = find_device(id, true)?;
    let name = device.to_string();
    // With no audio server, cpal still names a default device; it is here
    // that a missing microphone shows.
    let config = device
        .default_input_config()
        .map_err(|e| device_error(true, &e))?;
    let (rate, channels) = (config.sample_rate(), usize::from(config.channels()));
    let errors = tx.clone();
    let on_error = move |e: cpal::Error| {
        tracing::warn!(error = %e, "microphone error");
        let _ = errors.try_send(Err(device_error(true, &e)));
    };
    let mut framer = Framer::new(rate, channels, tx)?;
    let stream_config = config.config();
    let stream = match config.sample_format() {
        cpal::SampleFormat::F32 => device.build_input_stream(
            stream_config,
            move |d: &[f32], _: &_| framer.push(d, |s| s),
            on_error,
            None,
        ),
        cpal::SampleFormat::I16 => device.build_input_stream(
            stream_config,
            move |d: &[i16], _: &_| framer.push(d, |s| f32::from(s) / 32768.0),
            on_error,
            None,
        ),
        cpal::SampleFormat::I32 => device.build_input_stream(
            stream_config,
            move |d: &[i32], _: &_| framer.push(d, |s| s as f32 / 2_147_483_648.0),
            on_error,
            None,
        ),
        cpal::SampleFormat::U16 => device.build_input_stream(
            stream_config,
            move |d: &[u16], _: &_| framer.push(d, |s| (f32::from(s) - 32768.0) / 32768.0),
            on_error,
            None,
        ),
        cpal::SampleFormat::U8 => device.build_input_stream(
            stream_config,
            move |d: &[u8], _: &_| framer.push(d, |s| (f32::from(s) - 128.0) / 128.0),
            on_error,
            None,
        ),
        other => {
            return Err(MediaError::DeviceBusy {
                kind: "microphone",
                detail: format!("unsupported sample format {other:?}"),
            });
        }
    }
    .map_err(|e| device_error(true, &e))?;
    stream.play().map_err(|e| device_error(true, &e))?;
    tracing::info!(%name, rate, channels, "microphone open");
    Ok((stream, name))
}

impl AudioSource for Microphone {
    fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
        // Devices take a second or two to deliver their first samples.
        let wait = if self.started {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(5)
        };
        match self.rx.recv_timeout(wait) {
            Ok(frame) => {
                self.started = true;
                frame
            }
            Err(RecvTimeoutError::Timeout) => Err(MediaError::DeviceLost {
                kind: "microphone",
                detail: format!("no audio for {} s", wait.as_secs()),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(MediaError::DeviceLost {
                kind: "microphone",
                detail: "capture stopped".into(),
            }),
        }
    }

    fn name(&self) -> String {
        self.stream.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_framer_downmixes_and_resamples_to_20_ms_of_48k_mono() {
        let (tx, rx) = sync_channel(100);
        let mut f = Framer::new(44_100, 2, tx).unwrap();
        // One second of a 1 kHz stereo tone at 44.1 kHz, in odd-sized blocks.
        let tone: Vec<f32> = (0..44_100)
            .flat_map(|i| {
                let s = 0.5 * (std::f32::consts::TAU * 1000.0 * i as f32 / 44_100.0).sin();
                [s, s]
            })
            .collect();
        for block in tone.chunks(2 * 441) {
            f.push(block, |s| s);
        }
        let frames: Vec<AudioFrame> = rx.try_iter().map(Result::unwrap).collect();
        assert!((47..=50).contains(&frames.len()), "{}", frames.len());
        assert!(frames.iter().all(|fr| fr.samples.len() == FRAME_SAMPLES));
        let tail: Vec<f32> = frames[10..]
            .iter()
            .flat_map(|f| f.samples.iter().copied())
            .collect();
        let (freq, share) =
            crate::source::synthetic::detect_tone(&tail, &[900.0, 1000.0, 1100.0]).unwrap();
        assert_eq!(freq, 1000.0);
        assert!(share > 0.9, "{share}");
    }

    #[test]
    fn integer_samples_are_scaled_to_unit_range() {
        let (tx, rx) = sync_channel(10);
        let mut f = Framer::new(48_000, 1, tx).unwrap();
        f.push(&vec![i16::MIN; FRAME_SAMPLES], |s| f32::from(s) / 32768.0);
        let frame = rx.try_recv().unwrap().unwrap();
        assert!(frame.samples.iter().all(|s| (*s + 1.0).abs() < 1e-6));
    }
}
