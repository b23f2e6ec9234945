//! What the camera sends at a given bitrate: full size and frame rate
//! while the path carries them, then a smaller picture, then fewer frames,
//! and below a floor no video at all (the call goes on as voice).
//!
//! A bitrate spread over fewer pixels looks better than the same bitrate
//! smeared over a full-size picture, which is what a browser does too
//! (Chromium keeps a camera's frame rate and lowers its resolution first);
//! the frame rate halves only at the smallest picture.
//! Steps down wait for the budget to stay low for a moment, so a short dip
//! does not cost a key frame; steps up wait longer and need a margin, so
//! the ladder does not flap between two rungs. Video pauses only when the
//! budget stays under the floor for seconds (a call's first seconds into a
//! capped link dip that low). A paused camera sends nothing that would
//! show the path has room again, so after a while video resumes at the
//! bottom rung anyway, as a probe: if the room is not there, it pauses
//! again soon, and waits twice as long before the next try.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use beckon_media::ladder::{Ladder, Step};
//! let t0 = Instant::now();
//! let mut ladder = Ladder::new(640, 480, 30);
//! assert_eq!(ladder.update(t0, 1000), Step::Send { width: 640, height: 480, fps: 30 });
//! // Under a tight cap, once the call's first seconds are over and the
//! // budget stayed low for two: a quarter of the pixels.
//! ladder.update(t0 + Duration::from_millis(100), 100);
//! let later = ladder.update(t0 + Duration::from_secs(5), 100);
//! assert_eq!(later, Step::Send { width: 320, height: 240, fps: 30 });
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Pictures of this size, at most this many a second.
    Send {
        /// Pixels across (even).
        width: u32,
        /// Pixels down (even).
        height: u32,
        /// Frames a second.
        fps: u32,
    },
    /// No video: the path has no room for it beside the audio.
    Paused,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Send { width, height, fps } => write!(f, "{width}x{height}@{fps}"),
            Step::Paused => f.write_str("paused"),
        }
    }
}

/// Bits a pixel needs for a watchable picture: 640×480 at 30 fps wants
/// about 200 kbit/s (libwebrtc's least for 640×360 is 150).
const BITS_PER_PIXEL: f64 = 0.022;
/// No rung asks for less than this; below it, video pauses.
pub const FLOOR_KBPS: u32 = 30;
/// The budget must stay under the rung's need this long before stepping
/// down.
const DOWN_AFTER: Duration = Duration::from_secs(4);
/// In a call's first seconds the estimate is still searching (it starts
/// low and dips when it first meets a cap): no step before this.
const SETTLE: Duration = Duration::from_secs(4);
/// ... and over the next rung's need, with [`UP_MARGIN`], this long before
/// stepping up.
const UP_AFTER: Duration = Duration::from_secs(6);
const UP_MARGIN: f64 = 1.25;
/// The budget must stay under the floor this long at the bottom rung
/// before video pauses; within [`RESUME_HELD`] of a resume (a probe),
/// [`PROBE_FAILS_AFTER`].
const PAUSE_AFTER: Duration = Duration::from_secs(5);
const PROBE_FAILS_AFTER: Duration = Duration::from_secs(2);
/// Budgets are kept this long (the longest window).
const KEPT: Duration = UP_AFTER;
/// A pause lasts this long, doubling (to [`MAX_RESUME`]) each time video
/// pauses again within [`RESUME_HELD`] of resuming.
const FIRST_RESUME: Duration = Duration::from_secs(3);
const MAX_RESUME: Duration = Duration::from_secs(30);
const RESUME_HELD: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rung {
    width: u32,
    height: u32,
    fps: u32,
    kbps: u32,
}

/// Chooses the rung for the budget, one camera source at a time.
#[derive(Debug, Clone)]
pub struct Ladder {
    source: (u32, u32, u32),
    rungs: Vec<Rung>,
    /// The rung in use; `None` while paused.
    at: Option<usize>,
    /// The budgets of the last seconds: a congestion controller's
    /// estimate saws up and down, and the rung follows its mean.
    budgets: VecDeque<(Instant, u32)>,
    /// When the rung last changed (or the ladder started): a window of
    /// budgets counts only once it lies wholly after that.
    changed_at: Option<Instant>,
    /// The first budget's time.
    started: Option<Instant>,
    paused_at: Option<Instant>,
    resumed_at: Option<Instant>,
    resume_wait: Duration,
}

