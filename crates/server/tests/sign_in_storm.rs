//! A login storm: password hashes run one per core, a bounded number wait,
//! and the rest are refused at once with `rate_limited`.

use beckon_server::{PasswordCost, Server, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Sends one `login` on a fresh connection and returns the error code
/// (`"session"` on success).
async fn login(url: &str, user: &str) -> String {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let msg = format!(
        r#"{{"id":1,"type":"login","version":1,"user":"{user}","password":"not the password","device":"d"}}"#
    );
    ws.send(Message::Text(msg.into())).await.unwrap();
    loop {
        let text = ws.next().await.unwrap().unwrap().into_text().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        match v["type"].as_str() {
            Some("error") => return v["code"].as_str().unwrap().to_string(),
            Some("reply") => return v["reply"]["type"].as_str().unwrap().to_string(),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_beyond_the_queue_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("beckon.db"),
        // Slow enough that the storm arrives while the first hashes run.
        password_cost: PasswordCost {
            memory_kib: 64 * 1024,
            iterations: 3,
        },
        max_waiting_sign_ins: 0,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let url = server.url();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let storm: Vec<_> = (0..cores * 2 + 4)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { login(&url, &format!("nobody{i}")).await })
        })
        .collect();
    let mut codes = Vec::new();
    for t in storm {
        codes.push(t.await.unwrap());
    }
    let refused = codes.iter().filter(|c| *c == "rate_limited").count();
    let checked = codes.iter().filter(|c| *c == "unauthorized").count();
    assert!(refused > 0, "nothing refused: {codes:?}");
    assert!(checked >= 1, "nothing was hashed: {codes:?}");
    assert_eq!(refused + checked, codes.len(), "{codes:?}");
    // Once the storm is over, sign-ins are served again.
    assert_eq!(login(&url, "nobody").await, "unauthorized");
    server.shutdown().await;
}
