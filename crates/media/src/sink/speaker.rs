//! Playout through cpal: 48 kHz mono in, whatever the device wants out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, StreamTrait};

use crate::MediaError;
use crate::frame::SAMPLE_RATE;
use crate::source::microphone::{device_error, find_device};
use crate::source::stream_thread::StreamThread;

/// The most audio the speaker holds before it drops the oldest: more would
/// only add delay.
const MAX_QUEUED_MS: usize = 200;

/// Samples waiting to be played, at 48 kHz.
#[derive(Debug, Default)]
struct Queue {
    samples: VecDeque<f32>,
    /// Position between input samples when the device runs at another rate.
    phase: f64,
    underruns: u64,
}

/// A speaker (or headphones). Playback runs on its own thread; dropping it
/// stops playback and frees the device.
#[derive(Debug)]
pub struct Speaker {
    queue: Arc<Mutex<Queue>>,
    stream: StreamThread,
    muted: Arc<AtomicBool>,
}

impl Speaker {
    /// Opens the speaker with this id, or the default one.
    pub fn open(id: Option<&str>) -> Result<Self, MediaError> {
        let queue = Arc::new(Mutex::new(Queue::default()));
        let muted = Arc::new(AtomicBool::new(false));
        let (q, mute) = (queue.clone(), muted.clone());
        let id = id.map(str::to_owned);
        let stream = StreamThread::spawn("beckon-speaker", "speaker", move || {
            start_playout(id.as_deref(), q, mute)
        })?;
        Ok(Self {
            queue,
            stream,
            muted,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.stream.name
    }

    /// Queues 48 kHz mono samples for playing.
    pub fn play(&self, samples: &[f32]) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.samples.extend(samples);
        let max = SAMPLE_RATE as usize * MAX_QUEUED_MS / 1000;
        let excess = q.samples.len().saturating_sub(max);
        q.samples.drain(..excess);
    }

    /// Silences (or un-silences) the speaker without closing it.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// Times the device wanted samples that were not there.
    pub fn underruns(&self) -> u64 {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .underruns
    }
}

fn start_playout(
    id: Option<&str>,
    queue: Arc<Mutex<Queue>>,
    muted: Arc<AtomicBool>,
) -> Result<(cpal::Stream, String), MediaError> {
    let device = find_device(id, false)?;
    let name = device.to_string();
    let config = device
        .default_output_config()
        .map_err(|e| device_error(false, &e))?;
    let (rate, channels) = (config.sample_rate(), usize::from(config.channels()));
    let step = f64::from(SAMPLE_RATE) / f64::from(rate);
    let fill = move |out: &mut [f32]| {
        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
        let silent = muted.load(Ordering::Relaxed);
        let mut short = false;
        for frame in out.chunks_mut(channels.max(1)) {
            // Linear interpolation between the two nearest 48 kHz samples.
            let (a, b) = (q.samples.front().copied(), q.samples.get(1).copied());
            let s = match (a, b) {
                (Some(a), Some(b)) => a + (b - a) * q.phase as f32,
                (Some(a), None) => a,
                _ => {
                    short = true;
                    0.0
                }
            };
            frame.fill(if silent { 0.0 } else { s });
            q.phase += step;
            while q.phase >= 1.0 {
                q.phase -= 1.0;
                q.samples.pop_front();
            }
        }
        if short {
            q.underruns += 1;
        }
    };
    let on_error = |e: cpal::Error| tracing::warn!(error = %e, "speaker error");
    let stream_config = config.config();
    let stream = match config.sample_format() {
        cpal::SampleFormat::F32 => device.build_output_stream(
            stream_config,
            move |d: &mut [f32], _: &_| fill(d),
            on_error,
            None,
        ),
        cpal::SampleFormat::I16 => {
            let mut buf = Vec::new();

            device.build_output_stream(
                stream_config,
                move |d: &mut [i16], _: &_| {
                    buf.resize(d.len(), 0.0);
                    fill(&mut buf);
                    for (o, s) in d.iter_mut().zip(&buf) {
                        *o = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
                    }
                },
                on_error,
                None,
            )
        }
        cpal::SampleFormat::I32 => {
            let mut buf = Vec::new();

            device.build_output_stream(
                stream_config,
                move |d: &mut [i32], _: &_| {
                    buf.resize(d.len(), 0.0);
                    fill(&mut buf);
                    for (o, s) in d.iter_mut().zip(&buf) {
                        *o = (f64::from(s.clamp(-1.0, 1.0)) * 2_147_483_647.0) as i32;
                    }
                },
                on_error,
                None,
            )
        }
        other => {
            return Err(MediaError::DeviceBusy {
                kind: "speaker",
                detail: format!("unsupported sample format {other:?}"),
            });
        }
    }
    .map_err(|e| device_error(false, &e))?;
    stream.play().map_err(|e| device_error(false, &e))?;
    tracing::info!(%name, rate, channels, "speaker open");
    Ok((stream, name))
}
