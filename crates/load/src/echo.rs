//! The floor: a bare WebSocket echo server and a client timing round trips
//! through it, at the rates, sizes and connection counts of the invite test.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::emit;
use crate::stats::{Schedule, Tally};

/// The signaling server's buffers: 4 KiB read, no write buffering.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

pub(crate) async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("echo-server listening on ws://{}/", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, most likely: let some close.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) =
                tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
            else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn connect(url: &str, addr: SocketAddr) -> anyhow::Result<Ws> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config())).await?;
    Ok(ws)
}

pub(crate) async fn run(
    url: &str,
    conns: usize,
    bytes: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let rss_before = crate::rss_kib();
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut first_error = None;
    let mut all: Vec<Ws> = Vec::with_capacity(conns);
    let mut done = futures_util::stream::iter(0..conns)
        .map(|_| connect(url, addr))
        .buffer_unordered(concurrency.max(1));
    while let Some(r) = done.next().await {
        match r {
            Ok(ws) => all.push(ws),
            Err(e) => {
                tally.fail("connect");
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    drop(done);
    emit(json!({
        "event": "connected",
        "ok": all.len(),
        "failed": tally.failed(),
        "first_error": first_error,
        "secs": started.elapsed().as_secs_f64(),
        "rss_before_kib": rss_before,
        "rss_kib": crate::rss_kib(),
    }));
    // One connection of each pair sends; the other is held, as a callee is.
    let (mut senders, mut others): (Vec<Ws>, Vec<Ws>) = (Vec::new(), Vec::new());
    for (i, ws) in all.into_iter().enumerate() {
        if i % 2 == 0 {
            senders.push(ws);
        } else {
            others.push(ws);
        }
    }
    anyhow::ensure!(!senders.is_empty(), "no connection to the echo server");
    let payload = "x".repeat(bytes);
    crate::windows(async |rate, secs| {
        let n = senders.len();
        let start = Instant::now() + Duration::from_millis(200);
        let tasks: Vec<_> = senders
            .drain(..)
            .enumerate()
            .map(|(i, ws)| {
                let schedule = Schedule::new(start, i, n, rate, secs);
                tokio::spawn(run_sender(ws, schedule, payload.clone()))
            })
            .collect();
        let mut total = Tally::default();
        let mut offered = 0;
        for t in tasks {
            if let Ok((ws, tally, o)) = t.await {
                senders.push(ws);
                total.merge(tally);
                offered += o;
            }
        }
        let done = total.latencies.len();
        emit(json!({
            "event": "echo",
            "rate": rate,
            "secs": secs,
            "pairs": n,
            "bytes": bytes,
            "offered": offered,
            "completed": done,
            "achieved_per_sec": done as f64 / secs,
            "failed": total.failed(),
            "errors": total.errors,
            "round_trip": total.summary(),
        }));
    })
    .await;
    drop(others);
    Ok(())
}

async fn run_sender(mut ws: Ws, schedule: Schedule, payload: String) -> (Ws, Tally, u64) {
    let mut tally = Tally::default();
    let mut slot = schedule.first;
    while slot < schedule.end {
        tokio::time::sleep_until(slot).await;
        slot += schedule.period;
        let t0 = Instant::now();
        if ws.send(Message::text(payload.clone())).await.is_err() {
            tally.fail("send");
            continue;
        }
        let echoed = timeout(Duration::from_secs(10), async {
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() {
                    return true;
                }
            }
            false
        })
        .await;
        match echoed {
            Ok(true) => tally.latencies.push(t0.elapsed()),
            Ok(false) => tally.fail("closed"),
            Err(_) => tally.fail("timeout"),
        }
        let now = Instant::now();
        while slot + schedule.period < now {
            slot += schedule.period;
        }
    }
    let offered = schedule.offered();
    (ws, tally, offered)
}
