//! A client that speaks the protocol as raw JSON text over a WebSocket:
//! for tests of exactly what a real server sends, and in which order.

use beckon_protocol::{ErrorCode, Reply, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{TestServer, WAIT};

/// A client that writes raw text frames and reads typed server messages.
pub struct Raw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub next_id: u64,
}

impl Raw {
    pub async fn connect(server: &TestServer) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(server.url())
            .await
            .expect("connects");
        Self { ws, next_id: 100 }
    }

    /// Connects and registers `user` (protocol version 1).
    pub async fn register(server: &TestServer, user: &str) -> Self {
        let mut raw = Self::connect(server).await;
        let reply = raw
            .ok(json!({"type": "register", "version": 1, "user": user,
                "password": "correct horse", "display_name": user, "device": "laptop"}))
            .await;
        assert!(matches!(reply, Reply::Session(_)), "{reply:?}");
        raw
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("sends");
    }

    /// The next message from the server. Panics when the connection ends or
    /// nothing comes in time.
    pub async fn next(&mut self) -> ServerMessage {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the server answers in time")
                .expect("the connection is open")
                .expect("the connection is healthy");
            match msg {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("not a server message ({e}): {text}"));
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The next reply or error, skipping events.
    pub async fn answer(&mut self) -> ServerMessage {
        loop {
            let msg = self.next().await;
            if !matches!(msg, ServerMessage::Event { .. }) {
                return msg;
            }
        }
    }

    /// Sends `request` (a JSON object without `id`) with a fresh id, which
    /// it returns.
    pub async fn send(&mut self, mut request: Value) -> u64 {
        self.next_id += 1;
        request["id"] = json!(self.next_id);
        self.send_text(request.to_string()).await;
        self.next_id
    }

    /// Sends `request` with a fresh id and returns it with the answer.
    pub async fn request(&mut self, request: Value) -> (u64, ServerMessage) {
        let id = self.send(request).await;
        (id, self.answer().await)
    }

    /// Sends `request` and expects a reply to it.
    pub async fn ok(&mut self, request: Value) -> Reply {
        let what = request.to_string();
        match self.request(request).await {
            (id, ServerMessage::Reply { id: got, reply }) if got == id => reply,
            (id, other) => panic!("{what}: expected the reply to {id}, got {other:?}"),
        }
    }

    /// Sends `request` and expects error `code` carrying the request's id.
    /// Returns the error's message.
    pub async fn refused(&mut self, request: Value, code: ErrorCode) -> String {
        let what = request.to_string();
        let (id, answer) = self.request(request).await;
        expect_error(answer, Some(id), code, &what)
    }

    /// Sends raw `text` and expects error `code` with `id`.
    pub async fn refused_raw(&mut self, text: &str, id: Option<u64>, code: ErrorCode) -> String {
        self.send_text(text).await;
        let answer = self.answer().await;
        expect_error(answer, id, code, text)
    }

    /// The connection still works: a ping gets its pong.
    pub async fn assert_alive(&mut self) {
        assert_eq!(self.ok(json!({"type": "ping"})).await, Reply::Pong);
    }

    /// Reads until the connection ends.
    pub async fn until_closed(&mut self) -> (Vec<ServerMessage>, Option<u16>) {
        until_closed(&mut self.ws).await
    }
}

/// Reads until the connection ends. Returns the messages that came and the
/// close code, if a close frame came with one.
pub async fn until_closed(
    ws: &mut (impl StreamExt<Item = Result<Message, WsError>> + Unpin),
) -> (Vec<ServerMessage>, Option<u16>) {
    let (mut messages, mut code) = (Vec::new(), None);
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server closes the connection in time");
        match msg {
            Some(Ok(Message::Text(text))) => {
                messages.push(serde_json::from_str(text.as_str()).expect("a server message"));
            }
            Some(Ok(Message::Close(frame))) => code = frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (messages, code),
        }
    }
}

pub fn expect_error(answer: ServerMessage, id: Option<u64>, code: ErrorCode, what: &str) -> String {
    match answer {
        ServerMessage::Error { id: got, error } => {
            assert_eq!((got, error.code), (id, code), "{what}: {}", error.message);
            error.message
        }
        other => panic!("{what}: expected error {code}, got {other:?}"),
    }
}
