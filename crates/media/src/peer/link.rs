//! One peer connection to one remote member: perfect negotiation over our
//! signaling, trickle ICE, ICE restart when the path fails, our camera and
//! microphone out, theirs in.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, mpsc::SyncSender};
use std::time::{Duration, Instant};

use beckon_protocol::{IceCandidate, Sdp, Signal, UserId};
use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::statistics::report::RTCStatsReportEntry;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCIceConnectionState, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSdpType,
    RTCSessionDescription, StatsSelector,
};

use crate::MediaError;
use crate::codec::vp8::EncodedFrame;
use crate::peer::handshake_copies::CopyingRuntime;
use crate::peer::setup::{self, OPUS_PT, VP8_PT};
use crate::pipeline::{PipelineEvent, VideoReceiver, VideoSink};
use crate::rtp::red;
use crate::rtp::vp8::{FrameBuffer, Output, Vp8Packetizer};
use crate::sink::mixer::Mixer;

/// How a connection to one member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Negotiating or checking paths.
    Connecting,
    /// Media flows.
    Connected,
    /// The path broke; trying to recover (ICE restart).
    Reconnecting,
    /// Gave up, or closed.
    Closed,
}

/// Something a link reports to its call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LinkEvent {
    /// Send this to `to` through signaling.
    Signal { to: UserId, signal: Signal },
    /// The connection's state changed.
    State { user: UserId, state: LinkState },
    /// A remote sent something we cannot use.
    Rejected { from: UserId, error: MediaError },
    /// The connection never came up (or its security handshake failed):
    /// it should be replaced by a new one.
    Stuck { user: UserId },
}

/// Everything a link shares with its call.
#[derive(Clone)]
pub(crate) struct LinkContext {
    pub(crate) me: UserId,
    pub(crate) ice_servers: Vec<beckon_protocol::IceServer>,
    /// Local addresses to gather candidates on (`0.0.0.0:0`: every interface).
    pub(crate) udp_addrs: Vec<String>,
    pub(crate) events: UnboundedSender<LinkEvent>,
    pub(crate) mixer: Arc<Mutex<Mixer>>,
    pub(crate) video_sink: Arc<dyn VideoSink>,
    pub(crate) key_frame: Arc<AtomicBool>,
    pub(crate) pipeline_events: SyncSender<PipelineEvent>,
}

/// What webrtc-rs's stats say of one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransportStats {
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    /// Packets of theirs that never reached us.
    pub(crate) packets_lost_in: u64,
    /// Interarrival jitter of their streams, worst of audio and video, ms.
    pub(crate) jitter_ms: f64,
    /// The candidate pair's round-trip time, seconds.
    pub(crate) rtt_s: Option<f64>,
    /// The kinds of the two ends of the candidate pair in use, ours
    /// first: `host`, `srflx`, `prflx` or `relay`, e.g. `host/relay`.
    pub(crate) path: Option<String>,
}

/// Counters of one link, for stats.
#[derive(Debug, Default)]
pub(crate) struct LinkCounters {
    /// Round-trip time from receiver reports, microseconds (shared with
    /// the interceptor that holds back repeated retransmissions).
    pub(crate) rtt_us: Arc<AtomicU64>,
    /// Fraction of our video packets the remote lost, /256 (after
    /// retransmissions filled some in).
    pub(crate) fraction_lost: AtomicU32,
    /// Fraction of our audio packets the remote lost, /256.
    pub(crate) audio_fraction_lost: AtomicU32,
    /// Video frames assembled from RTP.
    pub(crate) frames_received: AtomicU64,
    /// Audio packets received.
    pub(crate) audio_packets: AtomicU64,
    /// Key frames we asked for.
    pub(crate) plis_sent: AtomicU64,
    /// Their upper-layer frames lost and skipped at no cost.
    pub(crate) frames_skipped: AtomicU64,
    /// Their frames that completed after a wait for a retransmission.
    pub(crate) frames_repaired: AtomicU64,
    /// Their base-layer frames given up on (a key frame was asked for).
    pub(crate) frames_given_up: AtomicU64,
    /// Key frames asked of us.
    pub(crate) plis_received: AtomicU64,
    /// RTP streams with a codec we do not speak.
    pub(crate) unsupported_streams: AtomicU64,
}

/// A connection to one remote member.
pub(crate) struct PeerLink {
    pub(crate) user: UserId,
    pub(crate) pc: Arc<dyn PeerConnection>,
    video: Arc<TrackLocalStaticRTP>,
    video_out: tokio::sync::Mutex<VideoOut>,
    audio: Arc<TrackLocalStaticRTP>,
    audio_out: tokio::sync::Mutex<AudioOut>,
    video_ssrc: u32,
    audio_ssrc: u32,
    commands: UnboundedSender<Command>,
    pub(crate) counters: Arc<LinkCounters>,
    pub(crate) target_bps: Arc<AtomicU64>,
    /// A queue builds on the path to them.
    congested: Arc<AtomicBool>,
    pub(crate) receiver: Arc<Mutex<Option<VideoReceiver>>>,
    /// A key frame is wanted from this member's camera.
    pub(crate) pli_wanted: Arc<AtomicBool>,
    pub(crate) state: Arc<Mutex<LinkState>>,
    pub(crate) connected_at: Arc<Mutex<Option<Instant>>>,
    /// The DTLS certificate fingerprint of the remote's description.
    remote_fingerprint: Arc<Mutex<Option<String>>>,
}

