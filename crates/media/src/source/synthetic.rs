//! Synthetic media for tests, benchmarks and machines without devices: a
//! moving test pattern with the frame number and capture time burned in, and
//! a tone whose frequency tells a listener who is speaking.

use std::f32::consts::TAU;
use std::time::{Duration, Instant};

use crate::MediaError;
use crate::frame::{AudioFrame, FRAME_SAMPLES, SAMPLE_RATE, VideoFrame, now_us};
use crate::source::{AudioSource, SourceInfo, VideoSource};

/// Bits burned into each frame: 24 of frame number, 40 of capture time
/// (microseconds, modulo 2^40: about 12.7 days), 8 of CRC.
const STAMP_BITS: usize = 72;
const TIME_BITS: u32 = 40;

/// What a frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Frame number (modulo 2^24).
    pub frame: u32,
    /// Capture time in microseconds since the Unix epoch, modulo 2^40.
    pub capture_us: u64,
}

impl Stamp {
    /// Microseconds from capture to `now_us` (both on this machine's clock).
    pub fn age_us(&self, now_us: u64) -> u64 {
        now_us.wrapping_sub(self.capture_us) & ((1 << TIME_BITS) - 1)
    }
}

fn crc8(bytes: &[u8]) -> u8 {
    // A non-zero start, so a blank (all-zero) stamp does not check out.
    let mut crc = 0xffu8;
    for b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn stamp_bits(frame: u32, capture_us: u64) -> [bool; STAMP_BITS] {
    let payload =
        (u64::from(frame & 0xff_ffff) << TIME_BITS) | (capture_us & ((1 << TIME_BITS) - 1));
    let bytes = payload.to_be_bytes();
    let crc = crc8(&bytes);
    let mut bits = [false; STAMP_BITS];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = if i < 64 {
            payload >> (63 - i) & 1 == 1
        } else {
            crc >> (71 - i) & 1 == 1
        };
    }
    bits
}

/// Side of one stamp block: large enough that VP8 at a low bitrate keeps it
/// black or white.
fn block_size(width: u32) -> usize {
    if width >= 320 { 16 } else { 8 }
}

/// Where bit `i` sits: its block's top-left pixel.
fn block_origin(width: u32, i: usize) -> (usize, usize) {
    let b = block_size(width);
    let per_row = width as usize / b;
    ((i % per_row) * b, (i / per_row) * b)
}

/// Reads the stamp back from a (decoded) frame; `None` when it does not
/// check out (not a pattern frame, or damaged). A frame the sender scaled
/// down (to 3/4, 1/2 or 1/4 of the pattern's width) reads too.
pub fn read_stamp(frame: &VideoFrame) -> Option<Stamp> {
    let w = frame.width;
    [w, w * 4 / 3, w * 2, w * 4]
        .into_iter()
        .filter(|&drawn| drawn >= 160)
        .find_map(|drawn| read_stamp_drawn_at(frame, drawn))
}

/// The stamp of a pattern drawn `drawn` pixels wide and shown at the
/// frame's width.
fn read_stamp_drawn_at(frame: &VideoFrame, drawn: u32) -> Option<Stamp> {
    let scale = f64::from(frame.width) / f64::from(drawn);
    let at = |v: usize| (v as f64 * scale) as usize;
    let b = block_size(drawn);
    let (w, y) = (frame.width as usize, frame.y());
    let (_, last_y) = block_origin(drawn, STAMP_BITS - 1);
    if at(last_y + b) > frame.height as usize || at(b) < 2 {
        return None;
    }
    let mut payload = 0u64;
    let mut crc = 0u8;
    for i in 0..STAMP_BITS {
        let (x0, y0) = block_origin(drawn, i);
        // Average the middle of the block: edges bleed under compression.
        let (xs, xe) = (at(x0) + at(b) / 4, at(x0) + at(b) - at(b) / 4);
        let (ys, ye) = (at(y0) + at(b) / 4, at(y0) + at(b) - at(b) / 4);
        let mut sum = 0u32;
        for yy in ys..ye {
            for xx in xs..xe {
                sum += u32::from(y[yy * w + xx]);
            }
        }
        let bit = sum / ((xe - xs) * (ye - ys)).max(1) as u32 > 128;
        if i < 64 {
            payload = payload << 1 | u64::from(bit);
        } else {
            crc = crc << 1 | u8::from(bit);
        }
    }
    (crc8(&payload.to_be_bytes()) == crc).then_some(Stamp {
        frame: (payload >> TIME_BITS) as u32,
        capture_us: payload & ((1 << TIME_BITS) - 1),
    })
}

