//! Mixes every remote member's voice into one stream for the speaker, and
//! measures each member's level (for a speaking indicator) and tone (for
//! tests that tell members apart by ear).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use beckon_protocol::UserId;

use crate::MediaError;
use crate::frame::{FRAME_SAMPLES, rms};
use crate::sink::jitter::AudioReceiver;
use crate::sink::speaker::Speaker;
use crate::source::synthetic::detect_tone;

/// Where mixed audio goes: a speaker, or a buffer a test reads.
pub trait AudioOutput: Send {
    /// Plays 20 ms of 48 kHz mono.
    fn play(&mut self, samples: &[f32]);
}

impl AudioOutput for Speaker {
    fn play(&mut self, samples: &[f32]) {
        Speaker::play(self, samples);
    }
}

/// Keeps the last few seconds of what was played, for tests and meters.
#[derive(Debug, Clone, Default)]
pub struct RecordingOutput {
    samples: Arc<Mutex<VecDeque<f32>>>,
}

impl RecordingOutput {
    const KEEP: usize = 48_000 * 5;

    /// The last `n` samples played (fewer when less was played).
    pub fn last(&self, n: usize) -> Vec<f32> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.iter().skip(s.len().saturating_sub(n)).copied().collect()
    }
}

impl AudioOutput for RecordingOutput {
    fn play(&mut self, samples: &[f32]) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.extend(samples);
        let excess = s.len().saturating_sub(Self::KEEP);
        s.drain(..excess);
    }
}

/// Frames of a member kept for measuring: half a second.
const WINDOW_FRAMES: usize = 25;

/// The tones synthetic microphones use (see `synthetic::tone_for`).
pub fn tone_candidates() -> Vec<f32> {
    (0..16).map(|k| 400.0 + 100.0 * k as f32).collect()
}

/// What the mixer knows of one member's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberAudioStats {
    /// RMS level over the last half second (0 when silent).
    pub level: f32,
    /// The synthetic tone heard, when one stands out.
    pub tone_hz: Option<f32>,
    /// 20 ms frames played from this member.
    pub frames: u64,
    /// Packets that arrived too late to play.
    pub late: u64,
    /// Times playout ran dry.
    pub underruns: u64,
    /// The jitter buffer's cushion, in ms.
    pub buffer_ms: u32,
    /// Ticks played without their packet (lost or waited for).
    pub concealed: u64,
    /// Packets dropped to bring the delay down (only after a burst; a
    /// smaller excess is played out faster).
    pub skipped: u64,
    /// Times playout was sped up by a pitch period to bring the delay down.
    pub shortened: u64,
    /// Times playout was slowed down by a pitch period to let the cushion
    /// grow without a gap.
    pub lengthened: u64,
    /// Lost packets rebuilt from the copies (RED) in later ones.
    pub repaired: u64,
}

struct MemberAudio {
    receiver: AudioReceiver,
    recent: VecDeque<Vec<f32>>,
    frames: u64,
    ticks: u64,
    tones: ToneLog,
}

/// Ticks in one block of the tone log: 100 ms.
const BLOCK_TICKS: u64 = 5;
/// Blocks kept: an hour.
const MAX_BLOCKS: usize = 36_000;

/// Whether a member's synthetic tone was heard, every 100 ms since their
/// first packet: what tests and benchmarks use to tell how much of a call's
/// sound got through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToneLog {
    /// When the first block began, µs since the Unix epoch.
    pub start_us: u64,
    /// One entry per 100 ms: the tone stood out in it.
    pub blocks: Vec<bool>,
}

/// The receive side of audio for one call.
pub struct Mixer {
    members: HashMap<UserId, MemberAudio>,
    output: Box<dyn AudioOutput>,
    speaker_on: bool,
    candidates: Vec<f32>,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("members", &self.members.len())
            .field("speaker_on", &self.speaker_on)
            .finish()
    }
}

impl Mixer {
    /// A mixer playing into `output`.
    pub fn new(output: Box<dyn AudioOutput>) -> Self {
        Self {
            members: HashMap::new(),
            output,
            speaker_on: true,
            candidates: tone_candidates(),
        }
    }

    /// Adds an Opus packet from `from` that arrived at `now`, with the
    /// copies of earlier packets it carried (sequence number, payload),
    /// used only where those packets never came.
    pub fn push(
        &mut self,
        from: &UserId,
        now: std::time::Instant,
        seq: u16,
        payload: Vec<u8>,
        copies: Vec<(u16, Vec<u8>)>,
    ) -> Result<(), MediaError> {
        if !self.members.contains_key(from) {
            let receiver = AudioReceiver::new()?;
            self.members.insert(
                from.clone(),
                MemberAudio {
                    receiver,
                    recent: VecDeque::new(),
                    frames: 0,
                    ticks: 0,
                    tones: ToneLog {
                        start_us: crate::frame::now_us(),
                        blocks: Vec::new(),
                    },
                },
            );
        }
        self.members
            .get_mut(from)
            .expect("just inserted")
            .receiver
            .push(now, seq, payload, copies);
        Ok(())
    }

    /// Plays into another device from now on.
    pub fn set_output(&mut self, output: Box<dyn AudioOutput>) {
        self.output = output;
    }

    /// Forgets a member who left.
    pub fn remove(&mut self, who: &UserId) {
        self.members.remove(who);
    }

    /// Turns the speaker off (silence is played, levels are still measured)
    /// or on.
    pub fn set_speaker(&mut self, on: bool) {
        self.speaker_on = on;
    }