/// The DTLS certificate fingerprint a session description carries.
pub(crate) fn fingerprint(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=fingerprint:"))
        .map(|f| f.trim().to_ascii_lowercase())
}

impl std::fmt::Debug for PeerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLink")
            .field("user", &self.user)
            .finish()
    }
}

enum Command {
    Remote(Signal),
    Offer { ice_restart: bool },
}

enum PcEvent {
    NegotiationNeeded,
    Candidate(RTCIceCandidateInit),
    Ice(RTCIceConnectionState),
    Conn(RTCPeerConnectionState),
}

/// Forwards the connection's callbacks to the link's task: they run on the
/// connection's driver and must return at once.
struct Handler {
    events: UnboundedSender<PcEvent>,
    on_track: Box<dyn Fn(Arc<dyn TrackRemote>) + Send + Sync>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_negotiation_needed(&self) {
        let _ = self.events.send(PcEvent::NegotiationNeeded);
    }

    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.events.send(PcEvent::Candidate(init));
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let _ = self.events.send(PcEvent::Ice(state));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PcEvent::Conn(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        (self.on_track)(track);
    }
}

fn rtc_err(what: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Rtc(format!("{what}: {e}"))
}

fn media_track(kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32, me: &UserId) -> MediaStreamTrack {
    let label = format!("{me}-{kind}");
    MediaStreamTrack::new(
        format!("{me}-stream"),
        label.clone(),
        label,
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )
}

/// What our video RTP stream to one member has got to: we packetize VP8
/// ourselves, to mark temporal layers in every packet.
struct VideoOut {
    packetizer: Vp8Packetizer,
    seq: u16,
    /// The RTP clock's origin.
    epoch: Instant,
    ts_offset: u32,
}

/// Our audio RTP stream to one member: Opus, or Opus with copies of the
/// frames before (RED) while they report loss.
struct AudioOut {
    seq: u16,
    epoch: Instant,
    ts_offset: u32,
    /// The last frames sent, newest first, with their RTP timestamps.
    history: VecDeque<(u32, Bytes)>,
    /// When the last frame went, and its timestamp.
    last: Option<(Instant, u32)>,
}

impl AudioOut {
    /// The RTP timestamp of a frame sent at `now`. Frames come every 20 ms
    /// from the microphone's clock, so each is 960 samples after the one
    /// before, however late the scheduler ran it: the timestamps are what
    /// a receiver places RED copies by. After a pause (the microphone off,
    /// the link down) the clock catches up with the time that passed.
    fn timestamp(&mut self, now: Instant) -> u32 {
        let frames = (now.saturating_duration_since(self.epoch).as_micros() / 20_000) as u32;
        let by_clock = self.ts_offset.wrapping_add(frames.wrapping_mul(960));
        let ts = match self.last {
            Some((at, t)) => {
                let next = t.wrapping_add(960);
                let paused = now.saturating_duration_since(at) > Duration::from_millis(100);
                // Never behind the frame before, whatever the wall clock says.
                if paused && (by_clock.wrapping_sub(next) as i32) > 0 {
                    by_clock
                } else {
                    next
                }
            }
            None => by_clock,
        };
        self.last = Some((now, ts));
        ts
    }
}

/// How many earlier frames each audio packet carries, for the loss the
/// member reports (fraction /256): none on a clean path, one from 3 %, two
/// from 10 %; none while the path is congested, since that loss is its
/// queue overflowing, which copies would only fill faster.
pub(crate) fn audio_redundancy(fraction_lost: u32, congested: bool) -> usize {
    if congested {
        return 0;
    }
    match fraction_lost * 100 / 256 {
        0..3 => 0,
        3..10 => 1,
        _ => 2,
    }
}

/// What our audio costs on the wire, bit/s: Opus at 32 kbit/s, its copies,
/// and some 24 kbit/s of packet headers.
pub(crate) fn audio_bps(copies: usize) -> f64 {
    32_000.0 * (1 + copies) as f64 + 24_000.0
}

/// Room for the VP8 payload in a packet of at most 1200 bytes: RTP header,
/// the transport-wide sequence number extension and the SRTP tag take the
/// rest.
const VIDEO_PAYLOAD: usize = 1200 - 12 - 8 - 10;

fn random_ssrc() -> u32 {
    rand::random::<u32>() | 1
}