/// Draws the test pattern.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: u32,
    height: u32,
    /// The still background, drawn once: each frame copies it and draws
    /// only what moves.
    background: Vec<u8>,
}

impl TestPattern {
    /// A pattern of this size (even, at least 160×120).
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width & !1, height & !1);
        Self {
            width,
            height,
            background: Self::background(width, height),
        }
    }

    fn background(width: u32, height: u32) -> Vec<u8> {
        let (w, h) = (width as usize, height as usize);
        let mut data = vec![0u8; VideoFrame::i420_len(width, height)];
        let (y, uv) = data.split_at_mut(w * h);
        for (row, line) in y.chunks_exact_mut(w).enumerate() {
            for (col, px) in line.iter_mut().enumerate() {
                // A still diagonal ramp: smooth, so it costs few bits; the
                // motion comes from the box and the stamp.
                *px = 16 + (((col + row) % 440) / 2) as u8;
            }
        }
        let (u, v) = uv.split_at_mut((w / 2) * (h / 2));
        for (row, (ul, vl)) in u
            .chunks_exact_mut(w / 2)
            .zip(v.chunks_exact_mut(w / 2))
            .enumerate()
        {
            for col in 0..w / 2 {
                let band = (col * 8 / (w / 2).max(1)) % 8;
                ul[col] = [128, 90, 200, 60, 160, 110, 40, 220][band];
                vl[col] = [128, 200, 90, 160, 60, 40, 220, 110][(band + row / 32) % 8];
            }
        }
        data
    }

    /// Frame `n`, stamped with `capture_us`.
    pub fn frame(&mut self, n: u32, capture_us: u64) -> VideoFrame {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut data = self.background.clone();
        let y = &mut data[..w * h];
        // A white box crossing the picture, for motion.
        let side = h / 6;
        let bx = (n as usize * 6) % (w - side).max(1);
        let by = h / 2;
        for row in by..(by + side).min(h) {
            y[row * w + bx..row * w + bx + side].fill(235);
        }
        // The stamp last, over everything.
        let b = block_size(self.width);
        for (i, bit) in stamp_bits(n, capture_us).into_iter().enumerate() {
            let (x0, y0) = block_origin(self.width, i);
            if y0 + b > h {
                break;
            }
            for row in y0..y0 + b {
                y[row * w + x0..row * w + x0 + b].fill(if bit { 235 } else { 16 });
            }
        }
        VideoFrame {
            width: self.width,
            height: self.height,
            data: data.into(),
            timestamp_us: capture_us,
        }
    }
}

/// Paces a synthetic source in real time.
#[derive(Debug)]
pub struct FrameClock {
    period: Duration,
    /// How far behind real time it may fall and still catch up in a burst
    /// (audio keeps its 20 ms cadence through short stalls; video skips).
    catch_up: Duration,
    next: Option<Instant>,
}

impl FrameClock {
    /// A clock ticking every `period`, catching up after stalls shorter
    /// than `catch_up`.
    pub fn new(period: Duration, catch_up: Duration) -> Self {
        Self {
            period,
            catch_up,
            next: None,
        }
    }

    /// Sleeps until the next frame is due.
    pub fn wait(&mut self) {
        let now = Instant::now();
        let due = *self.next.get_or_insert(now);
        if due > now {
            std::thread::sleep(due - now);
        }
        self.next = Some((due + self.period).max(Instant::now() - self.catch_up));
    }
}

/// 20 ms of audio, with up to 100 ms of catch-up after a stall.
pub fn audio_clock() -> FrameClock {
    FrameClock::new(Duration::from_millis(20), Duration::from_millis(100))
}

