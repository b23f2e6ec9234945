//! Sends each DTLS handshake datagram, and each TURN request, more than
//! once.
//!
//! webrtc-rs repeats a lost handshake flight only after a fixed second, and
//! a connection cannot carry media until six flights have crossed: on a
//! lossy link one lost datagram costs a second, a few cost several (a call
//! over 5 % loss took 6 s to connect, over 30 % it did not in 30 s). The
//! flights are a few kilobytes, once per connection, so a copy of each
//! datagram shortly after it, and another a little later, is cheap: a flight
//! is then lost only when every copy of one of its datagrams is. The
//! receiving side drops the copies it does not need (DTLS replay detection:
//! same epoch, same record number).
//!
//! TURN requests (Allocate, Refresh, CreatePermission, ChannelBind) have
//! the same trouble on a lossy access link: webrtc-rs waits 200 ms, then
//! 400, 800… before it asks again, a relay needs three or four of them in a
//! row before the first check, and each is lost when either the request or
//! its answer is (half the time at 30 % loss). A copy is the same request
//! (same transaction ID), which a TURN server answers again as it answers a
//! retransmission (RFC 8656 §7.2: Allocate, and the others are idempotent);
//! webrtc-rs takes the first answer and ignores the rest.
//!
//! The copies are made under webrtc-rs, at its UDP sockets (a [`Runtime`]
//! that is Tokio's but for the sockets it wraps), so they reach the peer by
//! whichever path the original takes: straight, inside a TURN ChannelData
//! message or a TURN Send indication (and so over the TURN-over-TCP bridge).

use std::future::{Future, poll_fn};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// When the copies of a handshake datagram follow it: apart, so one burst of
/// loss does not take them all.
const COPIES_AFTER: [Duration; 2] = [Duration::from_millis(10), Duration::from_millis(35)];

/// Tokio's runtime, with UDP sockets that copy handshake datagrams.
#[derive(Debug, Default)]
pub(crate) struct CopyingRuntime;

impl Runtime for CopyingRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Arc::new(CopyingSocket {
            inner: TokioRuntime.wrap_udp_socket(socket)?,
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TokioRuntime.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        TokioRuntime.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        TokioRuntime.resolve_host(host)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio, copying DTLS handshakes"
    }
}

/// A UDP socket that sends handshake datagrams again after [`COPIES_AFTER`].
#[derive(Debug)]
struct CopyingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
}

impl CopyingSocket {
    fn copy_later(&self, datagram: &[u8], transmit: &Transmit<'_>) {
        let (inner, datagram, destination, ecn, src_ip) = (
            self.inner.clone(),
            datagram.to_vec(),
            transmit.destination,
            transmit.ecn,
            transmit.src_ip,
        );
        let sent_at = tokio::time::Instant::now();
        tokio::spawn(async move {
            for after in COPIES_AFTER {
                tokio::time::sleep_until(sent_at + after).await;
                let copy = Transmit {
                    destination,
                    ecn,
                    contents: &datagram,
                    segment_size: None,
                    src_ip,
                };
                // A copy that cannot go is no worse than none.
                if let Err(error) = poll_fn(|cx| inner.poll_send(cx, &copy)).await {
                    tracing::debug!(%error, "handshake copy not sent");
                    return;
                }
            }
        });
    }
}

impl AsyncUdpSocket for CopyingSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let sent = self.inner.poll_send(cx, transmit);
        if let Poll::Ready(Ok(_)) = sent {
            let segment = transmit.segment_size.unwrap_or(transmit.contents.len());
            for datagram in transmit.contents.chunks(segment.max(1)) {
                if carries_handshake(datagram) || is_turn_request(datagram) {
                    self.copy_later(datagram, transmit);
                }
            }
        }
        sent
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}

/// Whether a datagram on its way out is (or relays) a DTLS handshake,
/// change-cipher-spec or alert record: straight, as a TURN ChannelData
/// message, or as the data of a TURN Send indication.
pub(crate) fn carries_handshake(datagram: &[u8]) -> bool {
    match datagram.first() {
        // RFC 7983: 20..=63 is DTLS. Handshake messages go in records of
        // type 22 (the Finished too, encrypted), next to change_cipher_spec
        // (20) and alerts (21); 23 is application data (data channels).
        Some(20..=22) => datagram.len() >= 13 && datagram[1] == 0xfe,
        // RFC 8656 §12: a channel number, the length, the data.
        Some(0x40..=0x4f) => {
            let Some(len) = be16(datagram, 2) else {
                return false;
            };
            datagram
                .get(4..4 + usize::from(len))
                .is_some_and(carries_handshake)
        }
        // A STUN message: the DATA attribute of a Send indication.
        Some(0x00) => send_indication_data(datagram).is_some_and(carries_handshake),
        _ => false,
    }
}

const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const SEND_INDICATION: u16 = 0x0016;
/// The request types of TURN's methods (RFC 8656 §17): Allocate, Refresh,
/// CreatePermission, ChannelBind. A method below 16 in the request class
/// is its own message type.
const TURN_REQUESTS: [u16; 4] = [0x0003, 0x0004, 0x0008, 0x0009];
const ATTR_DATA: u16 = 0x0013;

/// Whether a datagram on its way out is a request to a TURN server (not a
/// Binding request: ICE retries its checks every few milliseconds itself).
pub(crate) fn is_turn_request(datagram: &[u8]) -> bool {
    datagram.len() >= 20
        && datagram.get(4..8) == Some(&STUN_MAGIC_COOKIE[..])
        && be16(datagram, 0).is_some_and(|t| TURN_REQUESTS.contains(&t))
}