impl PeerLink {
    /// Builds the connection to `user`; the polite side (by user id) yields
    /// when both offer at once.
    /// `stuck_after`: how long it may take to come up before the call is
    /// asked to replace it.
    pub(crate) async fn open(
        ctx: LinkContext,
        user: UserId,
        stuck_after: Duration,
    ) -> Result<Arc<Self>, MediaError> {
        let polite = ctx.me > user;
        let target_bps = Arc::new(AtomicU64::new(0));
        let congested = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(LinkCounters::default());
        let (engine, registry) = setup::media_engine(
            target_bps.clone(),
            congested.clone(),
            counters.rtt_us.clone(),
        )?;
        let receiver: Arc<Mutex<Option<VideoReceiver>>> = Arc::new(Mutex::new(None));
        let pli_wanted = Arc::new(AtomicBool::new(false));
        let (pc_tx, pc_rx) = unbounded_channel();
        let on_track = {
            let (ctx, user, counters, receiver, pli) = (
                ctx.clone(),
                user.clone(),
                counters.clone(),
                receiver.clone(),
                pli_wanted.clone(),
            );
            Box::new(move |track: Arc<dyn TrackRemote>| {
                let (ctx, user, counters, receiver, pli) = (
                    ctx.clone(),
                    user.clone(),
                    counters.clone(),
                    receiver.clone(),
                    pli.clone(),
                );
                tokio::spawn(receive(track, ctx, user, counters, receiver, pli));
            })
        };
        let handler = Arc::new(Handler {
            events: pc_tx,
            on_track,
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(setup::configuration(&ctx.ice_servers))
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(setup::settings())
            .with_handler(handler)
            .with_udp_addrs(ctx.udp_addrs.clone())
            .with_runtime(Arc::new(CopyingRuntime))
            .build()
            .await
            .map_err(|e| rtc_err("peer connection", e))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let (video_ssrc, audio_ssrc) = (random_ssrc(), random_ssrc());
        let video = Arc::new(TrackLocalStaticRTP::new(media_track(
            RtpCodecKind::Video,
            setup::vp8_codec(),
            video_ssrc,
            &ctx.me,
        )));
        let audio = Arc::new(TrackLocalStaticRTP::new(media_track(
            RtpCodecKind::Audio,
            setup::opus_codec(),
            audio_ssrc,
            &ctx.me,
        )));
        pc.add_track(video.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| rtc_err("add video", e))?;
        pc.add_track(audio.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| rtc_err("add audio", e))?;
        let (commands, cmd_rx) = unbounded_channel();
        let link = Arc::new(Self {
            user: user.clone(),
            pc: pc.clone(),
            video: video.clone(),
            video_out: tokio::sync::Mutex::new(VideoOut {
                packetizer: Vp8Packetizer::new(),
                seq: rand::random(),
                epoch: Instant::now(),
                ts_offset: rand::random(),
            }),
            audio: audio.clone(),
            audio_out: tokio::sync::Mutex::new(AudioOut {
                seq: rand::random(),
                epoch: Instant::now(),
                ts_offset: rand::random(),
                history: VecDeque::new(),
                last: None,
            }),
            video_ssrc,
            audio_ssrc,
            commands,
            counters: counters.clone(),
            target_bps,
            congested,
            receiver,
            pli_wanted,
            state: Arc::new(Mutex::new(LinkState::Connecting)),
            connected_at: Arc::new(Mutex::new(None)),
            remote_fingerprint: Arc::new(Mutex::new(None)),
        });
        let negotiator = Negotiator {
            pc,
            polite,
            making_offer: false,
            ignore_offer: false,
            pending_candidates: Vec::new(),
            ctx: ctx.clone(),
            user: user.clone(),
            state: link.state.clone(),
            connected_at: link.connected_at.clone(),
            last_restart: None,
            remote_fingerprint: link.remote_fingerprint.clone(),
            opened: Instant::now(),
            stuck_after,
            reported_stuck: false,
            state_since: Instant::now(),
        };
        tokio::spawn(negotiator.run(pc_rx, cmd_rx));
        tokio::spawn(sender_feedback(
            video,
            Some(ctx.key_frame.clone()),
            counters.clone(),
            audio_ssrc,
        ));
        tokio::spawn(sender_feedback(audio, None, counters, audio_ssrc));
        Ok(link)
    }

    /// Starts negotiating from our side (we joined after them).
    pub(crate) fn offer(&self) {
        let _ = self.commands.send(Command::Offer { ice_restart: false });
    }

    /// Looks for a new path to this member (the network changed).
    pub(crate) fn restart_ice(&self) {
        let _ = self.commands.send(Command::Offer { ice_restart: true });
    }

    /// Hands over signaling from this member.
    pub(crate) fn signal(&self, signal: Signal) {
        let _ = self.commands.send(Command::Remote(signal));
    }

    /// Earlier frames each audio packet to this member carries now.
    pub(crate) fn audio_copies(&self) -> usize {
        audio_redundancy(
            self.counters.audio_fraction_lost.load(Ordering::Relaxed),
            self.congested.load(Ordering::Relaxed),
        )
    }

    /// The fingerprint of the remote's certificate, once they described
    /// their side.
    pub(crate) fn remote_fingerprint(&self) -> Option<String> {
        self.remote_fingerprint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a queue shows on the path to this member (or did a moment
    /// ago).
    pub(crate) fn congested(&self) -> bool {
        self.congested.load(Ordering::Relaxed)
    }

    fn connected(&self) -> bool {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) == LinkState::Connected
    }

    /// Sends a compressed video frame (dropped until the link is up: the
    /// first frame after it is a key frame).
    pub(crate) async fn write_video(&self, frame: &EncodedFrame) {
        if !self.connected() {
            return;
        }
        let packets = {
            let mut out = self.video_out.lock().await;
            let ts = out
                .ts_offset
                .wrapping_add((out.epoch.elapsed().as_micros() * 9 / 100) as u32);
            let payloads = out
                .packetizer
                .packetize(&frame.data, frame.layer, VIDEO_PAYLOAD);
            let n = payloads.len();
            payloads
                .into_iter()
                .enumerate()
                .map(|(i, payload)| {
                    let seq = out.seq;
                    out.seq = out.seq.wrapping_add(1);
                    rtc::rtp::Packet {
                        header: rtc::rtp::header::Header {
                            version: 2,
                            marker: i + 1 == n,
                            payload_type: VP8_PT,
                            sequence_number: seq,
                            timestamp: ts,
                            ssrc: self.video_ssrc,
                            ..Default::default()
                        },
                        payload: Bytes::from(payload),
                    }
                })
                .collect::<Vec<_>>()
        };
        for p in packets {
            if self.video.write_rtp(p).await.is_err() {
                break;
            }
        }
    }

    /// Sends a compressed 20 ms audio packet (with copies of the frames
    /// before it while the member reports loss).
    pub(crate) async fn write_audio(&self, data: Bytes) {
        if !self.connected() {
            return;
        }
        let copies = self.audio_copies();
        let packet = {
            let mut out = self.audio_out.lock().await;
            let ts = out.timestamp(Instant::now());
            let older: Vec<(u32, &[u8])> = out
                .history
                .iter()
                .take(copies)
                .filter_map(|(t, d)| {
                    let back = ts.wrapping_sub(*t);
                    (back > 0 && back <= 3 * 960).then_some((back, d.as_ref()))
                })
                .rev()
                .collect();
            let (payload_type, payload) = if older.is_empty() {
                (OPUS_PT, data.clone())
            } else {
                match red::encode(OPUS_PT, &data, &older) {
                    Some(p) => (red::RED_PT, Bytes::from(p)),
                    None => (OPUS_PT, data.clone()),
                }
            };
            out.history.push_front((ts, data));
            out.history.truncate(2);
            let seq = out.seq;
            out.seq = out.seq.wrapping_add(1);
            rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    payload_type,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc: self.audio_ssrc,
                    ..Default::default()
                },
                payload,
            }
        };
        let _ = self.audio.write_rtp(packet).await;
    }

    /// Transport counters from webrtc-rs's stats.
    pub(crate) async fn transport_stats(&self) -> TransportStats {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let mut t = TransportStats::default();
        for o in report.outbound_rtp_streams() {
            t.bytes_sent += o.sent_rtp_stream_stats.bytes_sent;
        }
        for i in report.inbound_rtp_streams() {
            t.bytes_received += i.bytes_received;
            let r = &i.received_rtp_stream_stats;
            t.packets_lost_in += r.packets_lost.max(0) as u64;
            // webrtc-rs reports jitter in RTP timestamp units.
            let clock = if r.rtp_stream_stats.kind.to_string() == "audio" {
                48_000.0
            } else {
                90_000.0
            };
            t.jitter_ms = t.jitter_ms.max(r.jitter / clock * 1000.0);
        }
        t.rtt_s = report
            .candidate_pairs()
            .filter(|c| c.nominated && c.current_round_trip_time > 0.0)
            .map(|c| c.current_round_trip_time)
            .last();
        let selected: Vec<&str> = report
            .iter()
            .filter_map(|e| match e {
                RTCStatsReportEntry::Transport(t) if !t.selected_candidate_pair_id.is_empty() => {
                    Some(t.selected_candidate_pair_id.as_str())
                }
                _ => None,
            })
            .collect();
        // webrtc-rs names a pair's candidates by their bare ids, and the
        // candidates' own entries with a prefix.
        let kind = |id: &str, local: bool| {
            report.iter().find_map(|e| match e {
                RTCStatsReportEntry::LocalCandidate(c) if local && c.stats.id.ends_with(id) => {
                    Some(c.candidate_type.to_string())
                }
                RTCStatsReportEntry::RemoteCandidate(c) if !local && c.stats.id.ends_with(id) => {
                    Some(c.candidate_type.to_string())
                }
                _ => None,
            })
        };
        // A remote candidate learned from the remote's own checks (before
        // its description arrived) has no entry: it is peer-reflexive.
        t.path = report
            .candidate_pairs()
            .filter(|c| selected.contains(&c.stats.id.as_str()) || c.nominated)
            .find_map(|c| {
                Some(format!(
                    "{}/{}",
                    kind(&c.local_candidate_id, true)?,
                    kind(&c.remote_candidate_id, false).unwrap_or_else(|| "prflx".into())
                ))
            });
        t
    }

    /// Closes the connection and stops the decode thread.
    pub(crate) async fn close(&self) {
        let _ = self.pc.close().await;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = LinkState::Closed;
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = receiver {
            // Joining the decode thread may wait for one frame.
            let _ = tokio::task::spawn_blocking(move || drop(r)).await;
        }
    }
}

/// Perfect negotiation (W3C's pattern) for one connection.
struct Negotiator {
    pc: Arc<dyn PeerConnection>,
    polite: bool,
    making_offer: bool,
    ignore_offer: bool,
    pending_candidates: Vec<RTCIceCandidateInit>,
    ctx: LinkContext,
    user: UserId,
    state: Arc<Mutex<LinkState>>,
    connected_at: Arc<Mutex<Option<Instant>>>,
    /// When we last offered an ICE restart.
    last_restart: Option<Instant>,
    remote_fingerprint: Arc<Mutex<Option<String>>>,
    opened: Instant,
    stuck_after: Duration,
    reported_stuck: bool,
    /// Since when the link has been in its present state.
    state_since: Instant,
}

/// A first connection not up this long after it was opened is replaced; a
/// replacement gets longer (a handshake through heavy loss takes seconds:
/// webrtc-rs repeats a lost DTLS flight after a second).
pub(crate) fn stuck_after(replacements: u32) -> Duration {
    Duration::from_secs(6 + 6 * u64::from(replacements.min(3)))
}

/// How often the connection's loop is made to run while it connects, and
/// for how long at most.
const PUMP_EVERY: Duration = Duration::from_millis(5);
const PUMP_FOR: Duration = Duration::from_secs(10);

/// A link disconnected this long gets an ICE restart from its impolite side,
/// and a fresh one this often while it stays broken (an earlier offer may
/// have been lost with the network).
const RESTART_AFTER: Duration = Duration::from_millis(1500);
const RESTART_AGAIN: Duration = Duration::from_millis(2500);

impl Negotiator {
    async fn run(
        mut self,
        mut pc_events: UnboundedReceiver<PcEvent>,
        mut commands: UnboundedReceiver<Command>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut pump = tokio::time::interval(PUMP_EVERY);
        pump.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let pumping = matches!(
                *self.state.lock().unwrap_or_else(|p| p.into_inner()),
                LinkState::Connecting | LinkState::Reconnecting
            ) && self.state_since.elapsed() < PUMP_FOR;
            let result = tokio::select! {
                _ = async { if pumping { pump.tick().await; } else { std::future::pending::<()>().await } } => {
                    // webrtc-rs queues a packet for a TURN relay in one pass
                    // of its loop and sends it in the next, which comes with
                    // the next event: during the handshake, when nothing else
                    // happens, a flight waited ~400 ms per hop (a relayed
                    // call took over a second to connect). Setting the same
                    // configuration is a no-op that makes that next pass.
                    let config = self.pc.get_configuration().await;
                    let _ = self.pc.set_configuration(config).await;
                    Ok(())
                }
                _ = tick.tick() => {
                    let state = *self.state.lock().unwrap_or_else(|p| p.into_inner());
                    if state == LinkState::Connecting
                        && self.opened.elapsed() >= self.stuck_after
                        && self.connected_at.lock().unwrap_or_else(|p| p.into_inner()).is_none()
                    {
                        self.report_stuck();
                    }
                    let broken = state == LinkState::Reconnecting
                        && self.state_since.elapsed() >= RESTART_AFTER;
                    let due = self.last_restart.is_none_or(|t| t.elapsed() >= RESTART_AGAIN);
                    if broken && due && !self.polite {
                        self.make_offer(true).await
                    } else {
                        Ok(())
                    }
                }
                e = pc_events.recv() => match e {
                    None => break,
                    Some(e) => self.on_pc_event(e).await,
                },
                c = commands.recv() => match c {
                    None => break,
                    Some(Command::Offer { ice_restart }) => self.make_offer(ice_restart).await,
                    Some(Command::Remote(signal)) => self.on_remote(signal).await,
                },
            };
            if let Err(error) = result {
                tracing::debug!(me = %self.ctx.me, user = %self.user, %error, "negotiation step failed");
                let _ = self.ctx.events.send(LinkEvent::Rejected {
                    from: self.user.clone(),
                    error,
                });
            }
        }
    }

