//! A simulated room: the far end is played, goes through an echo path
//! (delay, attenuation, a little reverb) and comes back in the microphone.

use super::*;

/// Speech-like: noise through a gentle low-pass, in syllables of about
/// 200 ms with pauses, from a seeded generator.
fn speech(seed: u64, secs: f64) -> Vec<f32> {
    let n = (secs * f64::from(RATE)) as usize;
    let mut state = seed.max(1);
    let mut lp = 0.0f32;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let white = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            lp = 0.7 * lp + 0.3 * white;
            let t = i as f32 / RATE as f32;
            let syllable = (std::f32::consts::PI * 4.0 * t).sin().abs();
            let voiced = if (t * 1.7).fract() < 0.75 { 1.0 } else { 0.05 };
            0.5 * lp * syllable * voiced
        })
        .collect()
}

/// The far end as the microphone hears it: `delay_ms`, then reflections.
fn room(far: &[f32], delay_ms: usize, gain: f32) -> Vec<f32> {
    let d = delay_ms * RATE as usize / 1000;
    let taps = [(0, 1.0), (340, 0.35), (700, 0.18), (1300, 0.08)];
    let mut mic = vec![0.0; far.len()];
    for (i, m) in mic.iter_mut().enumerate() {
        for (lag, k) in taps {
            if let Some(j) = i.checked_sub(d + lag) {
                *m += gain * k * far[j];
            }
        }
    }
    mic
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() + 1e-12
}

/// Runs far end and microphone through a processor; returns what it sends.
fn run(p: &mut VoiceProcessor, far: &[f32], mic: &[f32], hint_ms: u32) -> Vec<f32> {
    let mut sent = Vec::with_capacity(mic.len());
    for (f, m) in far.chunks_exact(FRAME).zip(mic.chunks_exact(FRAME)) {
        p.render(f);
        let mut frame = m.to_vec();
        p.capture(hint_ms, &mut frame);
        sent.extend_from_slice(&frame);
    }
    sent
}

fn echo_only() -> VoiceSettings {
    VoiceSettings {
        echo_cancellation: true,
        noise_suppression: false,
        auto_gain: false,
    }
}

#[test]
fn the_echo_of_the_far_end_is_cancelled_after_two_seconds() {
    for delay_ms in [30, 120, 200] {
        let far = speech(7, 5.0);
        let mic = room(&far, delay_ms, 0.5);
        let mut p = VoiceProcessor::new(echo_only());
        // The hint is off by 20 ms: the canceller finds the rest.
        let sent = run(&mut p, &far, &mic, (delay_ms as u32).saturating_sub(20));
        let from = 2 * RATE as usize;
        let erle = 10.0 * (energy(&mic[from..]) / energy(&sent[from..])).log10();
        assert!(erle >= 25.0, "{delay_ms} ms: ERLE {erle:.1} dB");
    }
}

/// Power of `hz` in `x` (Goertzel), per sample.
fn tone_power(x: &[f32], hz: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(RATE);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / x.len() as f64
}

#[test]
fn the_near_end_survives_double_talk() {
    let far = speech(11, 6.0);
    let mut mic = room(&far, 120, 0.5);
    // From 3 s on, the near end talks too: a 700 Hz tone.
    let from = 3 * RATE as usize;
    let near: Vec<f32> = (0..mic.len())
        .map(|i| {
            let t = i as f32 / RATE as f32;
            if i >= from {
                0.1 * (2.0 * std::f32::consts::PI * 700.0 * t).sin()
            } else {
                0.0
            }
        })
        .collect();
    for (m, n) in mic.iter_mut().zip(&near) {
        *m += n;
    }
    let mut p = VoiceProcessor::new(echo_only());
    let sent = run(&mut p, &far, &mic, 100);
    // Measured after half a second of double talk.
    let at = from + RATE as usize / 2;
    let kept = 10.0 * (tone_power(&sent[at..], 700.0) / tone_power(&near[at..], 700.0)).log10();
    assert!(kept.abs() <= 3.0, "near-end tone {kept:+.1} dB");
}
