//! A login storm: password sign-ins at an offered rate, each on its own
//! connection.

use std::time::Duration;

use beckon_client::{Client, ClientConfig, Credentials};
use beckon_protocol::{DeviceId, Password, UserId};
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::emit;
use crate::stats::{Tally, kind};

pub(crate) async fn run(
    url: &str,
    prefix: &str,
    password: &str,
    users: usize,
    rate: f64,
    secs: f64,
    max_wait: f64,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        users > 0 && rate > 0.0,
        "--users and --rate must be positive"
    );
    let password: Password = password
        .to_string()
        .try_into()
        .map_err(|e| anyhow::anyhow!("password: {e:?}"))?;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let deadline = end + Duration::from_secs_f64(max_wait);
    let mut tasks = JoinSet::new();
    let mut offered = 0u64;
    loop {
        let at = start + Duration::from_secs_f64(offered as f64 / rate);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let user: UserId = format!("{prefix}{}", offered as usize % users)
            .parse()
            .map_err(|e| anyhow::anyhow!("user id: {e:?}"))?;
        // Its own device, so that no sign-in replaces another.
        let device: DeviceId = format!("storm{offered}")
            .parse()
            .map_err(|e| anyhow::anyhow!("device id: {e:?}"))?;
        let mut config = ClientConfig::new(url, device, Credentials::login(user, password.clone()));
        config.request_timeout = deadline.saturating_duration_since(Instant::now());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let r = Client::connect(config).await;
            // The client (and its connection) is dropped right away.
            (t0.elapsed(), r.map(drop))
        });
        offered += 1;
    }
    let offered_secs = start.elapsed().as_secs_f64();
    let mut tally = Tally::default();
    let mut served_by = Duration::ZERO;
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        let Ok((took, r)) = done else { continue };
        match r {
            Ok(()) => {
                tally.latencies.push(took);
                served_by = start.elapsed();
            }
            Err(e) => tally.fail(kind(&e)),
        }
    }
    let not_served = tasks.len() as u64;
    tasks.abort_all();
    if not_served > 0 {
        tally.errors.insert("not_served".into(), not_served);
    }
    let ok = tally.latencies.len();
    emit(json!({
        "event": "logins",
        "rate": rate,
        "secs": secs,
        "offered": offered,
        "offered_secs": offered_secs,
        "ok": ok,
        // Over the time from the first offer to the last success.
        "achieved_per_sec": if served_by.is_zero() { 0.0 } else { ok as f64 / served_by.as_secs_f64() },
        "served_by_secs": served_by.as_secs_f64(),
        "failed": tally.failed(),
        "errors": tally.errors,
        "latency": tally.summary(),
    }));
    Ok(())
}