    /// Asks the call for a new connection in place of this one (once).
    fn report_stuck(&mut self) {
        if !self.reported_stuck {
            self.reported_stuck = true;
            let _ = self.ctx.events.send(LinkEvent::Stuck {
                user: self.user.clone(),
            });
        }
    }

    fn set_state(&mut self, state: LinkState) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if *s != state && *s != LinkState::Closed {
            *s = state;
            self.state_since = Instant::now();
            let _ = self.ctx.events.send(LinkEvent::State {
                user: self.user.clone(),
                state,
            });
        }
    }

    async fn on_pc_event(&mut self, event: PcEvent) -> Result<(), MediaError> {
        match event {
            // Offers are started on purpose (the member who joined later, or
            // an ICE restart): the tracks never change after the connection
            // is made, and webrtc-rs fires this event unreliably and on both
            // sides at once, which only makes needless glare.
            PcEvent::NegotiationNeeded => {}
            PcEvent::Candidate(c) => {
                let candidate =
                    IceCandidate::try_from(c.candidate).map_err(|e| rtc_err("candidate", e))?;
                self.send(Signal::Candidate {
                    candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                });
            }
            PcEvent::Conn(RTCPeerConnectionState::Connected) => {
                self.connected_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(Instant::now);
                self.set_state(LinkState::Connected);
            }
            PcEvent::Conn(RTCPeerConnectionState::Closed) => self.set_state(LinkState::Closed),
            // Failed before it ever connected: the DTLS handshake gave up,
            // and no ICE restart brings it back. A new connection does.
            PcEvent::Conn(RTCPeerConnectionState::Failed)
                if self
                    .connected_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_none() =>
            {
                self.report_stuck();
            }
            // Disconnected may pass by itself (a burst of loss, a short
            // outage): say so, and restart ICE only if it lasts (see
            // `RESTART_AFTER`).
            PcEvent::Conn(RTCPeerConnectionState::Disconnected) => {
                self.set_state(LinkState::Reconnecting);
            }
            PcEvent::Conn(RTCPeerConnectionState::Failed)
            | PcEvent::Ice(RTCIceConnectionState::Failed) => {
                self.set_state(LinkState::Reconnecting);
                // One side restarts ICE; both doing it at once would only
                // collide.
                if !self.polite {
                    self.make_offer(true).await?;
                }
            }
            PcEvent::Conn(_) | PcEvent::Ice(_) => {}
        }
        Ok(())
    }

    fn send(&self, signal: Signal) {
        let _ = self.ctx.events.send(LinkEvent::Signal {
            to: self.user.clone(),
            signal,
        });
    }

    async fn is_stable(&self) -> bool {
        self.pc.pending_local_description().await.is_none()
            && self.pc.pending_remote_description().await.is_none()
    }

    async fn make_offer(&mut self, ice_restart: bool) -> Result<(), MediaError> {
        if ice_restart
            && self.pc.pending_local_description().await.is_some()
            && self.pc.pending_remote_description().await.is_none()
        {
            // An earlier offer never got its answer (lost with the network):
            // take it back and offer anew.
            let rollback =
                RTCSessionDescription::rollback(None).map_err(|e| rtc_err("rollback", e))?;
            self.pc
                .set_local_description(rollback)
                .await
                .map_err(|e| rtc_err("rollback", e))?;
        }
        if !self.is_stable().await {
            return Ok(());
        }
        if ice_restart {
            self.last_restart = Some(Instant::now());
        }
        // The first negotiation happens once, whoever starts it: a second
        // round with the roles swapped would make both ends DTLS clients.
        if !ice_restart && self.pc.remote_description().await.is_some() {
            tracing::debug!(me = %self.ctx.me, user = %self.user, "already negotiated; no offer");
            return Ok(());
        }
        tracing::debug!(me = %self.ctx.me, user = %self.user, ice_restart, "offering");
        self.making_offer = true;
        let result = async {
            let options = ice_restart.then_some(RTCOfferOptions { ice_restart: true });
            let offer = self
                .pc
                .create_offer(options)
                .await
                .map_err(|e| rtc_err("create offer", e))?;
            self.pc
                .set_local_description(offer)
                .await
                .map_err(|e| rtc_err("set local offer", e))?;
            self.send_local().await
        }
        .await;
        self.making_offer = false;
        result
    }

    async fn send_local(&self) -> Result<(), MediaError> {
        let local = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| rtc_err("local description", "none"))?;
        let sdp = Sdp::try_from(local.sdp).map_err(|e| rtc_err("local SDP", e))?;
        tracing::debug!(me = %self.ctx.me, user = %self.user, kind = ?local.sdp_type, bytes = sdp.as_str().len(), "description sent");
        self.send(match local.sdp_type {
            RTCSdpType::Offer => Signal::Offer { sdp },
            _ => Signal::Answer { sdp },
        });
        Ok(())
    }

    async fn on_remote(&mut self, signal: Signal) -> Result<(), MediaError> {
        match signal {
            Signal::Offer { sdp } | Signal::Answer { sdp } if sdp.as_str().trim().is_empty() => {
                Err(MediaError::Signaling("empty SDP".into()))
            }
            Signal::Offer { sdp } => self.on_description(true, sdp.as_str().to_owned()).await,
            Signal::Answer { sdp } => self.on_description(false, sdp.as_str().to_owned()).await,
            Signal::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                let init = RTCIceCandidateInit {
                    candidate: candidate.as_str().to_owned(),
                    sdp_mid,
                    sdp_mline_index,
                    ..Default::default()
                };
                if self.pc.remote_description().await.is_none() {
                    self.pending_candidates.push(init);
                    return Ok(());
                }
                match self.pc.add_ice_candidate(init).await {
                    Err(e) if !self.ignore_offer => {
                        Err(MediaError::Signaling(format!("bad candidate: {e}")))
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    async fn on_description(&mut self, is_offer: bool, sdp: String) -> Result<(), MediaError> {
        let sdp_text = sdp.clone();
        if let Some(problem) = unsupported_media(&sdp) {
            // Not fatal: whatever we do share still flows.
            let _ = self.ctx.events.send(LinkEvent::Rejected {
                from: self.user.clone(),
                error: MediaError::Signaling(problem),
            });
        }
        let desc = if is_offer {
            RTCSessionDescription::offer(sdp)
        } else {
            RTCSessionDescription::answer(sdp)
        }
        .map_err(|e| MediaError::Signaling(format!("bad SDP: {e}")))?;
        let stable = self.is_stable().await;
        if !is_offer && stable {
            // The answer to an offer we rolled back when theirs crossed ours.
            return Ok(());
        }
        let collision = is_offer && (self.making_offer || !stable);
        self.ignore_offer = !self.polite && collision;
        tracing::debug!(me = %self.ctx.me, user = %self.user, is_offer, stable, collision, polite = self.polite, "remote description");
        if self.ignore_offer {
            return Ok(());
        }
        if collision {
            let rollback =
                RTCSessionDescription::rollback(None).map_err(|e| rtc_err("rollback", e))?;
            self.pc
                .set_local_description(rollback)
                .await
                .map_err(|e| rtc_err("rollback", e))?;
        }
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(|e| MediaError::Signaling(format!("unusable SDP: {e}")))?;
        if let Some(f) = fingerprint(&sdp_text) {
            *self
                .remote_fingerprint
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(f);
        }
        for c in std::mem::take(&mut self.pending_candidates) {
            let _ = self.pc.add_ice_candidate(c).await;
        }
        if is_offer {
            let answer = self
                .pc
                .create_answer(None)
                .await
                .map_err(|e| rtc_err("create answer", e))?;
            self.pc
                .set_local_description(answer)
                .await
                .map_err(|e| rtc_err("set local answer", e))?;
            self.send_local().await?;
        }
        Ok(())
    }
}

/// What in a session description we cannot receive: a video section
/// without VP8, or an audio section without Opus.
fn unsupported_media(sdp: &str) -> Option<String> {
    let mut problems = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let kind = section.split_whitespace().next().unwrap_or("");
        let rejected = section.split_whitespace().nth(1) == Some("0");
        let has = |codec: &str| {
            section
                .lines()
                .any(|l| l.starts_with("a=rtpmap:") && l.contains(codec))
        };
        match kind {
            "video" if !rejected && !has(" VP8/") => problems.push("video without VP8"),
            "audio" if !rejected && !has(" opus/") => problems.push("audio without Opus"),
            _ => {}
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "unsupported media offered ({}); it is not received",
            problems.join(", ")
        )
    })
}

/// Reads a remote track: VP8 frames go to the decoder, Opus packets to the
/// mixer; anything else is counted and dropped.
async fn receive(
    track: Arc<dyn TrackRemote>,
    ctx: LinkContext,
    user: UserId,
    counters: Arc<LinkCounters>,
    receiver: Arc<Mutex<Option<VideoReceiver>>>,
    pli: Arc<AtomicBool>,
) {
    let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let mime = track
        .codec(ssrc)
        .await
        .map(|c| c.mime_type)
        .unwrap_or_default();
    let video = mime.eq_ignore_ascii_case(MIME_TYPE_VP8);
    let audio = mime.eq_ignore_ascii_case(MIME_TYPE_OPUS)
        || mime.eq_ignore_ascii_case(setup::MIME_TYPE_RED);
    if !video && !audio {
        counters.unsupported_streams.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%user, %mime, "ignoring a stream with an unexpected codec");
    }
    if video {
        let mut slot = receiver.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            match VideoReceiver::start(
                user.clone(),
                ctx.video_sink.clone(),
                ctx.pipeline_events.clone(),
            ) {
                Ok(r) => *slot = Some(r),
                Err(e) => tracing::warn!(error = %e, "no video decoder"),
            }
        }
    }
    if audio {
        while let Some(event) = track.poll().await {
            let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                continue;
            };
            counters.audio_packets.fetch_add(1, Ordering::Relaxed);
            let seq = packet.header.sequence_number;
            let now = Instant::now();
            let mut mixer = ctx.mixer.lock().unwrap_or_else(|p| p.into_inner());
            let result = if packet.header.payload_type == red::RED_PT {
                match red::decode(&packet.payload) {
                    Some((older, primary)) => {
                        // Each copy stands in for the packet it was sent
                        // in, 20 ms (960 samples) per packet back.
                        let copies = older
                            .into_iter()
                            .filter_map(|(back, data)| {
                                let behind = (back / 960) as u16;
                                (behind > 0).then(|| (seq.wrapping_sub(behind), data))
                            })
                            .collect();
                        mixer.push(&user, now, seq, primary.to_vec(), copies)
                    }
                    None => {
                        tracing::debug!("unreadable RED audio");
                        Ok(())
                    }
                }
            } else {
                mixer.push(&user, now, seq, packet.payload.to_vec(), Vec::new())
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "audio dropped");
            }
        }
        return;
    }
    if !video {
        while track.poll().await.is_some() {}
        return;
    }
    let mut buffer = FrameBuffer::new();
    let mut last_pli: Option<Instant> = None;
    let mut media_ssrc = ssrc;
    // A wait for a missing packet can run out while nothing arrives.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            event = track.poll() => match event {
                None => break,
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    let h = &packet.header;
                    media_ssrc = h.ssrc;
                    buffer.push(Instant::now(), h.sequence_number, h.timestamp, h.marker, &packet.payload);
                }
                Some(_) => continue,
            },
            _ = tick.tick() => {}
        }
        let rtt_us = counters.rtt_us.load(Ordering::Relaxed);
        if rtt_us > 0 {
            buffer.set_rtt(Duration::from_micros(rtt_us));
        }
        while let Some(out) = buffer.poll(Instant::now()) {
            match out {
                Output::Frame(frame) => {
                    counters.frames_received.fetch_add(1, Ordering::Relaxed);
                    let queued = receiver
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                        .is_some_and(|r| r.push(frame.data, frame.key));
                    if !queued {
                        pli.store(true, Ordering::Relaxed);
                    }
                }
                Output::NeedKeyFrame => pli.store(true, Ordering::Relaxed),
            }
        }
        let b = buffer.stats();
        counters.frames_skipped.store(b.skipped, Ordering::Relaxed);
        counters
            .frames_given_up
            .store(b.given_up, Ordering::Relaxed);
        counters
            .frames_repaired
            .store(b.repaired, Ordering::Relaxed);
        // At most four key-frame requests a second: each costs the sender a
        // big frame, and one in flight is enough.
        let due = last_pli.is_none_or(|t| t.elapsed() > Duration::from_millis(250));
        if due && pli.swap(false, Ordering::Relaxed) {
            last_pli = Some(Instant::now());
            counters.plis_sent.fetch_add(1, Ordering::Relaxed);
            let request = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            let _ = track.write_rtcp(vec![Box::new(request)]).await;
        }
    }
}