/// A camera that films the test pattern at a steady frame rate.
#[derive(Debug)]
pub struct SyntheticCamera {
    pattern: TestPattern,
    fps: u32,
    n: u32,
    clock: FrameClock,
    name: String,
}

impl SyntheticCamera {
    /// A pattern camera of this size and rate.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        Self {
            pattern: TestPattern::new(width, height),
            fps: fps.max(1),
            n: 0,
            // Skip ahead rather than burst after a stall.
            clock: FrameClock::new(Duration::from_secs(1) / fps.max(1), Duration::ZERO),
            name: format!("Test pattern {width}×{height}"),
        }
    }
}

impl VideoSource for SyntheticCamera {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        self.clock.wait();
        let frame = self.pattern.frame(self.n, now_us());
        self.n = self.n.wrapping_add(1);
        Ok(frame)
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            name: self.name.clone(),
            width: self.pattern.width,
            height: self.pattern.height,
            fps: self.fps,
            synthetic: true,
        }
    }
}

/// The tone frequency for a user: one of 16 well-separated frequencies
/// between 400 and 1900 Hz, the same for a user every time.
pub fn tone_for(user: &str) -> f32 {
    let h = user.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    400.0 + 100.0 * (h % 16) as f32
}

/// A microphone that hears a steady sine.
#[derive(Debug)]
pub struct ToneMicrophone {
    frequency: f32,
    amplitude: f32,
    phase: f32,
    clock: FrameClock,
}

impl ToneMicrophone {
    /// A tone at `frequency` Hz with peak `amplitude` (0..1).
    pub fn new(frequency: f32, amplitude: f32) -> Self {
        Self {
            frequency,
            amplitude,
            phase: 0.0,
            clock: audio_clock(),
        }
    }

    /// The next 20 ms, without waiting for real time (for tests).
    pub fn generate(&mut self) -> AudioFrame {
        let step = TAU * self.frequency / SAMPLE_RATE as f32;
        let samples: Vec<f32> = (0..FRAME_SAMPLES)
            .map(|_| {
                let s = self.amplitude * self.phase.sin();
                self.phase = (self.phase + step) % TAU;
                s
            })
            .collect();
        AudioFrame {
            samples: samples.into(),
            timestamp_us: now_us(),
        }
    }
}

impl AudioSource for ToneMicrophone {
    fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
        self.clock.wait();
        Ok(self.generate())
    }

    fn name(&self) -> String {
        format!("Test tone {} Hz", self.frequency)
    }
}

/// Stands in for a microphone that is missing or failed: 20 ms of silence
/// every 20 ms, so the call goes on and still hears the others.
#[derive(Debug)]
pub struct Silence {
    clock: FrameClock,
}

impl Default for Silence {
    fn default() -> Self {
        Self {
            clock: audio_clock(),
        }
    }
}

impl AudioSource for Silence {
    fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
        self.clock.wait();
        Ok(AudioFrame {
            samples: vec![0.0; FRAME_SAMPLES].into(),
            timestamp_us: now_us(),
        })
    }

    fn name(&self) -> String {
        "No microphone".into()
    }
}

/// Power of `frequency` in `samples` (Goertzel), normalised so that a sine of
/// peak amplitude `a` gives about `a²/4`… scaled to the sine's RMS².
pub fn goertzel(samples: &[f32], frequency: f32) -> f32 {
    let n = samples.len() as f32;
    let k = (n * frequency / SAMPLE_RATE as f32).round();
    let w = TAU * k / n;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power / (n * n)
}

