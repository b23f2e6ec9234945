//! Real WebRTC calls on loopback between members in one process, with
//! synthetic media: what each member decodes and hears is checked.

mod support;

use std::time::Duration;

use beckon_media::call::MediaEvent;
use beckon_media::frame::rms;
use beckon_media::source::synthetic::{SyntheticCamera, tone_for};
use beckon_protocol::CallKind;
use support::{close_all, eventually, mesh, mesh_with, uid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_video_call_decodes_frames_and_hears_the_tones() {
    let _turn = support::exclusive().await;
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
    let _turn = support::exclusive().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_members_each_receive_the_three_others() {
    let _turn = support::exclusive().await;
    let names = ["ann", "ben", "cat", "dan"];
    let m = mesh(&names, CallKind::Video, (320, 240)).await;
    eventually(30, "everyone sees everyone", || {
        m.iter().all(|me| {
            names
                .iter()
                .filter(|n| uid(n) != me.name)
                .all(|n| me.seen(n).frames >= 15)
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    for me in &m {
        assert_eq!(me.call.members().len(), 3);
        for other in names.iter().filter(|n| uid(n) != me.name) {
            assert!(me.seen(other).rising, "{} sees {other} in order", me.name);
            let heard = me
                .stats_of(other)
                .await
                .audio
                .unwrap_or_else(|| panic!("{} hears {other}", me.name));
            assert_eq!(
                heard.tone_hz,
                Some(tone_for(other)),
                "{} hears {other}",
                me.name
            );
        }
    }
    close_all(m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_camera_off_and_switch_camera_are_seen_by_the_other_side() {
    let _turn = support::exclusive().await;
    let m = mesh(&["eve", "fay"], CallKind::Video, (320, 240)).await;
    eventually(15, "media flows", || m[1].seen("eve").frames >= 10).await;
    // Mute: fay hears silence from eve, and is told.
    m[0].call.set_mic(false);
    eventually(10, "mute state arrives", || {
        m[1].events.lock().unwrap().iter().any(|e| matches!(e, MediaEvent::RemoteMediaState { user, mic: false, .. } if user == &uid("eve")))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let level = m[1].stats_of("eve").await.audio.map_or(0.0, |a| a.level);
    assert!(level < 0.01, "muted eve is silent: {level}");
    m[0].call.set_mic(true);
    // Camera off: no more frames, and the state arrives.
    m[0].call.set_camera(false);
    eventually(10, "camera-off state arrives", || {
        m[1].events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, MediaEvent::RemoteMediaState { camera: false, .. }))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = m[1].seen("eve").frames;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        m[1].seen("eve").frames,
        before,
        "no frames with the camera off"
    );
    // Camera on again, from another camera: frames continue at its size.
    m[0].call.set_camera(true);
    m[0].call
        .switch_camera(Box::new(SyntheticCamera::new(640, 480, 30)))
        .unwrap();
    eventually(10, "frames from the new camera", || {
        m[1].seen("eve").width == 640 && m[1].seen("eve").frames > before + 10
    })
    .await;
    close_all(m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_quits_is_dropped_and_the_others_keep_talking() {
    let _turn = support::exclusive().await;
    let mut m = mesh(&["gus", "hal", "ivy"], CallKind::Video, (320, 240)).await;
    eventually(20, "all connected", || {
        m[0].seen("ivy").frames >= 10 && m[1].seen("ivy").frames >= 10
    })
    .await;
    let ivy = m.pop().unwrap();
    ivy.call.close().await;
    for me in &m {
        me.call.remove_member(&uid("ivy")).await;
        assert_eq!(me.call.members().len(), 1);
    }
    let (g, h) = (m[0].seen("hal").frames, m[1].seen("gus").frames);
    eventually(10, "gus and hal go on", || {
        m[0].seen("hal").frames > g + 20 && m[1].seen("gus").frames > h + 20
    })
    .await;
    assert!(m[0].call.stats().await.iter().all(|s| s.user != uid("ivy")));
    close_all(m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_signaling_is_an_error_and_the_call_survives() {
    let _turn = support::exclusive().await;
    let m = mesh(&["jay", "kim"], CallKind::Video, (320, 240)).await;
    eventually(15, "media flows", || m[1].seen("jay").frames >= 10).await;
    // A candidate from someone we have no connection to.
    let candidate = beckon_protocol::Signal::Candidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".parse().unwrap(),
        sdp_mid: None,
        sdp_mline_index: Some(0),
    };
    assert!(
        m[0].call
            .on_signal(&uid("stranger"), candidate)
            .await
            .is_err()
    );
    // Garbage SDP from a member: rejected, reported, nothing breaks.
    let garbage = beckon_protocol::Signal::Offer {
        sdp: "v=0 this is not sdp".parse().unwrap(),
    };
    m[0].call.on_signal(&uid("kim"), garbage).await.unwrap();
    let garbage = beckon_protocol::Signal::Answer {
        sdp: "nonsense".parse().unwrap(),
    };
    m[0].call.on_signal(&uid("kim"), garbage).await.unwrap();
    eventually(10, "the bad SDP is reported", || {
        m[0].events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, MediaEvent::Rejected { from, .. } if from == &uid("kim")))
    })
    .await;
    let n = m[1].seen("jay").frames;
    eventually(10, "the call goes on", || m[1].seen("jay").frames > n + 20).await;
    close_all(m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_that_cross_settle_into_one_connection() {
    let _turn = support::exclusive().await;
    let m = mesh_with(&["lea", "max", "ned"], CallKind::Video, (320, 240), true).await;
    eventually(20, "every pair connects despite glare", || {
        m.iter().all(|me| {
            ["lea", "max", "ned"]
                .iter()
                .filter(|n| uid(n) != me.name)
                .all(|n| me.seen(n).frames >= 10)
        })
    })
    .await;
    close_all(m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_from_either_side_keeps_media_flowing() {
    let _turn = support::exclusive().await;
    let m = mesh(&["oak", "pip"], CallKind::Video, (320, 240)).await;
    eventually(15, "media flows", || {
        m[0].seen("pip").frames >= 10 && m[1].seen("oak").frames >= 10
    })
    .await;
    for (side, other) in [(0, "pip"), (1, "oak")] {
        m[side].call.restart_ice(&uid(other)).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (a, b) = (m[0].seen("pip").frames, m[1].seen("oak").frames);
        eventually(10, "media flows after the restart", || {
            m[0].seen("pip").frames > a + 15 && m[1].seen("oak").frames > b + 15
        })
        .await;
    }
    assert!(m[0].call.restart_ice(&uid("nobody")).is_err());
    close_all(m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_microphone_and_speaker_mid_call_takes_effect() {
    let _turn = support::exclusive().await;
    let m = mesh(&["quin", "rex"], CallKind::Voice, (320, 240)).await;
    eventually(15, "rex hears quin", || {
        rms(&m[1].speaker.last(24_000)) > 0.1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        m[1].stats_of("quin").await.audio.unwrap().tone_hz,
        Some(tone_for("quin"))
    );
    // Quin picks another microphone: rex now hears its tone.
    let other = beckon_media::source::synthetic::ToneMicrophone::new(1900.0, 0.3);
    m[0].call.switch_microphone(Box::new(other));
    let rex = &m[1];
    let mut heard = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        heard = rex.stats_of("quin").await.audio.and_then(|a| a.tone_hz);
        if heard == Some(1900.0) {
            break;
        }
    }
    assert_eq!(heard, Some(1900.0));
    // Rex picks another speaker: sound goes there, not to the old one.
    let new_speaker = beckon_media::sink::mixer::RecordingOutput::default();
    rex.call.switch_speaker(Box::new(new_speaker.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        rms(&new_speaker.last(12_000)) > 0.1,
        "the new speaker plays"
    );
    let stats = rex.stats_of("quin").await;
    assert!(
        stats.jitter_ms < 50.0,
        "jitter on loopback: {}",
        stats.jitter_ms
    );
    close_all(m).await;
}

/// A client that speaks only H264: what it offers cannot be received.
struct NoHandler;

#[async_trait::async_trait]
impl webrtc::peer_connection::PeerConnectionEventHandler for NoHandler {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_offering_only_an_unknown_codec_is_told_and_the_call_survives() {
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
    use webrtc::peer_connection::{MediaEngine, PeerConnection, PeerConnectionBuilder};

    let _turn = support::exclusive().await;
    let m = mesh(&["sam", "tia"], CallKind::Video, (320, 240)).await;
    eventually(15, "media flows", || m[1].seen("sam").frames >= 10).await;

    let mut engine = MediaEngine::default();
    let h264 = RTCRtpCodec {
        mime_type: "video/H264".into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .into(),
        rtcp_feedback: vec![],
    };
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: h264,
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )
        .unwrap();
    let foreign = PeerConnectionBuilder::new()
        .with_media_engine(engine)
        .with_handler(std::sync::Arc::new(NoHandler))
        .with_udp_addrs(vec!["127.0.0.1:0"])
        .build()
        .await
        .unwrap();
    foreign
        .add_transceiver_from_kind(RtpCodecKind::Video, None)
        .await
        .unwrap();
    let offer = foreign.create_offer(None).await.unwrap();
    assert!(offer.sdp.contains("H264"));
    let signal = beckon_protocol::Signal::Offer {
        sdp: offer.sdp.parse().unwrap(),
    };
    m[0].call.on_signal(&uid("ulf"), signal).await.unwrap();
    eventually(10, "the unsupported offer is reported", || {
        m[0].events.lock().unwrap().iter().any(|e| {
            matches!(e, MediaEvent::Rejected { from, error } if from == &uid("ulf") && error.to_string().contains("video without VP8"))
        })
    })
    .await;
    let _ = foreign.close().await;
    let n = m[1].seen("sam").frames;
    eventually(10, "sam and tia go on", || m[1].seen("sam").frames > n + 20).await;
    close_all(m).await;
}
