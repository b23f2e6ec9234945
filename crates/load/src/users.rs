//! Accounts and idle connections.

use std::io::Write as _;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use beckon_client::{Client, ClientConfig, ClientEvent, Credentials};
use beckon_protocol::{DeviceId, SessionToken, UserId};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::stats::{Tally, kind};
use crate::{emit, rss_kib};

/// Every load client signs in as this device.
pub(crate) fn device() -> DeviceId {
    "load".parse().expect("a valid device id")
}

/// A client config with a long request timeout: under load the server's
/// answers may take a while, and that is what we measure.
pub(crate) fn config(url: &str, credentials: Credentials) -> ClientConfig {
    let mut c = ClientConfig::new(url, device(), credentials);
    c.request_timeout = Duration::from_secs(30);
    c
}

pub(crate) async fn register(
    url: &str,
    range: Range<usize>,
    prefix: &str,
    password: &str,
    concurrency: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let password: beckon_protocol::Password = password
        .to_string()
        .try_into()
        .map_err(|e| anyhow::anyhow!("password: {e:?}"))?;
    let mut done = futures_util::stream::iter(range.clone())
        .map(|i| {
            let password = password.clone();
            async move {
                let user: UserId = format!("{prefix}{i}")
                    .parse()
                    .map_err(|e| format!("user id: {e:?}"))?;
                let credentials = Credentials::Register {
                    user: user.clone(),
                    password,
                    display_name: format!("Load {i}").parse().map_err(|e| format!("{e:?}"))?,
                };
                let (client, _events) = Client::connect(config(url, credentials))
                    .await
                    .map_err(|e| e.to_string())?;
                let session = client.session().ok_or("no session after sign-up")?;
                // Dropping the last handle closes the connection.
                Ok::<_, String>((i, user, session.token))
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut rows: Vec<(usize, UserId, SessionToken)> = Vec::with_capacity(range.len());
    let mut tally = Tally::default();
    let mut first_error = None;
    while let Some(r) = done.next().await {
        match r {
            Ok(row) => rows.push(row),
            Err(e) => {
                tally.fail("register");
                first_error.get_or_insert(e);
            }
        }
    }
    rows.sort_by_key(|r| r.0);
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
    );
    for (_, user, token) in &rows {
        writeln!(file, "{user}\t{}", token.expose())?;
    }
    file.flush()?;
    emit(json!({
        "event": "registered",
        "ok": rows.len(),
        "failed": tally.failed(),
        "first_error": first_error,
        "secs": started.elapsed().as_secs_f64(),
    }));
    Ok(())
}

/// Lines [range) of a token file.
pub(crate) fn read_tokens(
    path: &Path,
    range: Range<usize>,
) -> anyhow::Result<Vec<(UserId, SessionToken)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows: Vec<_> = text
        .lines()
        .skip(range.start)
        .take(range.len())
        .map(|l| {
            let (user, token) = l.split_once('\t').context("a line without a tab")?;
            let user: UserId = user
                .parse()
                .map_err(|e| anyhow::anyhow!("user id: {e:?}"))?;
            let token = SessionToken::try_from(token.to_string())
                .map_err(|e| anyhow::anyhow!("token: {e:?}"))?;
            Ok((user, token))
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(
        rows.len() == range.len(),
        "{} has {} of the {} users asked for",
        path.display(),
        rows.len(),
        range.len()
    );
    Ok(rows)
}

/// A signed-in user and its events.
pub(crate) type Conn = (UserId, Client, mpsc::Receiver<ClientEvent>);

/// Connects every user with its token, `concurrency` at a time, and
/// reports how it went. The result keeps the users' order; failed ones are
/// `None`.
pub(crate) async fn connect_all(
    url: &str,
    users: Vec<(UserId, SessionToken)>,
    concurrency: usize,
) -> Vec<Option<Conn>> {
    let rss_before = rss_kib();
    let started = Instant::now();
    let n = users.len();
    let mut done = futures_util::stream::iter(users.into_iter().enumerate())
        .map(|(i, (user, token))| async move {
            let r = Client::connect(config(url, Credentials::Token(token))).await;
            (i, r.map(|(client, events)| (user, client, events)))
        })
        .buffer_unordered(concurrency.max(1));
    let mut conns: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    let mut tally = Tally::default();
    let mut first_error = None;
    while let Some((i, r)) = done.next().await {
        match r {
            Ok(c) => conns[i] = Some(c),
            Err(e) => {
                tally.fail(kind(&e));
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let ok = conns.iter().filter(|c| c.is_some()).count();
    emit(json!({
        "event": "connected",
        "ok": ok,
        "failed": tally.failed(),
        "errors": tally.errors,
        "first_error": first_error,
        "secs": started.elapsed().as_secs_f64(),
        "rss_before_kib": rss_before,
        "rss_kib": rss_kib(),
    }));
    conns
}

pub(crate) async fn idle(conns: Vec<Option<Conn>>) -> anyhow::Result<()> {
    crate::until_stdin_closes().await;
    drop(conns);
    Ok(())
}
