//! The real capture and playout paths, through cpal, against a userspace
//! PulseAudio with a null sink (this machine has no sound card): a tone
//! played into the sink is captured by `Microphone`, and what `Speaker`
//! plays comes out of the sink's monitor.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use beckon_media::frame::{FRAME_SAMPLES, rms};
use beckon_media::sink::speaker::Speaker;
use beckon_media::source::AudioSource;
use beckon_media::source::microphone::{Microphone, list_microphones, list_speakers};
use beckon_media::source::synthetic::{ToneMicrophone, detect_tone};

const CANDIDATES: [f32; 6] = [440.0, 700.0, 1000.0, 1300.0, 1600.0, 1900.0];

/// One PulseAudio for the whole test binary (the environment it needs is
/// process-wide), and one test at a time using it.
struct Pulse {
    _daemon: Child,
    _dir: tempfile::TempDir,
}

fn pulse() -> std::sync::MutexGuard<'static, ()> {
    static DAEMON: OnceLock<Pulse> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    DAEMON.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        unsafe_env(dir.path());
        let daemon = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                // Gone a few seconds after the last test disconnects: nothing
                // would kill it when this test binary exits.
                "--exit-idle-time=3",
                "-n",
                "--load=module-native-protocol-unix",
                "--load=module-null-sink sink_name=vsink",
                "--load=module-always-sink",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio is installed (cargo xtask setup installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Command::new("pactl")
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(Instant::now() < deadline, "pulseaudio did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        for args in [
            ["set-default-sink", "vsink"],
            ["set-default-source", "vsink.monitor"],
        ] {
            assert!(Command::new("pactl").args(args).status().unwrap().success());
        }
        Pulse {
            _daemon: daemon,
            _dir: dir,
        }
    });
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn unsafe_env(dir: &std::path::Path) {
    // set_var is unsafe in Rust 2024 because other threads may read the
    // environment at the same time. Here it runs once, inside the OnceLock,
    // before any test opens an audio device (libpulse and ALSA read these
    // variables then).
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("XDG_RUNTIME_DIR", dir);
        std::env::set_var("HOME", dir);
        std::env::remove_var("PULSE_SERVER");
    }
}

/// Plays `freq` into the null sink for `secs` through `pacat`.
fn play_into_sink(freq: f32, secs: f32) -> Child {
    let mut child = Command::new("pacat")
        .args([
            "--playback",
            "--device=vsink",
            "--format=float32le",
            "--rate=48000",
            "--channels=1",
            "--raw",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("pacat");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let mut tone = ToneMicrophone::new(freq, 0.5);
        for _ in 0..(secs * 50.0) as usize {
            let bytes: Vec<u8> = tone
                .generate()
                .samples
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect();
            if stdin.write_all(&bytes).is_err() {
                break;
            }
        }
    });
    child
}

#[test]
fn the_microphone_captures_a_tone_played_into_the_sink() {
    let _turn = pulse();
    assert!(
        !list_microphones().unwrap().is_empty(),
        "PulseAudio offers a microphone"
    );
    let mut player = play_into_sink(1000.0, 8.0);
    let mut mic = Microphone::open(None).expect("the default microphone opens");
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut heard = None;
    let mut window: Vec<f32> = Vec::new();
    while Instant::now() < deadline {
        let frame = mic.next_frame().expect("frames keep coming");
        assert_eq!(frame.samples.len(), FRAME_SAMPLES);
        window.extend_from_slice(&frame.samples);
        if window.len() >= 10 * FRAME_SAMPLES {
            if let Some((f, share)) = detect_tone(&window, &CANDIDATES)
                && share > 0.8
            {
                heard = Some((f, rms(&window)));
                break;
            }
            window.clear();
        }
    }
    let _ = player.kill();
    let _ = player.wait();
    let (f, level) = heard.expect("the tone reached the microphone");
    assert_eq!(f, 1000.0);
    assert!((level - 0.353).abs() < 0.05, "level {level}");
}

#[test]
fn the_speaker_plays_into_the_sink_whose_monitor_we_read() {
    let _turn = pulse();
    assert!(!list_speakers().unwrap().is_empty());
    let speaker = Speaker::open(None).expect("the default speaker opens");
    let mut recorder = Command::new("parec")
        .args([
            "--device=vsink.monitor",
            "--format=float32le",
            "--rate=48000",
            "--channels=1",
            "--raw",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("parec");
    let mut out = recorder.stdout.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut tone = ToneMicrophone::new(700.0, 0.5);
        let start = Instant::now();
        for n in 0..250u32 {
            speaker.play(&tone.generate().samples);
            let due = start + Duration::from_millis(20 * u64::from(n + 1));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        speaker.underruns()
    });
    let mut heard = None;
    let mut buf = vec![0u8; 4 * FRAME_SAMPLES * 10];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        out.read_exact(&mut buf).unwrap();
        let samples: Vec<f32> = buf
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some((f, share)) = detect_tone(&samples, &CANDIDATES)
            && share > 0.8
            && rms(&samples) > 0.2
        {
            heard = Some(f);
            break;
        }
    }
    let _ = recorder.kill();
    let _ = recorder.wait();
    let _ = feeder.join();
    assert_eq!(
        heard,
        Some(700.0),
        "the speaker's tone came out of the sink"
    );
}
