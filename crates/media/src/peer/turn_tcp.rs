//! TURN over TCP, for networks that block UDP. webrtc-rs speaks TURN only
//! over UDP, so each `turn:…?transport=tcp` server gets a bridge: a UDP
//! socket on this machine's loopback that ICE uses as its TURN server, and
//! for each of ICE's sockets a TCP connection to the real server carrying
//! the same messages. The relay itself stays UDP on the server's side, so
//! the other end sees an ordinary relay candidate.
//!
//! Over TCP, TURN messages are framed by their own headers (RFC 8656
//! §12.5): a STUN message by its length field, ChannelData by its length,
//! padded to four bytes.
//!
//! TCP is a fallback. To ICE the bridged relay looks like any other, and
//! webrtc-rs keeps the first pair that works: on a lossy path, where a UDP
//! check was lost, that was often the TCP one, and the call had TCP's
//! retransmissions (a second of delay at 15 % loss) instead of its own
//! repairs. So the bridge asks the server over UDP (a STUN Binding, every
//! 50 ms at first) whether UDP gets through, and opens only when it does
//! not: no answer in the first half second, or none for five seconds
//! later on. Until then ICE's requests to the bridge go unanswered (its
//! TURN client asks again, and gets through once the bridge opens); a
//! connection already made through the bridge is kept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Splits a TCP byte stream into TURN messages.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    buf: Vec<u8>,
}

/// The longest message accepted from the server (a UDP datagram's worth).
const MAX_MESSAGE: usize = 65_535 + 4;

impl Framer {
    /// Adds bytes read from the stream.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, as it goes in a datagram (ChannelData
    /// without its TCP padding); `Err` when the stream is not TURN.
    pub(crate) fn next(&mut self) -> Result<Option<Vec<u8>>, &'static str> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
        let (whole, message) = match self.buf[0] >> 6 {
            // STUN: a 20-byte header, then `len` bytes (a multiple of 4).
            0b00 => (20 + len, 20 + len),
            // ChannelData: 4 bytes, the data, padding to 4 over TCP.
            0b01 => ((4 + len).div_ceil(4) * 4, 4 + len),
            _ => return Err("not a TURN message"),
        };
        if whole > MAX_MESSAGE {
            return Err("message too long");
        }
        if self.buf.len() < whole {
            return Ok(None);
        }
        let mut frame: Vec<u8> = self.buf.drain(..whole).collect();
        frame.truncate(message);
        Ok(Some(frame))
    }
}

/// A datagram as it goes on the TCP stream: ChannelData padded to 4 bytes.
pub(crate) fn to_stream(datagram: &[u8]) -> Vec<u8> {
    let mut out = datagram.to_vec();
    if datagram.first().is_some_and(|b| b >> 6 == 0b01) {
        out.resize(datagram.len().div_ceil(4) * 4, 0);
    }
    out
}

/// How long the bridge waits for a first answer over UDP before it opens.
const FIRST_VERDICT: Duration = Duration::from_millis(500);
/// Silence over UDP, once it answered, after which the bridge opens.
const UDP_GONE_AFTER: Duration = Duration::from_secs(5);
/// How often UDP is asked: at first, and once it answered.
const PROBE_FIRST: Duration = Duration::from_millis(50);
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Whether the server answers over UDP, and so whether the bridge stays
/// shut.
#[derive(Debug)]
pub(crate) struct UdpVerdict {
    started: Instant,
    last_answer: Option<Instant>,
}

impl UdpVerdict {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            started: now,
            last_answer: None,
        }
    }

    /// The server answered over UDP at `now`.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.last_answer = Some(now);
    }

    /// Whether TCP is needed at `now`: UDP never answered in the first
    /// moments, or stopped answering.
    pub(crate) fn tcp_needed(&self, now: Instant) -> bool {
        match self.last_answer {
            Some(at) => now.saturating_duration_since(at) >= UDP_GONE_AFTER,
            None => now.saturating_duration_since(self.started) >= FIRST_VERDICT,
        }
    }

    /// How long until the next question.
    fn probe_gap(&self) -> Duration {
        if self.last_answer.is_some() {
            PROBE_EVERY
        } else {
            PROBE_FIRST
        }
    }
}

