//! A real server on loopback, clients that sign in to it, and a TCP proxy
//! whose connections a test can cut.

#![allow(dead_code, unreachable_pub)]

pub mod raw;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beckon_client::Notice;
use beckon_client::{Client, ClientConfig, ClientEvent, Credentials};
use beckon_server::{PasswordCost, Server, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub server: Server,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path().join("beckon.db"));
        tweak(&mut config);
        let server = Server::start(config).await.expect("server starts");
        Self { server, dir }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Registers `user` on device `d1` and returns a signed-in client.
    pub async fn user(&self, user: &str) -> Peer {
        Peer::register(&self.url(), user, "d1").await
    }
}

pub fn test_config(database: std::path::PathBuf) -> ServerConfig {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database,
        password_cost: PasswordCost {
            memory_kib: 64,
            iterations: 1,
        },
        ..ServerConfig::default()
    };
    config.registry.disconnect_grace = Duration::from_secs(3);
    config.registry.not_received_after = Duration::from_secs(1);
    config
}

/// A signed-in client and its event stream.
pub struct Peer {
    pub client: Client,
    pub events: mpsc::Receiver<ClientEvent>,
    pub name: String,
}

impl Peer {
    pub async fn register(url: &str, user: &str, device: &str) -> Self {
        let credentials = Credentials::Register {
            user: user.parse().unwrap(),
            password: "correct horse".parse().unwrap(),
            display_name: format!("{} Tester", user).parse().unwrap(),
        };
        Self::connect(url, device, credentials, user).await
    }

    pub async fn login(url: &str, user: &str, device: &str) -> Self {
        let credentials =
            Credentials::login(user.parse().unwrap(), "correct horse".parse().unwrap());
        Self::connect(url, device, credentials, user).await
    }

    pub async fn connect(url: &str, device: &str, credentials: Credentials, user: &str) -> Self {
        let mut config = ClientConfig::new(url, device.parse().unwrap(), credentials);
        config.min_backoff = Duration::from_millis(50);
        config.max_backoff = Duration::from_millis(500);
        let (client, events) = Client::connect(config).await.expect("signs in");
        Self {
            client,
            events,
            name: user.to_string(),
        }
    }

    /// Waits for the first event `pick` accepts, skipping others.
    pub async fn expect<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: timed out waiting for {what}", self.name))
                .unwrap_or_else(|| {
                    panic!("{}: client stopped while waiting for {what}", self.name)
                });
            if let Some(t) = pick(&event) {
                return t;
            }
        }
    }

    /// Waits for a call notice `pick` accepts.
    pub async fn notice<T>(&mut self, what: &str, mut pick: impl FnMut(&Notice) -> Option<T>) -> T {
        self.expect(what, |e| match e {
            ClientEvent::Notice(n) => pick(n),
            _ => None,
        })
        .await
    }

    /// Asserts that no event `pick` accepts arrives within `window`.
    pub async fn quiet(
        &mut self,
        window: Duration,
        what: &str,
        mut bad: impl FnMut(&ClientEvent) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            assert!(!bad(&event), "{}: unexpected {what}: {event:?}", self.name);
        }
    }
}

/// Forwards TCP to `target`; `cut` drops every connection so far (the
/// network failing), new ones still go through.
pub struct Proxy {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    blocked: Arc<std::sync::atomic::AtomicBool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let list = conns.clone();
        let blocked: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let refuse = blocked.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refuse.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Self {
            addr,
            conns,
            blocked,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// While blocked, new connections are dropped at once (the network is
    /// down).
    pub fn block(&self, blocked: bool) {
        self.blocked
            .store(blocked, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn cut(&self) {
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