/// The DATA attribute of a STUN Send indication (RFC 8656 §10.1).
fn send_indication_data(message: &[u8]) -> Option<&[u8]> {
    if be16(message, 0)? != SEND_INDICATION || message.get(4..8)? != STUN_MAGIC_COOKIE {
        return None;
    }
    let end = (20 + usize::from(be16(message, 2)?)).min(message.len());
    let mut at = 20;
    while at + 4 <= end {
        let (kind, len) = (be16(message, at)?, usize::from(be16(message, at + 2)?));
        let value = message.get(at + 4..at + 4 + len)?;
        if kind == ATTR_DATA {
            return Some(value);
        }
        // Attributes are padded to four bytes.
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DTLS 1.2 record header of `kind` and a body.
    fn record(kind: u8) -> Vec<u8> {
        let mut r = vec![kind, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4];
        r.extend_from_slice(&[1, 2, 3, 4]);
        r
    }

    fn channel_data(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0x40, 0x01];
        m.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    fn send_indication(payload: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // XOR-PEER-ADDRESS first, as webrtc-rs writes it.
        attrs.extend_from_slice(&[0x00, 0x12, 0x00, 0x08, 0, 1, 0, 0, 1, 2, 3, 4]);
        attrs.extend_from_slice(&ATTR_DATA.to_be_bytes());
        attrs.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        attrs.extend_from_slice(payload);
        attrs.resize(attrs.len().div_ceil(4) * 4, 0);
        let mut m = SEND_INDICATION.to_be_bytes().to_vec();
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&STUN_MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn handshake_records_are_copied_however_they_travel() {
        for kind in [20, 21, 22] {
            let r = record(kind);
            assert!(carries_handshake(&r), "record {kind}");
            assert!(carries_handshake(&channel_data(&r)), "channel data {kind}");
            assert!(carries_handshake(&send_indication(&r)), "send {kind}");
        }
    }

    #[test]
    fn media_and_checks_are_not_copied() {
        // Application data (a data channel), SRTP, SRTCP.
        let app = record(23);
        let srtp = [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9];
        let srtcp = [0x81, 200, 0, 6, 0, 0, 0, 2];
        for d in [&app[..], &srtp, &srtcp] {
            assert!(!carries_handshake(d));
            assert!(!carries_handshake(&channel_data(d)));
            assert!(!carries_handshake(&send_indication(d)));
        }
        // A binding request (an ICE check, retried by ICE itself).
        let mut check = vec![0x00, 0x01, 0x00, 0x00];
        check.extend_from_slice(&STUN_MAGIC_COOKIE);
        check.extend_from_slice(&[7; 12]);
        assert!(!carries_handshake(&check));
    }

    /// What arrives at `rx` within a while: the datagrams, in order.
    async fn arrivals(rx: &tokio::net::UdpSocket) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let settle = COPIES_AFTER[COPIES_AFTER.len() - 1] + Duration::from_millis(200);
        while let Ok(Ok(n)) = tokio::time::timeout(settle, rx.recv(&mut buf)).await {
            got.push(buf[..n].to_vec());
        }
        got
    }

    #[tokio::test]
    async fn the_socket_sends_a_handshake_or_turn_request_three_times_and_media_once() {
        let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        let socket = CopyingRuntime
            .wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        let hello = channel_data(&record(22));
        socket.send_to(&hello, to).await.unwrap();
        assert_eq!(arrivals(&rx).await, vec![hello.clone(); 3]);
        let allocate = stun(0x0003);
        socket.send_to(&allocate, to).await.unwrap();
        assert_eq!(arrivals(&rx).await, vec![allocate; 3]);
        let srtp = channel_data(&[0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9]);
        socket.send_to(&srtp, to).await.unwrap();
        assert_eq!(arrivals(&rx).await, vec![srtp]);
    }

    fn stun(kind: u16) -> Vec<u8> {
        let mut m = kind.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x00, 0x00]);
        m.extend_from_slice(&STUN_MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m
    }

    #[test]
    fn turn_requests_are_copied_but_not_answers_checks_or_indications() {
        for request in TURN_REQUESTS {
            assert!(is_turn_request(&stun(request)), "{request:#06x}");
            // Success (0x0100) and error (0x0110) answers are the server's.
            assert!(!is_turn_request(&stun(request | 0x0100)));
            assert!(!is_turn_request(&stun(request | 0x0110)));
        }
        assert!(!is_turn_request(&stun(0x0001)), "a binding request");
        assert!(!is_turn_request(&stun(SEND_INDICATION)));
        let mut no_cookie = stun(0x0003);
        no_cookie[4] = 0;
        assert!(!is_turn_request(&no_cookie));
        assert!(!is_turn_request(&stun(0x0003)[..19]), "truncated");
        assert!(!is_turn_request(&channel_data(&stun(0x0003))));
    }

    #[test]
    fn truncated_and_garbage_datagrams_are_not_copied() {
        let r = record(22);
        assert!(!carries_handshake(&r[..5]));
        let cd = channel_data(&r);
        assert!(!carries_handshake(&cd[..cd.len() - 1]));
        let si = send_indication(&r);
        for cut in [3, 10, 25, si.len() - 6] {
            assert!(!carries_handshake(&si[..cut]), "cut at {cut}");
        }
        assert!(!carries_handshake(&[]));
        assert!(!carries_handshake(&[0x40]));
        let mut lying = si.clone();
        lying[2] = 0xff;
        lying[3] = 0xff;
        assert!(
            carries_handshake(&lying),
            "a length past the end is clamped"
        );
    }
}