/// A STUN Binding request with this transaction id.
fn binding_request(id: [u8; 12]) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&id);
    m
}

/// Whether `datagram` is a Binding success response to `id`.
fn answers(datagram: &[u8], id: &[u8; 12]) -> bool {
    datagram.len() >= 20
        && datagram[..2] == [0x01, 0x01]
        && datagram[4..8] == [0x21, 0x12, 0xa4, 0x42]
        && datagram[8..20] == id[..]
}

/// Asks `server` over UDP, for as long as the bridge runs, whether UDP
/// gets through.
async fn probe(server: String, verdict: Arc<Mutex<UdpVerdict>>) {
    let Some(addr) = tokio::net::lookup_host(&server)
        .await
        .ok()
        .and_then(|mut a| a.next())
    else {
        tracing::debug!(%server, "TURN over TCP: the server's name does not resolve");
        return;
    };
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let Ok(socket) = UdpSocket::bind(bind).await else {
        return;
    };
    let id: [u8; 12] = rand::random();
    let request = binding_request(id);
    let mut buf = [0u8; 1500];
    loop {
        // A failed send (no route: the network is down) is a question
        // without an answer.
        let _ = socket.send_to(&request, addr).await;
        let gap = lock(&verdict).probe_gap();
        let until = tokio::time::Instant::now() + gap;
        loop {
            match tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
                Err(_) => break,
                Ok(Ok((n, from))) => {
                    if from == addr && answers(&buf[..n], &id) {
                        lock(&verdict).answered(Instant::now());
                    }
                }
                // An error the network reported (unreachable): no answer.
                Ok(Err(_)) => {
                    tokio::time::sleep_until(until).await;
                    break;
                }
            }
        }
    }
}

fn lock(v: &Mutex<UdpVerdict>) -> std::sync::MutexGuard<'_, UdpVerdict> {
    v.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running bridge to one TCP TURN server; stops when dropped.
#[derive(Debug)]
pub(crate) struct TcpTurnBridge {
    /// Where ICE sends its TURN traffic.
    pub(crate) local: SocketAddr,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for TcpTurnBridge {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl TcpTurnBridge {
    /// Listens on loopback for ICE's TURN traffic to `server` (host:port).
    /// Must run inside a tokio runtime.
    pub(crate) fn start(server: String) -> std::io::Result<Self> {
        let std_socket = std::net::UdpSocket::bind(("127.0.0.1", 0))?;
        std_socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(std_socket)?);
        let local = socket.local_addr()?;
        let verdict = Arc::new(Mutex::new(UdpVerdict::new(Instant::now())));
        let tasks = [
            tokio::spawn(probe(server.clone(), verdict.clone())),
            tokio::spawn(serve(socket, server, verdict)),
        ];
        Ok(Self { local, tasks })
    }
}

/// ICE servers as webrtc-rs can use them: each `turn:…?transport=tcp` URL
/// replaced by a bridge on loopback (started here, kept in `bridges`).
pub(crate) fn bridged(
    servers: &[beckon_protocol::IceServer],
    bridges: &mut Vec<TcpTurnBridge>,
) -> Vec<beckon_protocol::IceServer> {
    servers
        .iter()
        .map(|s| {
            let urls = s
                .urls
                .iter()
                .map(|u| match tcp_server(u).map(TcpTurnBridge::start) {
                    Some(Ok(bridge)) => {
                        let url = format!("turn:{}?transport=udp", bridge.local);
                        bridges.push(bridge);
                        url
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "no TURN-over-TCP bridge");
                        u.clone()
                    }
                    None => u.clone(),
                })
                .collect();
            beckon_protocol::IceServer { urls, ..s.clone() }
        })
        .collect()
}

