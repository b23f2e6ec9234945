//! Device ids and how each is opened, the same for the app, `beckon-peer`
//! and the echo contact: a real camera, microphone or speaker by its id or
//! the system's default, and the synthetic ones every machine has (the test
//! pattern, the test tone), so every path also runs where there is no
//! device. Opening one that is missing or busy is an error to show; the
//! `_or_` openers fall back to silence or to no sound, so a call goes on.

use crate::MediaError;
use crate::sink::mixer::{AudioOutput, RecordingOutput};
use crate::sink::speaker::Speaker;
use crate::source::camera::Camera;
use crate::source::microphone::Microphone;
use crate::source::synthetic::{Silence, SyntheticCamera, ToneMicrophone, tone_for};
use crate::source::{AudioSource, VideoSource};

/// Camera id of the test pattern.
pub const SYNTHETIC: &str = "synthetic";
/// Camera id for "no camera".
pub const NONE: &str = "none";
/// Microphone id of the test tone.
pub const TONE: &str = "tone";
/// The system's default camera, microphone or speaker.
pub const DEFAULT: &str = "default";
/// Speaker id for "play nothing" (levels are still measured).
pub const MUTE: &str = "null";

/// Opens camera `id` at `width`×`height`@`fps`; `Ok(None)` for "no camera".
pub fn open_camera(
    id: &str,
    (width, height, fps): (u32, u32, u32),
) -> Result<Option<Box<dyn VideoSource>>, MediaError> {
    Ok(match id {
        NONE => None,
        SYNTHETIC => Some(Box::new(SyntheticCamera::new(width, height, fps))),
        DEFAULT => Some(Box::new(Camera::open(None, width, height, fps)?)),
        id => Some(Box::new(Camera::open(Some(id), width, height, fps)?)),
    })
}

/// Opens microphone `id`; the test tone's pitch is derived from `me`, so a
/// listener can tell members apart.
pub fn open_microphone(id: &str, me: &str) -> Result<Box<dyn AudioSource>, MediaError> {
    Ok(match id {
        TONE => Box::new(ToneMicrophone::new(tone_for(me), 0.3)),
        DEFAULT => Box::new(Microphone::open(None)?),
        id => Box::new(Microphone::open(Some(id))?),
    })
}

/// The microphone, or silence and the reason when it cannot be opened.
pub fn microphone_or_silence(id: &str, me: &str) -> (Box<dyn AudioSource>, Option<MediaError>) {
    match open_microphone(id, me) {
        Ok(m) => (m, None),
        Err(e) => (Box::new(Silence::default()), Some(e)),
    }
}

/// Opens speaker `id` (for "no sound", an output that only measures).
pub fn open_speaker(id: &str) -> Result<Box<dyn AudioOutput>, MediaError> {
    Ok(match id {
        MUTE => Box::new(RecordingOutput::default()),
        DEFAULT => Box::new(Speaker::open(None)?),
        id => Box::new(Speaker::open(Some(id))?),
    })
}

/// The speaker, or no sound (levels still measured) and the reason when it
/// cannot be opened.
pub fn speaker_or_null(id: &str) -> (Box<dyn AudioOutput>, Option<MediaError>) {
    match open_speaker(id) {
        Ok(s) => (s, None),
        Err(e) => (Box::new(RecordingOutput::default()), Some(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_an_error_not_a_panic() {
        assert!(open_camera("no-such-camera-17", (640, 480, 30)).is_err());
        assert!(
            open_camera(NONE, (640, 480, 30))
                .expect("none is fine")
                .is_none()
        );
        let pattern = open_camera(SYNTHETIC, (320, 240, 15))
            .expect("pattern")
            .expect("a source");
        assert!(pattern.info().synthetic);
        assert!(open_microphone(TONE, "alice").is_ok());
        let (_, why) = microphone_or_silence("no-such-microphone-17", "alice");
        assert!(why.is_some(), "the reason is given");
        let (_, why) = speaker_or_null(MUTE);
        assert!(why.is_none(), "no sound is a choice, not a failure");
        let (_, why) = speaker_or_null("no-such-speaker-17");
        assert!(why.is_some());
    }
}