    /// One 20 ms tick: pulls every member's next frame, mixes, plays.
    pub fn tick(&mut self) {
        let mut mix = vec![0.0f32; FRAME_SAMPLES];
        for m in self.members.values_mut() {
            let frame = m.receiver.tick();
            if let Some(samples) = &frame {
                m.frames += 1;
                for (o, s) in mix.iter_mut().zip(samples) {
                    *o += s;
                }
            }
            m.recent
                .push_back(frame.unwrap_or_else(|| vec![0.0; FRAME_SAMPLES]));
            if m.recent.len() > WINDOW_FRAMES {
                m.recent.pop_front();
            }
            m.ticks += 1;
            if m.ticks % BLOCK_TICKS == 0 && m.tones.blocks.len() < MAX_BLOCKS {
                let block: Vec<f32> = m
                    .recent
                    .iter()
                    .skip(m.recent.len().saturating_sub(BLOCK_TICKS as usize))
                    .flatten()
                    .copied()
                    .collect();
                let heard = rms(&block) > 0.01
                    && detect_tone(&block, &self.candidates).is_some_and(|(_, share)| share > 0.6);
                m.tones.blocks.push(heard);
            }
        }
        if !self.speaker_on {
            mix.fill(0.0);
        }
        for s in &mut mix {
            // Several loud voices add up past full scale: clip softly.
            *s = s.clamp(-1.5, 1.5);
            *s = *s - *s * *s * *s / 6.75;
        }
        self.output.play(&mix);
    }

    /// Each member's tone, 100 ms at a time, since they were first heard.
    pub fn tone_logs(&self) -> HashMap<UserId, ToneLog> {
        self.members
            .iter()
            .map(|(who, m)| (who.clone(), m.tones.clone()))
            .collect()
    }

    /// Each member's level and tone.
    pub fn stats(&self) -> HashMap<UserId, MemberAudioStats> {
        self.members
            .iter()
            .map(|(who, m)| {
                let window: Vec<f32> = m.recent.iter().flatten().copied().collect();
                let level = rms(&window);
                let tone_hz = detect_tone(&window, &self.candidates)
                    .filter(|(_, share)| *share > 0.6)
                    .map(|(f, _)| f);
                let r = &m.receiver;
                let b = r.buffer();
                let stats = MemberAudioStats {
                    level,
                    tone_hz: if level > 0.01 { tone_hz } else { None },
                    frames: m.frames,
                    late: b.late(),
                    underruns: b.underruns(),
                    buffer_ms: b.target() as u32 * 20,
                    concealed: b.concealed(),
                    skipped: b.skipped(),
                    shortened: r.shortened(),
                    lengthened: r.lengthened(),
                    repaired: b.repaired(),
                };
                (who.clone(), stats)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::opus::OpusEncoder;
    use crate::source::synthetic::{ToneMicrophone, tone_for};

    #[test]
    fn two_voices_are_mixed_and_told_apart() {
        let out = RecordingOutput::default();
        let mut mixer = Mixer::new(Box::new(out.clone()));
        let (a, b) = (
            UserId::try_from("alice").unwrap(),
            UserId::try_from("bobby").unwrap(),
        );
        assert_ne!(tone_for("alice"), tone_for("bobby"));
        let mut mics = [
            (a.clone(), ToneMicrophone::new(tone_for("alice"), 0.3)),
            (b.clone(), ToneMicrophone::new(tone_for("bobby"), 0.3)),
        ];
        let mut encs = [
            OpusEncoder::new(32_000, 0).unwrap(),
            OpusEncoder::new(32_000, 0).unwrap(),
        ];
        let t0 = std::time::Instant::now();
        for seq in 0..60u16 {
            for ((who, mic), enc) in mics.iter_mut().zip(encs.iter_mut()) {
                let packet = enc.encode(&mic.generate()).unwrap();
                let at = t0 + std::time::Duration::from_millis(u64::from(seq) * 20);
                mixer.push(who, at, seq, packet, Vec::new()).unwrap();
            }
            mixer.tick();
        }
        let stats = mixer.stats();
        assert_eq!(stats[&a].tone_hz, Some(tone_for("alice")));
        assert_eq!(stats[&b].tone_hz, Some(tone_for("bobby")));
        assert!(
            stats[&a].level > 0.15 && stats[&a].frames > 50,
            "{:?}",
            stats[&a]
        );
        let log = &mixer.tone_logs()[&a];
        assert_eq!(log.blocks.len(), 60 / 5, "a block every 100 ms");
        assert!(
            log.blocks[2..].iter().all(|&heard| heard),
            "{:?}",
            log.blocks
        );
        let played = out.last(FRAME_SAMPLES * 20);
        assert!(rms(&played) > 0.2, "both voices reach the output");
        mixer.set_speaker(false);
        mixer.tick();
        assert_eq!(
            rms(&out.last(FRAME_SAMPLES)),
            0.0,
            "speaker off plays silence"
        );
        mixer.remove(&a);
        assert!(!mixer.stats().contains_key(&a));
    }

    #[test]
    fn a_silent_member_has_no_tone() {
        let mut mixer = Mixer::new(Box::new(RecordingOutput::default()));
        let who = UserId::try_from("carol").unwrap();
        let mut enc = OpusEncoder::new(32_000, 0).unwrap();
        let silence = crate::frame::AudioFrame {
            samples: vec![0.0; FRAME_SAMPLES].into(),
            timestamp_us: 0,
        };
        let t0 = std::time::Instant::now();
        for seq in 0..30 {
            mixer
                .push(
                    &who,
                    t0 + std::time::Duration::from_millis(u64::from(seq) * 20),
                    seq,
                    enc.encode(&silence).unwrap(),
                    Vec::new(),
                )
                .unwrap();
            mixer.tick();
        }
        let s = &mixer.stats()[&who];
        assert_eq!(s.tone_hz, None);
        assert!(mixer.tone_logs()[&who].blocks.iter().all(|&heard| !heard));
        assert!(s.level < 0.01);
    }
}