/// Datagrams from each of ICE's sockets go to that socket's own TCP
/// connection; what the server sends back returns to the same socket. A
/// socket gets a connection only while UDP does not get through.
async fn serve(socket: Arc<UdpSocket>, server: String, verdict: Arc<Mutex<UdpVerdict>>) {
    let mut streams: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let datagram = buf[..n].to_vec();
        let alive = streams.get(&from).is_some_and(|tx| !tx.is_closed());
        if !alive && !lock(&verdict).tcp_needed(Instant::now()) {
            tracing::trace!(%server, "TURN over TCP: UDP gets through; not bridging");
            continue;
        }
        if !alive {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(carry(socket.clone(), from, server.clone(), rx));
            streams.insert(from, tx);
        }
        if let Some(tx) = streams.get(&from) {
            let _ = tx.send(datagram);
        }
    }
}

/// One TCP connection to the server on behalf of ICE's socket `peer`.
async fn carry(
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    server: String,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let stream = match TcpStream::connect(&server).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%server, error = %e, "TURN over TCP: cannot connect");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            datagram = rx.recv() => {
                let Some(d) = datagram else { return };
                if write.write_all(&to_stream(&d)).await.is_err() {
                    return;
                }
            }
            n = read.read(&mut buf) => {
                let n = match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                framer.push(&buf[..n]);
                loop {
                    match framer.next() {
                        Ok(Some(message)) => {
                            let _ = socket.send_to(&message, peer).await;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(%server, error = e, "TURN over TCP: stream broken");
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// `host:port` of a `turn:` URL that asks for TCP.
pub(crate) fn tcp_server(url: &str) -> Option<String> {
    let rest = url.strip_prefix("turn:")?;
    let (host_port, query) = rest.split_once('?')?;
    if !query
        .split('&')
        .any(|kv| kv.eq_ignore_ascii_case("transport=tcp"))
    {
        return None;
    }
    Some(if host_port.contains(':') && !host_port.ends_with(']') {
        host_port.to_owned()
    } else {
        format!("{host_port}:3478")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP socket and a TCP listener on the same loopback port, as a TURN
    /// server has. The UDP port is the system's pick; another test's TCP
    /// connection may hold that number already, so pick again until both bind.
    async fn udp_and_tcp_on_one_port() -> (UdpSocket, tokio::net::TcpListener, u16) {
        for _ in 0..50 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                return (udp, tcp, port);
            }
        }
        panic!("no loopback port free for both UDP and TCP");
    }

    #[test]
    fn the_bridge_opens_only_while_udp_does_not_answer() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut v = UdpVerdict::new(t0);
        assert!(!v.tcp_needed(ms(100)), "waiting for a first answer");
        assert!(v.tcp_needed(ms(500)), "no answer: UDP is blocked");
        v.answered(ms(600));
        assert!(!v.tcp_needed(ms(700)), "UDP answers");
        assert!(!v.tcp_needed(ms(5500)), "a few probes lost");
        assert!(v.tcp_needed(ms(5600)), "UDP stopped answering");
        let mut fast = UdpVerdict::new(t0);
        fast.answered(ms(20));
        assert!(!fast.tcp_needed(ms(3000)));
    }

    #[test]
    fn only_a_binding_success_for_our_question_is_an_answer() {
        let id = [9u8; 12];
        let request = binding_request(id);
        assert_eq!(request.len(), 20);
        assert!(!answers(&request, &id), "our own request");
        let mut success = request.clone();
        success[..2].copy_from_slice(&[0x01, 0x01]);
        assert!(answers(&success, &id));
        assert!(!answers(&success, &[8u8; 12]), "someone else's");
        assert!(!answers(&success[..19], &id), "truncated");
        let mut error = success.clone();
        error[1] = 0x11;
        assert!(!answers(&error, &id), "an error response");
    }

    #[tokio::test]
    async fn a_server_that_answers_over_udp_keeps_the_bridge_shut() {
        // A STUN server on loopback: UDP answers, so the bridge never
        // connects over TCP (nothing listens there; a connection attempt
        // would show as an accepted stream).
        let (udp, tcp, port) = udp_and_tcp_on_one_port().await;
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let mut reply = buf[..n].to_vec();
                reply[..2].copy_from_slice(&[0x01, 0x01]);
                let _ = udp.send_to(&reply, from).await;
            }
        });
        let bridge = TcpTurnBridge::start(format!("127.0.0.1:{port}")).unwrap();
        let ice = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..10 {
            ice.send_to(&binding_request([1; 12]), bridge.local)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let accepted = tokio::time::timeout(Duration::from_millis(200), tcp.accept()).await;
        assert!(accepted.is_err(), "the bridge connected over TCP");
    }

    #[tokio::test]
    async fn a_server_silent_over_udp_is_reached_over_tcp() {
        // UDP is bound but never answers: after the first half second the
        // bridge carries ICE's requests over TCP.
        let (udp, tcp, port) = udp_and_tcp_on_one_port().await;
        let bridge = TcpTurnBridge::start(format!("127.0.0.1:{port}")).unwrap();
        let ice = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        ice.send_to(&binding_request([1; 12]), bridge.local)
            .await
            .unwrap();
        let early = tokio::time::timeout(Duration::from_millis(300), tcp.accept()).await;
        assert!(early.is_err(), "bridged before UDP had its chance");
        tokio::time::sleep(Duration::from_millis(300)).await;
        ice.send_to(&binding_request([2; 12]), bridge.local)
            .await
            .unwrap();
        let (mut stream, _) = tokio::time::timeout(Duration::from_secs(2), tcp.accept())
            .await
            .expect("no TCP connection")
            .unwrap();
        let mut got = [0u8; 20];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got.to_vec(), binding_request([2; 12]));
        drop(udp);
    }

    #[test]
    fn messages_are_cut_from_the_stream_however_it_arrives() {
        let stun = {
            let mut m = vec![0x00, 0x01, 0x00, 0x08];
            m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            m.extend_from_slice(&[7; 12]);
            m.extend_from_slice(&[1; 8]);
            m
        };
        let channel = vec![0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5];
        let mut stream = to_stream(&channel);
        assert_eq!(stream.len(), 12, "padded to four bytes");
        stream.extend_from_slice(&stun);
        stream.extend_from_slice(&to_stream(&channel));
        let mut f = Framer::default();
        let mut got = Vec::new();
        for byte in stream.chunks(3) {
            f.push(byte);
            while let Some(m) = f.next().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![channel.clone(), stun, channel]);
        let mut bad = Framer::default();
        bad.push(&[0xff, 0, 0, 0]);
        assert!(bad.next().is_err());
    }

    #[test]
    fn only_tcp_turn_urls_are_bridged() {
        assert_eq!(
            tcp_server("turn:10.77.0.1:3478?transport=tcp"),
            Some("10.77.0.1:3478".into())
        );
        assert_eq!(
            tcp_server("turn:turn.example.org?transport=tcp"),
            Some("turn.example.org:3478".into())
        );
        assert_eq!(tcp_server("turn:10.77.0.1:3478?transport=udp"), None);
        assert_eq!(tcp_server("turn:10.77.0.1:3478"), None);
        assert_eq!(tcp_server("stun:10.77.0.1:3478?transport=tcp"), None);
    }

    #[tokio::test]
    async fn a_datagram_reaches_the_server_over_tcp_and_the_answer_comes_back() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut f = Framer::default();
            let mut buf = [0u8; 256];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                f.push(&buf[..n]);
                if let Some(m) = f.next().unwrap() {
                    // Echo it, as the stream carries it.
                    s.write_all(&to_stream(&m)).await.unwrap();
                    return;
                }
            }
        });
        let bridge = TcpTurnBridge::start(addr.to_string()).unwrap();
        // Nothing answers over UDP: the bridge opens after its first wait.
        tokio::time::sleep(FIRST_VERDICT + Duration::from_millis(100)).await;
        let ice = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let channel = [0x40, 0x01, 0x00, 0x03, 9, 8, 7];
        ice.send_to(&channel, bridge.local).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) =
            tokio::time::timeout(std::time::Duration::from_secs(5), ice.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(from, bridge.local);
        assert_eq!(&buf[..n], &channel, "unpadded again");
    }
}
