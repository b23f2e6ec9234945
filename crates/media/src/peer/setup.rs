//! How every Beckon peer connection is built: the codecs it speaks, the
//! interceptors (NACK, reports, congestion control, feedback tap), ICE
//! settings, and one UDP socket.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use beckon_protocol::IceServer;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use webrtc::peer_connection::{
    CongestionFeedback, MediaEngine, RTCConfiguration, RTCConfigurationBuilder, RTCIceServer,
    Registry, SettingEngine, SettingEngineBuilder, Slot, configure_congestion_control,
    configure_nack, configure_rtcp_reports,
};

use crate::MediaError;
use crate::peer::nack::NackRequester;
use crate::peer::tap::{FeedbackTap, ReportingGcc, RetransmitBudget};
use rtc::interceptor::NackResponderBuilder;

pub(crate) const VP8_PT: u8 = 96;

/// Where the estimate starts: what a browser starts at, so that a capped
/// link (a hotel's, a phone's) is not flooded while the estimate comes
/// down; it climbs fast from here while no queue shows.
const START_BPS: f64 = 300_000.0;
pub(crate) const OPUS_PT: u8 = 111;

pub(crate) fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            },
            RTCPFeedback {
                typ: "nack".into(),
                parameter: "pli".into(),
            },
            RTCPFeedback {
                typ: "ccm".into(),
                parameter: "fir".into(),
            },
        ],
    }
}

/// RFC 2198 redundant audio.
pub(crate) const MIME_TYPE_RED: &str = "audio/red";

/// Opus frames with copies of earlier ones (see `rtp::red`).
fn red_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_RED.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: format!("{OPUS_PT}/{OPUS_PT}"),
        rtcp_feedback: vec![],
    }
}

pub(crate) fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn rtc_err(what: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Rtc(format!("{what}: {e}"))
}

/// Codecs and interceptors for one connection; `target_bps` receives the
/// congestion controller's estimate, `congested` whether a queue shows.
pub(crate) fn media_engine(
    target_bps: Arc<AtomicU64>,
    congested: Arc<std::sync::atomic::AtomicBool>,
    rtt_us: Arc<AtomicU64>,
) -> Result<(MediaEngine, Registry), MediaError> {
    let mut me = MediaEngine::default();
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: vp8_codec(),
            payload_type: VP8_PT,
        },
        RtpCodecKind::Video,
    )
    .map_err(|e| rtc_err("VP8 codec", e))?;
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PT,
        },
        RtpCodecKind::Audio,
    )
    .map_err(|e| rtc_err("Opus codec", e))?;
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: red_codec(),
            payload_type: crate::rtp::red::RED_PT,
        },
        RtpCodecKind::Audio,
    )
    .map_err(|e| rtc_err("RED codec", e))?;
    let registry = configure_nack(Registry::new(), &mut me)
        // Lost packets are asked for as soon as they are missed and again
        // once a round trip (see `NackRequester`).
        .with(Slot::NackGenerator, NackRequester::new(rtt_us.clone()))
        .with(
            Slot::NackResponder,
            NackResponderBuilder::new().with_size(256).build(),
        );
    let registry = configure_rtcp_reports(registry);
    let gcc = ReportingGcc::new(
        START_BPS,
        100_000.0,
        4_000_000.0,
        target_bps.clone(),
        congested,
    );
    let registry = configure_congestion_control(registry, gcc, CongestionFeedback::Twcc, &mut me)
        .map_err(|e| rtc_err("congestion control", e))?
        // webrtc-rs's pacer is one queue for everything at exactly the
        // estimate: audio waits behind video, and after an outage its queue
        // of thousands of packets adds seconds of delay. The encoder aims
        // below the estimate instead, key frames are kept small, and
        // retransmissions get a share of the estimate.
        .with(
            Slot::Pacer,
            RetransmitBudget::new(target_bps.clone(), rtt_us),
        );
    let registry = registry.with(Slot::from(14_000), FeedbackTap::default());
    Ok((me, registry))
}

/// ICE servers handed out by the signaling server.
pub(crate) fn configuration(servers: &[IceServer]) -> RTCConfiguration {
    let ice = servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    RTCConfigurationBuilder::new().with_ice_servers(ice).build()
}

/// ICE timing: notice a dead path in seconds, not half a minute.
pub(crate) fn settings() -> SettingEngine {
    SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        // Consent is checked twice a second: through heavy loss, four
        // seconds of one check a second lost every answer often enough to
        // call a working path dead.
        .with_ice_timeouts(
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(10)),
            Some(Duration::from_millis(500)),
        )
        // Check candidate pairs every 25 ms rather than 200: the first
        // working pair is found (and the call connects) that much sooner.
        .with_ice_connection_attempts(Some(Duration::from_millis(25)), Some(60))
        // webrtc-rs waits 2 s before it nominates a pair through a TURN
        // server (half a second for server-reflexive ones), in case a direct
        // pair turns up. A direct pair on a LAN checks out within a few
        // milliseconds of the candidates, so a short wait still prefers it
        // without making relayed calls connect seconds later.
        .with_srflx_acceptance_min_wait(Some(Duration::from_millis(50)))
        .with_prflx_acceptance_min_wait(Some(Duration::from_millis(100)))
        .with_relay_acceptance_min_wait(Some(Duration::from_millis(100)))
        // An ICE restart (after the network changed) binds fresh sockets on
        // the interfaces there are now and makes new TURN allocations,
        // instead of trying again from addresses that may be gone.
        .with_discard_local_candidates_during_ice_restart(true)
        .build()
}
