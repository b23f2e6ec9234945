//! Time-stretching for playout: a run of decoded voice made one pitch
//! period shorter or longer, cross-faded so that there is neither a gap nor
//! a click. This is how a jitter buffer changes its delay while someone
//! talks (a browser's NetEq calls it "accelerate" and "pre-emptive
//! expand"), instead of dropping or inventing a whole 20 ms frame.
//!
//! Voice repeats itself period by period; cutting out (or repeating) one
//! whole period and blending across the seam leaves a signal that sounds
//! the same, only a few milliseconds shorter (or longer). Where nothing
//! repeats (noise, a consonant) nothing is changed; where it is quiet any
//! cut is inaudible and the longest is taken.

use crate::frame::rms;

/// The shortest period looked for: 2 ms (500 Hz). Tones above that repeat
/// at a multiple of their period inside the range.
const MIN_LAG: usize = 96;
/// The longest: 16 ms (62.5 Hz), below the lowest speaking voice.
const MAX_LAG: usize = 768;
/// The coarse search runs on every fourth sample (12 kHz); it is refined
/// at full rate around the best coarse lag.
const DECIMATE: usize = 4;
/// Below this level (about −50 dBFS) a run counts as silence.
const QUIET: f32 = 0.003;
/// How alike two neighbouring periods must be (normalized correlation)
/// for one to stand in for the other.
const ALIKE: f32 = 0.9;
/// Lags whose likeness is this close to the best count as equally good;
/// the longest of them is taken, so that one stretch moves the most.
const TIE: f32 = 0.02;

/// `samples` made one period shorter, or `None` when no period repeats
/// well enough to cut one out unheard. The first sample is kept as it is,
/// so the result joins what was played before it.
pub fn shorten(samples: &[f32]) -> Option<Vec<f32>> {
    let lag = period(samples)?;
    let mut out = Vec::with_capacity(samples.len() - lag);
    for i in 0..lag {
        let w = i as f32 / lag as f32;
        out.push(samples[i] * (1.0 - w) + samples[lag + i] * w);
    }
    out.extend_from_slice(&samples[2 * lag..]);
    Some(out)
}

/// `samples` made one period longer (the first period played twice,
/// blended into the second), or `None` when nothing repeats well enough.
pub fn lengthen(samples: &[f32]) -> Option<Vec<f32>> {
    let lag = period(samples)?;
    let mut out = Vec::with_capacity(samples.len() + lag);
    out.extend_from_slice(&samples[..lag]);
    for i in 0..lag {
        let w = i as f32 / lag as f32;
        out.push(samples[lag + i] * (1.0 - w) + samples[i] * w);
    }
    out.extend_from_slice(&samples[lag..]);
    Some(out)
}

/// The lag at which the start of `x` repeats (the first `lag` samples
/// against the next `lag`), if it repeats closely enough.
fn period(x: &[f32]) -> Option<usize> {
    let max_lag = MAX_LAG.min(x.len() / 2);
    if max_lag < MIN_LAG {
        return None;
    }
    if rms(&x[..2 * max_lag]) < QUIET {
        return Some(max_lag);
    }
    let coarse: Vec<f32> = x[..2 * max_lag]
        .chunks_exact(DECIMATE)
        .map(|c| c.iter().sum::<f32>() / DECIMATE as f32)
        .collect();
    let rough = best_lag(&coarse, MIN_LAG / DECIMATE, max_lag / DECIMATE, TIE)?.0 * DECIMATE;
    let lo = rough.saturating_sub(DECIMATE).max(MIN_LAG);
    let hi = (rough + DECIMATE).min(max_lag);
    let (lag, likeness) = best_lag(x, lo, hi, 0.0)?;
    (likeness >= ALIKE).then_some(lag)
}

/// Of the lags in `lo..=hi`, the one at which `x` is most like itself
/// shifted (the longest of those within `tie` of the best), with that
/// likeness.
fn best_lag(x: &[f32], lo: usize, hi: usize, tie: f32) -> Option<(usize, f32)> {
    let scored: Vec<(usize, f32)> = (lo..=hi)
        .filter(|&l| 2 * l <= x.len())
        .map(|l| (l, likeness(&x[..l], &x[l..2 * l])))
        .collect();
    let best = scored.iter().map(|s| s.1).fold(f32::MIN, f32::max);
    scored.into_iter().rev().find(|s| s.1 >= best - tie)
}

