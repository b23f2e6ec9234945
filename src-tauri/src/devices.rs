//! Cameras, microphones and speakers: what there is to offer and what is
//! chosen. Besides real devices there are always the test pattern and the
//! test tone, so every path also works on a machine without any. Their ids
//! and opening them are `beckon_media::devices`, shared with beckon-peer.

pub use beckon_media::devices::{DEFAULT, MUTE, NONE, SYNTHETIC, TONE};
use beckon_media::source::camera::list_cameras;
use beckon_media::source::microphone::{list_microphones, list_speakers};

use crate::view::{Device, Devices};

/// Size and rate the app captures at.
pub const CAPTURE: (u32, u32, u32) = (640, 480, 30);

/// The devices chosen (ids as in [`Devices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Camera.
    pub camera: String,
    /// Microphone.
    pub microphone: String,
    /// Speaker.
    pub speaker: String,
}

impl Choice {
    /// The saved choice, else what `BECKON_CAMERA` / `BECKON_MIC` /
    /// `BECKON_SPEAKER` say, else the first camera (or none) and the
    /// system's default microphone and speaker.
    pub fn resolve(
        camera: Option<&str>,
        microphone: Option<&str>,
        speaker: Option<&str>,
        cameras: &[Device],
    ) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let first_camera = cameras
            .iter()
            .find(|c| c.id != SYNTHETIC && c.id != NONE)
            .map_or(NONE.to_owned(), |c| c.id.clone());
        Self {
            camera: camera
                .map(str::to_owned)
                .or_else(|| env("BECKON_CAMERA"))
                .unwrap_or(first_camera),
            microphone: microphone
                .map(str::to_owned)
                .or_else(|| env("BECKON_MIC"))
                .unwrap_or_else(|| DEFAULT.to_owned()),
            speaker: speaker
                .map(str::to_owned)
                .or_else(|| env("BECKON_SPEAKER"))
                .unwrap_or_else(|| DEFAULT.to_owned()),
        }
    }
}

/// The cameras to offer: real ones, then the test pattern and "none".
pub fn cameras() -> (Vec<Device>, Option<String>) {
    let (mut list, problem) = match list_cameras() {
        Ok(found) => (
            found
                .into_iter()
                .map(|c| Device {
                    id: c.id,
                    name: c.name,
                })
                .collect::<Vec<_>>(),
            None,
        ),
        Err(e) => (
            Vec::new(),
            Some(format!("Cameras could not be listed: {e}")),
        ),
    };
    let problem = problem.or_else(|| list.is_empty().then(|| "No camera found.".to_owned()));
    list.push(device(SYNTHETIC, "Test pattern"));
    list.push(device(NONE, "No camera"));
    (list, problem)
}

/// Everything to offer, with `choice` marked and problems named.
pub fn list(choice: &Choice, cameras: Vec<Device>, camera_problem: Option<String>) -> Devices {
    let mut problems: Vec<String> = camera_problem.into_iter().collect();
    let mut microphones = vec![device(DEFAULT, "System default")];
    match list_microphones() {
        Ok(found) if found.is_empty() => problems.push("No microphone found.".into()),
        Ok(found) => microphones.extend(found.into_iter().map(|d| device(&d.id, &d.name))),
        Err(e) => problems.push(format!("Microphones could not be listed: {e}")),
    }
    microphones.push(device(TONE, "Test tone"));
    let mut speakers = vec![device(DEFAULT, "System default")];
    match list_speakers() {
        Ok(found) if found.is_empty() => problems.push("No speaker found.".into()),
        Ok(found) => speakers.extend(found.into_iter().map(|d| device(&d.id, &d.name))),
        Err(e) => problems.push(format!("Speakers could not be listed: {e}")),
    }
    speakers.push(device(MUTE, "No sound"));
    Devices {
        cameras,
        microphones,
        speakers,
        camera: choice.camera.clone(),
        microphone: choice.microphone.clone(),
        speaker: choice.speaker.clone(),
        problems,
    }
}

fn device(id: &str, name: &str) -> Device {
    Device {
        id: id.into(),
        name: name.into(),
    }
}

/// The camera after `current` in `cameras`, skipping "none"; `None` when
/// there is no other.
pub fn next_camera(cameras: &[Device], current: &str) -> Option<String> {
    let usable: Vec<&Device> = cameras.iter().filter(|c| c.id != NONE).collect();
    let at = usable.iter().position(|c| c.id == current);
    let next = match at {
        Some(i) => usable.get((i + 1) % usable.len())?,
        None => usable.first()?,
    };
    (next.id != current).then(|| next.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cams(ids: &[&str]) -> Vec<Device> {
        ids.iter().map(|id| device(id, id)).collect()
    }

    #[test]
    fn switching_cycles_through_cameras_but_never_to_none() {
        let list = cams(&["0", "1", SYNTHETIC, NONE]);
        assert_eq!(next_camera(&list, "0").as_deref(), Some("1"));
        assert_eq!(next_camera(&list, "1").as_deref(), Some(SYNTHETIC));
        assert_eq!(next_camera(&list, SYNTHETIC).as_deref(), Some("0"));
        assert_eq!(next_camera(&list, NONE).as_deref(), Some("0"));
        assert_eq!(next_camera(&cams(&[SYNTHETIC, NONE]), SYNTHETIC), None);
    }

    #[test]
    fn without_a_saved_choice_the_first_real_camera_is_used() {
        let c = Choice::resolve(
            None,
            Some("tone"),
            Some("null"),
            &cams(&["2", SYNTHETIC, NONE]),
        );
        assert_eq!(c.camera, "2");
        assert_eq!(c.microphone, "tone");
        let saved = Choice::resolve(Some(SYNTHETIC), None, None, &cams(&["2"]));
        assert_eq!(saved.camera, SYNTHETIC);
    }
}
