//! The voice stage between the microphone and the encoder: echo
//! cancellation (AEC3), noise suppression, automatic gain and a high-pass
//! filter, from `sonora` (WebRTC's audio processing in Rust; docs/voice.md
//! says why that one).
//!
//! It works on 10 ms frames of 48 kHz mono. Each tick, what the speaker
//! plays goes in first ([`VoiceProcessor::render`]), then the microphone's
//! frame of the same tick ([`VoiceProcessor::capture`]), with how long the
//! far end takes from here to the speaker and back into the microphone.

use sonora::config::{
    EchoCanceller, GainController2, HighPassFilter, NoiseSuppression, NoiseSuppressionLevel,
};
use sonora::{AudioProcessing, Config, StreamConfig};

/// Samples in one frame: 10 ms at 48 kHz.
pub const FRAME: usize = 480;
const RATE: u32 = 48_000;

/// Which stages run. All on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceSettings {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub auto_gain: bool,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self {
            echo_cancellation: true,
            noise_suppression: true,
            auto_gain: true,
        }
    }
}

impl VoiceSettings {
    fn config(self) -> Config {
        Config {
            // Hum and handling noise go whatever else is on.
            high_pass_filter: Some(HighPassFilter::default()),
            echo_canceller: self.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: self.noise_suppression.then(|| NoiseSuppression {
                level: NoiseSuppressionLevel::High,
                ..NoiseSuppression::default()
            }),
            gain_controller2: self.auto_gain.then(|| GainController2 {
                adaptive_digital: Some(Default::default()),
                ..GainController2::default()
            }),
            ..Config::default()
        }
    }
}

/// One call's voice processing.
pub struct VoiceProcessor {
    apm: AudioProcessing,
    settings: VoiceSettings,
    out: Vec<f32>,
}

impl std::fmt::Debug for VoiceProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceProcessor")
            .field("settings", &self.settings)
            .finish()
    }
}

impl VoiceProcessor {
    pub fn new(settings: VoiceSettings) -> Self {
        let stream = StreamConfig::new(RATE, 1);
        let apm = AudioProcessing::builder()
            .config(settings.config())
            .capture_config(stream)
            .render_config(stream)
            .build();
        Self {
            apm,
            settings,
            out: vec![0.0; FRAME],
        }
    }

    pub fn settings(&self) -> VoiceSettings {
        self.settings
    }

    /// Turns stages on or off; what did not change keeps what it learned.
    pub fn set_settings(&mut self, settings: VoiceSettings) {
        if settings != self.settings {
            self.settings = settings;
            self.apm.apply_config(settings.config());
        }
    }

    /// What the speaker plays: one frame, in [-1, 1]. Frames of another
    /// length are ignored.
    pub fn render(&mut self, far: &[f32]) {
        if far.len() != FRAME {
            return;
        }
        if let Err(e) = self.apm.process_render_f32(&[far], &mut [&mut self.out]) {
            tracing::debug!(?e, "render frame refused");
        }
    }

    /// Processes one microphone frame in place. `delay_ms` is how long
    /// the far end takes from [`render`](Self::render) to the speaker and
    /// back into the microphone as far as the buffers know (the canceller
    /// finds the rest itself).
    pub fn capture(&mut self, delay_ms: u32, mic: &mut [f32]) {
        if mic.len() != FRAME {
            return;
        }
        // Clamped to 0..=500 ms; the frame is processed either way.
        let _ = self
            .apm
            .set_stream_delay_ms(i32::try_from(delay_ms).unwrap_or(i32::MAX));
        match self.apm.process_capture_f32(&[mic], &mut [&mut self.out]) {
            Ok(()) => mic.copy_from_slice(&self.out),
            Err(e) => tracing::debug!(?e, "capture frame refused"),
        }
    }

    /// Echo return loss enhancement the canceller reports, dB.
    pub fn erle_db(&self) -> Option<f64> {
        self.apm.statistics().echo_return_loss_enhancement
    }
}

#[cfg(test)]
mod tests;
