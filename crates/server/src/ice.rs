//! ICE server configuration, with TURN credentials in coturn's REST scheme
//! (`use-auth-secret`): user name `<expiry>:<user>`, password
//! `base64(HMAC-SHA1(secret, user name))`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use beckon_protocol::{IceServer, UserId};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// STUN/TURN settings.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    /// `stun:` URLs.
    pub stun_urls: Vec<String>,
    /// `turn:`/`turns:` URLs.
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server.
    pub turn_secret: Option<String>,
    /// How long TURN credentials stay valid, in seconds.
    pub turn_ttl_secs: u64,
}

impl IceConfig {
    /// The servers for `user` at Unix time `now_secs`.
    pub fn servers_for(&self, user: &UserId, now_secs: u64) -> Vec<IceServer> {
        let mut servers = Vec::new();
        if !self.stun_urls.is_empty() {
            servers.push(IceServer {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if let (false, Some(secret)) = (self.turn_urls.is_empty(), &self.turn_secret) {
            let username = format!("{}:{}", now_secs + self.turn_ttl_secs, user);
            servers.push(IceServer {
                urls: self.turn_urls.clone(),
                credential: Some(turn_password(secret, &username)),
                username: Some(username),
            });
        }
        servers
    }
}

fn turn_password(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_follow_the_coturn_rest_scheme() {
        let cfg = IceConfig {
            stun_urls: vec!["stun:stun.example.org:3478".into()],
            turn_urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
            turn_secret: Some("north".into()),
            turn_ttl_secs: 3600,
        };
        let servers = cfg.servers_for(&UserId::try_from("alice").unwrap(), 1_700_000_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].username, None);
        assert_eq!(servers[1].username.as_deref(), Some("1700003600:alice"));
        // Known answer: HMAC-SHA1("north", "1700003600:alice"), base64.
        let expected = {
            let mut mac = Hmac::<Sha1>::new_from_slice(b"north").unwrap();
            mac.update(b"1700003600:alice");
            STANDARD.encode(mac.finalize().into_bytes())
        };
        assert_eq!(servers[1].credential.as_deref(), Some(expected.as_str()));
        assert_eq!(expected.len(), 28, "20-byte digest in base64");
    }

    #[test]
    fn without_a_secret_no_turn_server_is_offered() {
        let cfg = IceConfig {
            turn_urls: vec!["turn:x".into()],
            ..Default::default()
        };
        assert!(
            cfg.servers_for(&UserId::try_from("bob").unwrap(), 0)
                .is_empty()
        );
    }
}
