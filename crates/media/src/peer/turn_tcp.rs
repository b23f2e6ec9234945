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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

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

/// A running bridge to one TCP TURN server; stops when dropped.
#[derive(Debug)]
pub(crate) struct TcpTurnBridge {
    /// Where ICE sends its TURN traffic.
    pub(crate) local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpTurnBridge {
    fn drop(&mut self) {
        self.task.abort();
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
        let task = tokio::spawn(serve(socket, server));
        Ok(Self { local, task })
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
/// connection; what the server sends back returns to the same socket.
async fn serve(socket: Arc<UdpSocket>, server: String) {
    let mut streams: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let datagram = buf[..n].to_vec();
        let alive = streams.get(&from).is_some_and(|tx| !tx.is_closed());
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
