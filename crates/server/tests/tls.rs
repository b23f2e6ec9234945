//! `wss://`: the server speaks TLS when given a certificate and key.

use std::sync::Arc;

use beckon_server::{PasswordCost, Server, ServerConfig, TlsFiles};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn serves_wss_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("beckon.db"),
        tls: Some(TlsFiles {
            cert: cert_pem,
            key: key_pem,
        }),
        password_cost: PasswordCost {
            memory_kib: 64,
            iterations: 1,
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    assert!(server.url().starts_with("wss://"));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let url = format!("wss://localhost:{}/ws", server.local_addr().port());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        &url,
        None,
        false,
        Some(Connector::Rustls(Arc::new(tls))),
    )
    .await
    .expect("TLS handshake with the configured certificate");
    ws.send(Message::Text(r#"{"id":1,"type":"ping"}"#.into()))
        .await
        .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(
        reply.into_text().unwrap().as_str(),
        r#"{"type":"reply","id":1,"reply":{"type":"pong"}}"#
    );

    // A plain ws:// client gets nowhere.
    let plain = format!("ws://127.0.0.1:{}/ws", server.local_addr().port());
    assert!(tokio_tungstenite::connect_async(&plain).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_certificate_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("beckon.db"),
        tls: Some(TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("nope.key"),
        }),
        ..ServerConfig::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().starts_with("TLS:"), "{err}");
}
