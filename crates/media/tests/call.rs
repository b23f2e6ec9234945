//! Real WebRTC calls on loopback between members in one process, with
//! synthetic media: what each member decodes and hears is checked.

mod support;

use std::time::Duration;

use beckon_media::call::MediaEvent;
use beckon_media::frame::rms;
use beckon_media::source::synthetic::{SyntheticCamera, tone_for};
use beckon_protocol::CallKind;
use support::{close_all, eventually, mesh, uid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_video_call_decodes_frames_and_hears_the_tones() {
    let m = mesh(&["alice", "bob"], CallKind::Video, (320, 240)).await;
    eventually(15, "both decode 30 frames", || {
        m[0].seen("bob").frames >= 30 && m[1].seen("alice").frames >= 30
    })
    .await;
    for (me, other) in [(0, "bob"), (1, "alice")] {
        let seen = m[me].seen(other);
        assert!(seen.rising, "frame numbers rise");
        assert!(seen.last_frame.unwrap() >= 30);
        assert_eq!(seen.width, 320);
    }
    eventually(10, "tones heard", || {
        let a = m[0].call.send_stats();
        a.audio_packets > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let heard = m[0].stats_of("bob").await.audio.expect("bob's voice");
    assert_eq!(heard.tone_hz, Some(tone_for("bob")));
    let heard = m[1].stats_of("alice").await.audio.expect("alice's voice");
    assert_eq!(heard.tone_hz, Some(tone_for("alice")));
    assert!(
        rms(&m[1].speaker.last(48_000)) > 0.1,
        "the speaker plays it"
    );
    close_all(m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_call_carries_audio_and_no_video() {
    let m = mesh(&["carol", "dave"], CallKind::Voice, (320, 240)).await;
    eventually(15, "voices heard", || {
        rms(&m[0].speaker.last(24_000)) > 0.1 && rms(&m[1].speaker.last(24_000)) > 0.1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        m[0].stats_of("dave").await.audio.unwrap().tone_hz,
        Some(tone_for("dave"))
    );
    assert_eq!(m[0].seen("dave").frames, 0);
    assert_eq!(m[1].call.send_stats().frames_sent, 0);
    assert_eq!(m[0].call.local_state(), (true, false));
    close_all(m).await;
}