impl Ladder {
    /// The ladder for a camera of this size and frame rate, starting at the
    /// top.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        let fps = fps.max(1);
        let mut rungs: Vec<Rung> = Vec::new();
        let mut push = |num: u32, den: u32, fps: u32| {
            let (w, h) = ((width * num / den) & !1, (height * num / den) & !1);
            // Not smaller than a thumbnail, and not the same as the last.
            if w < 160 && num != den {
                return;
            }
            let kbps = ((f64::from(w * h) * f64::from(fps) * BITS_PER_PIXEL / 1000.0) as u32)
                .max(FLOOR_KBPS);
            let rung = Rung {
                width: w.max(2),
                height: h.max(2),
                fps,
                kbps,
            };
            if rungs
                .last()
                .is_none_or(|r| (r.width, r.height, r.fps) != (rung.width, rung.height, rung.fps))
            {
                rungs.push(rung);
            }
        };
        // The frame rate is kept (motion stays smooth, as a browser keeps a
        // camera's) until the smallest picture, then halved.
        push(1, 1, fps);
        push(3, 4, fps);
        push(1, 2, fps);
        push(1, 4, fps);
        if let Some(&last) = rungs.last() {
            rungs.push(Rung {
                fps: fps.div_ceil(2),
                kbps: ((f64::from(last.width * last.height)
                    * f64::from(fps.div_ceil(2))
                    * BITS_PER_PIXEL
                    / 1000.0) as u32)
                    .max(FLOOR_KBPS),
                ..last
            });
        }
        Self {
            source: (width, height, fps),
            rungs,
            at: Some(0),
            budgets: VecDeque::new(),
            changed_at: None,
            started: None,
            paused_at: None,
            resumed_at: None,
            resume_wait: FIRST_RESUME,
        }
    }

    /// The camera this ladder is for.
    pub fn source(&self) -> (u32, u32, u32) {
        self.source
    }

    /// What to send at `now`, given what the path leaves for video
    /// (kbit/s; call it every frame or so).
    pub fn update(&mut self, now: Instant, budget_kbps: u32) -> Step {
        self.changed_at.get_or_insert(now);
        let started = *self.started.get_or_insert(now);
        self.budgets.push_back((now, budget_kbps));
        while self
            .budgets
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > KEPT)
        {
            self.budgets.pop_front();
        }
        if now.duration_since(started) < SETTLE {
            return self.step();
        }
        match self.at {
            Some(i) => self.sending(now, i),
            None => self.paused(now),
        }
        self.step()
    }

    /// The mean budget of the last `window`, once the current rung has
    /// been in use that long.
    fn mean(&self, now: Instant, window: Duration) -> Option<f64> {
        if self
            .changed_at
            .is_none_or(|t| now.duration_since(t) < window)
        {
            return None;
        }
        let recent: Vec<u32> = self
            .budgets
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= window)
            .map(|b| b.1)
            .collect();
        (!recent.is_empty())
            .then(|| recent.iter().map(|&b| f64::from(b)).sum::<f64>() / recent.len() as f64)
    }

    fn go(&mut self, now: Instant, at: Option<usize>) {
        self.at = at;
        self.changed_at = Some(now);
    }

    /// What is being sent, without a new budget.
    pub fn step(&self) -> Step {
        match self.at {
            Some(i) => {
                let r = self.rungs[i];
                Step::Send {
                    width: r.width,
                    height: r.height,
                    fps: r.fps,
                }
            }
            None => Step::Paused,
        }
    }

    fn sending(&mut self, now: Instant, i: usize) {
        let lowest = self.rungs.len() - 1;
        let needs: Vec<f64> = self.rungs.iter().map(|r| f64::from(r.kbps)).collect();
        let need = |j: usize| needs[j];
        if let Some(mean) = self.mean(now, DOWN_AFTER)
            && mean < need(i)
        {
            // Straight to the rung the budget fits, or the bottom.
            match (i + 1..=lowest).find(|&j| mean >= need(j)) {
                Some(j) => self.go(now, Some(j)),
                None if i != lowest => self.go(now, Some(lowest)),
                None => {}
            }
        }
        if self.at != Some(i) {
            return;
        }
        // At the bottom with no room: pause, sooner when this is a probe
        // after a pause.
        let probing = self
            .resumed_at
            .is_some_and(|t| now.duration_since(t) < RESUME_HELD);
        let wait = if probing {
            PROBE_FAILS_AFTER
        } else {
            PAUSE_AFTER
        };
        if i == lowest
            && let Some(mean) = self.mean(now, wait)
            && mean < f64::from(FLOOR_KBPS)
        {
            self.pause(now);
            return;
        }
        if let Some(up) = i.checked_sub(1)
            && self
                .mean(now, UP_AFTER)
                .is_some_and(|mean| mean >= need(up) * UP_MARGIN)
        {
            self.go(now, Some(up));
        }
    }

    fn pause(&mut self, now: Instant) {
        // Paused again soon after a resume: that resume did not hold, wait
        // longer before the next.
        if self
            .resumed_at
            .is_some_and(|t| now.duration_since(t) < RESUME_HELD)
        {
            self.resume_wait = (self.resume_wait * 2).min(MAX_RESUME);
        } else {
            self.resume_wait = FIRST_RESUME;
        }
        self.go(now, None);
        self.paused_at = Some(now);
    }

    fn paused(&mut self, now: Instant) {
        // Nothing sent shows whether the path has room: try again after the
        // wait, at the bottom.
        if self
            .paused_at
            .is_none_or(|t| now.duration_since(t) >= self.resume_wait)
        {
            self.go(now, Some(self.rungs.len() - 1));
            self.resumed_at = Some(now);
        }
    }
}