/// The strongest of `candidates` in `samples`, with its share of the total
/// signal power; `None` for silence.
pub fn detect_tone(samples: &[f32], candidates: &[f32]) -> Option<(f32, f32)> {
    let total = crate::frame::rms(samples).powi(2);
    if total < 1e-6 {
        return None;
    }
    candidates
        .iter()
        .map(|&f| (f, goertzel(samples, f) / total))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_reads_back_from_the_raw_pattern() {
        for (w, h) in [(640, 480), (1280, 720), (320, 240), (160, 120)] {
            let mut p = TestPattern::new(w, h);
            let f = p.frame(123_456, 987_654_321_012);
            assert_eq!(
                VideoFrame::new(w, h, f.data.to_vec(), 0).map(|f| f.width),
                Some(w)
            );
            assert_eq!(
                read_stamp(&f),
                Some(Stamp {
                    frame: 123_456,
                    capture_us: 987_654_321_012
                }),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn the_stamp_reads_back_from_a_scaled_down_and_compressed_pattern() {
        use crate::codec::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};
        use crate::convert::{Filter, scale_i420};
        let want = Stamp {
            frame: 4242,
            capture_us: 123_456_789,
        };
        let full = TestPattern::new(640, 480).frame(want.frame, want.capture_us);
        for (w, h, kbps) in [(480, 360, 170), (320, 240, 76), (320, 240, 38)] {
            let mut data = Vec::new();
            scale_i420(&full.data, 640, 480, &mut data, w, h, Filter::Bilinear).unwrap();
            let small = VideoFrame::new(w, h, data, 0).unwrap();
            assert_eq!(read_stamp(&small), Some(want), "{w}x{h} raw");
            let mut config = Vp8Config::realtime(w, h, 30);
            config.bitrate_kbps = kbps;
            let mut enc = Vp8Encoder::new(config).unwrap();
            let mut dec = Vp8Decoder::new().unwrap();
            let mut read = None;
            for _ in 0..10 {
                if let Some(p) = enc.encode(&small).unwrap()
                    && let Some(pic) = dec.decode(&p.data, 0).unwrap()
                {
                    read = read_stamp(&pic);
                }
            }
            assert_eq!(read, Some(want), "{w}x{h} at {kbps} kbit/s");
        }
    }

    #[test]
    fn a_frame_without_a_stamp_is_not_misread() {
        let blank =
            VideoFrame::new(640, 480, vec![128; VideoFrame::i420_len(640, 480)], 0).unwrap();
        assert_eq!(read_stamp(&blank), None);
        let mut f = TestPattern::new(640, 480).frame(7, 7).data.to_vec();
        f[8 * 640 + 8] ^= 0xff; // one pixel does not flip a block
        f[..640 * 16].fill(16); // but a whole row of blocks does
        assert_eq!(read_stamp(&VideoFrame::new(640, 480, f, 0).unwrap()), None);
    }

    #[test]
    fn the_age_of_a_stamp_wraps_around() {
        let s = Stamp {
            frame: 0,
            capture_us: (1 << 40) - 10,
        };
        assert_eq!(s.age_us(1 << 40), 10);
        assert_eq!(s.age_us((1 << 41) + 5), 15);
    }

    #[test]
    fn each_user_gets_a_stable_tone_that_a_listener_can_pick_out() {
        assert_eq!(tone_for("alice"), tone_for("alice"));
        let freqs: Vec<f32> = (0..16).map(|k| 400.0 + 100.0 * k as f32).collect();
        for f in [400.0, 1100.0, 1900.0] {
            let mut mic = ToneMicrophone::new(f, 0.5);
            let mut samples = Vec::new();
            for _ in 0..5 {
                samples.extend_from_slice(&mic.generate().samples);
            }
            let (found, share) = detect_tone(&samples, &freqs).unwrap();
            assert_eq!(found, f);
            assert!(share > 0.9, "{share}");
            assert!((crate::frame::rms(&samples) - 0.3535).abs() < 0.01);
        }
        assert_eq!(detect_tone(&[0.0; 960], &freqs), None);
    }

    #[test]
    fn the_camera_keeps_its_frame_rate() {
        let mut cam = SyntheticCamera::new(320, 240, 50);
        let start = Instant::now();
        let first = read_stamp(&cam.next_frame().unwrap()).unwrap().frame;
        for _ in 0..10 {
            cam.next_frame().unwrap();
        }
        let last = read_stamp(&cam.next_frame().unwrap()).unwrap().frame;
        assert_eq!(last - first, 11);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(600),
            "{took:?}"
        );
    }
}