/// Normalized correlation of two runs of equal length (1: the same shape).
fn likeness(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= f32::EPSILON || bb <= f32::EPSILON {
        return 0.0;
    }
    ab / (aa * bb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::synthetic::detect_tone;

    const RATE: f32 = 48_000.0;

    fn tone(f: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.3 * (std::f32::consts::TAU * f * i as f32 / RATE).sin())
            .collect()
    }

    /// A voice-like sound: a 150 Hz pitch (period 320 samples) and its
    /// harmonics, falling off.
    fn voiced(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (1..=12)
                    .map(|k| {
                        let f = 150.0 * k as f32;
                        0.2 / k as f32 * (std::f32::consts::TAU * f * i as f32 / RATE).sin()
                    })
                    .sum()
            })
            .collect()
    }

    fn noise(n: usize) -> Vec<f32> {
        let mut state = 0x853c_49e6_748f_ea9bu64;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 * 0.6 - 0.3
            })
            .collect()
    }

    /// The largest step between neighbouring samples: a click shows as a
    /// step far larger than the signal's own.
    fn largest_step(x: &[f32]) -> f32 {
        x.windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max)
    }

    /// The lowest level over 2 ms windows: a seam that cancels itself out
    /// shows as a dip.
    fn lowest_level(x: &[f32]) -> f32 {
        x.chunks_exact(96).map(rms).fold(f32::MAX, f32::min)
    }

    #[test]
    fn a_tone_loses_whole_periods_without_a_click_or_a_dip() {
        for f in [400.0, 600.0, 1000.0, 1900.0] {
            let x = tone(f, 1920);
            for (out, longer) in [(shorten(&x).unwrap(), false), (lengthen(&x).unwrap(), true)] {
                let moved = out.len().abs_diff(x.len());
                assert!(moved >= MIN_LAG, "{f} Hz: moved {moved} samples");
                assert_eq!(out.len() > x.len(), longer);
                // A whole number of periods, within a sample.
                let periods = moved as f32 * f / RATE;
                assert!(
                    (periods - periods.round()).abs() * RATE / f < 1.5,
                    "{f} Hz: {periods} periods"
                );
                assert!(largest_step(&out) < largest_step(&x) * 1.1, "{f} Hz click");
                assert!(lowest_level(&out) > 0.9 * rms(&x), "{f} Hz dip");
                assert_eq!(detect_tone(&out, &[f, f + 100.0]).map(|t| t.0), Some(f));
                assert_eq!(out[0], x[0], "joins what was played before");
            }
        }
    }

    #[test]
    fn a_voice_loses_a_multiple_of_its_pitch_period() {
        let x = voiced(1920);
        let out = shorten(&x).unwrap();
        let moved = x.len() - out.len();
        assert!(
            [320, 640].iter().any(|p| moved.abs_diff(*p) <= 2),
            "moved {moved}"
        );
        assert!(largest_step(&out) < largest_step(&x) * 1.1);
        let out = lengthen(&x).unwrap();
        assert!(
            [320, 640]
                .iter()
                .any(|p| (out.len() - x.len()).abs_diff(*p) <= 2)
        );
    }

    #[test]
    fn noise_is_left_alone_and_silence_takes_the_longest_cut() {
        assert_eq!(shorten(&noise(1920)), None);
        assert_eq!(lengthen(&noise(1920)), None);
        let quiet = vec![0.0001; 1920];
        assert_eq!(shorten(&quiet).map(|o| o.len()), Some(1920 - MAX_LAG));
        // A run too short for two of the shortest periods is left alone.
        assert_eq!(shorten(&tone(600.0, 150)), None);
        // Up to half of what is there goes at once.
        assert!(shorten(&quiet[..960]).is_some_and(|o| o.len() == 480));
    }
}