/// Reads RTCP about our video: key-frame requests reach the encoder,
/// receiver reports give round-trip time and loss.
async fn sender_feedback(
    track: Arc<TrackLocalStaticRTP>,
    key_frame: Option<Arc<AtomicBool>>,
    counters: Arc<LinkCounters>,
    audio_ssrc: u32,
) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        for p in packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                if let Some(key_frame) = &key_frame {
                    counters.plis_received.fetch_add(1, Ordering::Relaxed);
                    key_frame.store(true, Ordering::Relaxed);
                }
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                for r in &rr.reports {
                    // Audio has no retransmissions: its report says what
                    // the path loses.
                    let lost = if r.ssrc == audio_ssrc {
                        &counters.audio_fraction_lost
                    } else {
                        &counters.fraction_lost
                    };
                    lost.store(u32::from(r.fraction_lost), Ordering::Relaxed);
                    if r.last_sender_report != 0 {
                        let d = ntp_mid32_now()
                            .wrapping_sub(r.last_sender_report)
                            .wrapping_sub(r.delay);
                        counters
                            .rtt_us
                            .store(u64::from(d) * 1_000_000 / 65_536, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// The middle 32 bits of the NTP time now, as RTCP reports use.
fn ntp_mid32_now() -> u32 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (((secs & 0xffff) << 16) | (frac >> 16)) as u32
}

#[cfg(test)]
mod tests {
    use super::unsupported_media;

    #[test]
    fn the_certificate_fingerprint_is_read_from_a_description() {
        let sdp = "v=0\r\na=fingerprint:sha-256 AB:CD:EF\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        assert_eq!(super::fingerprint(sdp).as_deref(), Some("sha-256 ab:cd:ef"));
        assert_eq!(super::fingerprint("v=0\r\n"), None);
    }

    #[test]
    fn sections_without_our_codecs_are_named() {
        let ok = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(unsupported_media(ok), None);
        let h264 = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
        assert!(
            unsupported_media(h264)
                .unwrap()
                .contains("video without VP8")
        );
        let rejected = "v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
        assert_eq!(
            unsupported_media(rejected),
            None,
            "a rejected section is not a problem"
        );
    }
}

#[cfg(test)]
mod redundancy_tests {
    use std::collections::VecDeque;
    use std::time::{Duration, Instant};

    use super::{AudioOut, audio_redundancy};

    fn out(epoch: Instant) -> AudioOut {
        AudioOut {
            seq: 0,
            epoch,
            ts_offset: u32::MAX - 1000,
            history: VecDeque::new(),
            last: None,
        }
    }

    #[test]
    fn each_frame_is_960_samples_after_the_last_however_late_it_is_sent() {
        let t0 = Instant::now();
        let mut a = out(t0);
        // Sent at 0, 19.9, 40.5, 59, 81, 99.5 ms: whole 20 ms steps of the
        // wall clock would give the same timestamp twice and skip one.
        let sent = [0, 19_900, 40_500, 59_000, 81_000, 99_500];
        let ts: Vec<u32> = sent
            .iter()
            .map(|&us| a.timestamp(t0 + Duration::from_micros(us)))
            .collect();
        for w in ts.windows(2) {
            assert_eq!(w[1].wrapping_sub(w[0]), 960, "{ts:?}");
        }
    }

    #[test]
    fn after_a_pause_the_timestamps_catch_up_with_the_time_that_passed() {
        let t0 = Instant::now();
        let mut a = out(t0);
        let first = a.timestamp(t0);
        a.timestamp(t0 + Duration::from_millis(20));
        // The microphone was off for a second.
        let back = a.timestamp(t0 + Duration::from_millis(1040));
        assert_eq!(back.wrapping_sub(first), 52 * 960);
        let next = a.timestamp(t0 + Duration::from_millis(1061));
        assert_eq!(next.wrapping_sub(back), 960);
    }

    #[test]
    fn copies_grow_with_reported_loss_unless_the_path_is_congested() {
        assert_eq!(audio_redundancy(0, false), 0);
        assert_eq!(audio_redundancy(256 * 5 / 100, false), 1);
        assert_eq!(audio_redundancy(256 * 30 / 100, false), 2);
        assert_eq!(
            audio_redundancy(256 * 30 / 100, true),
            0,
            "a full queue, not noise"
        );
    }
}