/// Lets frames through at most `fps` a second from a faster source.
#[derive(Debug, Clone, Default)]
pub struct FrameGate {
    next: Option<Instant>,
}

impl FrameGate {
    /// Whether the frame captured at `now` is sent.
    pub fn admit(&mut self, now: Instant, fps: u32, source_fps: u32) -> bool {
        if fps >= source_fps {
            self.next = None;
            return true;
        }
        let interval = Duration::from_secs(1) / fps.max(1);
        match self.next {
            Some(next) if now + interval / 4 < next => false,
            _ => {
                // From when this frame was due, so the rate does not drift
                // below `fps` with the source's timing; from now after a gap.
                let base = self.next.filter(|n| now < *n + interval).unwrap_or(now);
                self.next = Some(base + interval);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn send(width: u32, height: u32, fps: u32) -> Step {
        Step::Send { width, height, fps }
    }

    /// A VGA ladder past its first seconds (of plenty) by `t0`.
    fn settled(t0: Instant) -> Ladder {
        let mut l = Ladder::new(640, 480, 30);
        let start = t0 - SETTLE;
        for i in 0..40 {
            assert_eq!(l.update(start + ms(i * 100), 2000), send(640, 480, 30));
        }
        l
    }

    /// Runs a script of (seconds, budget) from `t0`, a budget every 100 ms;
    /// each change of step with its time (ms from `t0`).
    fn run(l: &mut Ladder, t0: Instant, script: &[(u64, u32)]) -> Vec<(u64, Step)> {
        let mut at = 0;
        let mut last = l.step();
        let mut changes = Vec::new();
        for &(secs, budget) in script {
            for _ in 0..secs * 10 {
                let step = l.update(t0 + ms(at), budget);
                if step != last {
                    changes.push((at, step));
                    last = step;
                }
                at += 100;
            }
        }
        changes
    }

    #[test]
    fn the_rungs_of_a_vga_camera() {
        let l = Ladder::new(640, 480, 30);
        let rungs: Vec<_> = l
            .rungs
            .iter()
            .map(|r| (r.width, r.height, r.fps, r.kbps))
            .collect();
        assert_eq!(
            rungs,
            [
                (640, 480, 30, 202),
                (480, 360, 30, 114),
                (320, 240, 30, 50),
                (160, 120, 30, 30),
                (160, 120, 15, 30),
            ]
        );
        // A small camera has fewer: nothing under 160 pixels across.
        let small = Ladder::new(320, 240, 15);
        assert_eq!(small.rungs.last().map(|r| (r.width, r.fps)), Some((160, 8)));
        assert!(small.rungs.iter().all(|r| r.width >= 160));
    }

    #[test]
    fn the_first_seconds_of_a_call_change_nothing() {
        let t0 = Instant::now();
        let mut l = Ladder::new(640, 480, 30);
        let changes = run(&mut l, t0, &[(4, 100), (1, 100)]);
        assert_eq!(changes, [(4000, send(320, 240, 30))]);
    }

    #[test]
    fn a_dip_shorter_than_the_window_changes_nothing() {
        let t0 = Instant::now() + SETTLE;
        let mut l = settled(t0);
        assert_eq!(run(&mut l, t0, &[(2, 150), (10, 800)]), []);
    }

    #[test]
    fn a_lasting_drop_comes_down_to_the_rung_that_fits() {
        let t0 = Instant::now() + SETTLE;
        let mut l = settled(t0);
        let changes = run(&mut l, t0, &[(20, 100)]);
        // The window's mean falls below the top rung's need part way (to a
        // rung on the way), then the one that fits.
        assert_eq!(changes.last().map(|c| c.1), Some(send(320, 240, 30)));
        assert!(changes.len() <= 2, "{changes:?}");
        assert!(changes.iter().all(|c| c.0 >= 2000), "{changes:?}");
        assert!(changes.last().unwrap().0 <= 8000, "{changes:?}");
        let changes = run(&mut l, t0 + ms(20_000), &[(10, 40)]);
        assert_eq!(
            changes.iter().map(|c| c.1).collect::<Vec<_>>(),
            [send(160, 120, 30)]
        );
    }

    #[test]
    fn below_the_floor_video_pauses_then_probes_at_the_bottom() {
        let t0 = Instant::now() + SETTLE;
        let mut l = settled(t0);
        let changes = run(&mut l, t0, &[(15, 20)]);
        let (paused_at, last) = *changes.last().unwrap();
        assert_eq!(last, Step::Paused, "{changes:?}");
        // Through the bottom rung, at least 5 s there before the pause.
        let bottom_at = changes
            .iter()
            .find(|c| c.1 == send(160, 120, 15))
            .expect("the bottom rung")
            .0;
        assert!(paused_at >= bottom_at + 5000, "{changes:?}");
        // Room again: 3 s after the pause, the bottom rung, then up a
        // rung at a time, 6 s apart.
        let from = 15_000;
        let changes = run(&mut l, t0 + ms(from), &[(15, 500)]);
        let times: Vec<u64> = changes.iter().map(|c| c.0 + from).collect();
        assert_eq!(
            changes.iter().map(|c| c.1).collect::<Vec<_>>(),
            [send(160, 120, 15), send(160, 120, 30), send(320, 240, 30)],
            "{changes:?}"
        );
        assert!(
            times[0] >= paused_at + 3000 && times[0] <= paused_at + 3100,
            "{paused_at} {times:?}"
        );
        assert!(
            times[1] - times[0] >= 6000 && times[2] - times[1] >= 6000,
            "{times:?}"
        );
    }

    #[test]
    fn a_resume_that_does_not_hold_waits_longer_the_next_time() {
        let t0 = Instant::now() + SETTLE;
        let mut l = settled(t0);
        let changes = run(&mut l, t0, &[(80, 10)]);
        let pauses: Vec<u64> = changes
            .iter()
            .filter(|c| c.1 == Step::Paused)
            .map(|c| c.0)
            .collect();
        let resumes: Vec<u64> = changes
            .iter()
            .filter(|c| c.1 == send(160, 120, 15))
            .map(|c| c.0)
            .skip(1)
            .collect();
        // Each probe fails 2 s in; the waits before them go 3, 6, 12, 24 s.
        let waits: Vec<u64> = resumes.iter().zip(&pauses).map(|(r, p)| r - p).collect();
        assert_eq!(waits, [3000, 6000, 12_000, 24_000], "{changes:?}");
        let fails: Vec<u64> = pauses[1..]
            .iter()
            .zip(&resumes)
            .map(|(p, r)| p - r)
            .collect();
        assert!(fails.iter().all(|&f| f == 2000), "{changes:?}");
    }

    #[test]
    fn it_climbs_back_with_a_margin_a_rung_at_a_time() {
        let t0 = Instant::now() + SETTLE;
        let mut l = settled(t0);
        let down = run(&mut l, t0, &[(10, 35)]);
        assert_eq!(down.last().map(|c| c.1), Some(send(160, 120, 30)));
        // Just enough for the next rung is not enough to step up.
        assert_eq!(run(&mut l, t0 + ms(10_000), &[(20, 55)]), []);
        let up = run(&mut l, t0 + ms(30_000), &[(30, 2000)]);
        let steps: Vec<Step> = up.iter().map(|c| c.1).collect();
        assert_eq!(
            steps,
            [send(320, 240, 30), send(480, 360, 30), send(640, 480, 30)]
        );
        assert!(up.windows(2).all(|w| w[1].0 - w[0].0 >= 6000), "{up:?}");
    }

    #[test]
    fn a_sawing_estimate_is_followed_by_its_mean() {
        // GCC under a cap: the room swings between 50 and 210 kbit/s every
        // couple of seconds; its mean fits 480x360, its dips would not.
        let t0 = Instant::now() + SETTLE;
        let mut l = settled(t0);
        let mut steps = Vec::new();
        for i in 0..400u64 {
            let phase = (i % 40) as f64 / 40.0;
            let room = 50.0 + 160.0 * (phase * std::f64::consts::TAU).sin().abs();
            steps.push(l.update(t0 + ms(i * 100), room as u32));
        }
        assert!(
            steps[100..].iter().all(|s| *s == send(480, 360, 30)),
            "{steps:?}"
        );
    }

    #[test]
    fn the_gate_halves_a_frame_rate_without_drifting() {
        let t0 = Instant::now();
        let mut gate = FrameGate::default();
        // A 30 fps source with a little jitter, gated to 15.
        let admitted = (0..300u64)
            .filter(|&i| {
                gate.admit(
                    t0 + Duration::from_micros(i * 33_333 + (i % 3) * 2000),
                    15,
                    30,
                )
            })
            .count();
        assert!((148..=152).contains(&admitted), "{admitted}");
        // At the source's own rate everything goes through.
        assert!((0..30u64).all(|i| gate.admit(t0 + ms(20_000 + i * 33), 30, 30)));
    }
}
