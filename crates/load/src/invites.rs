//! Pairs of users calling each other at an offered rate.

use std::time::Duration;

use beckon_client::Notice;
use beckon_client::{Client, ClientEvent};
use beckon_protocol::{CallKind, Event, ServerMessage, UserId};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use crate::emit;
use crate::stats::{Schedule, Tally, kind, percentiles};
use crate::users::Conn;

/// How long any one step of a call may take before it counts as failed.
const STEP: Duration = Duration::from_secs(10);

struct Pair {
    caller: Client,
    caller_events: mpsc::Receiver<ClientEvent>,
    callee_id: UserId,
    callee: Client,
    callee_events: mpsc::Receiver<ClientEvent>,
}

/// One pair's results in a window.
#[derive(Default)]
struct PairResult {
    incoming: Tally,
    full: Vec<Duration>,
    offered: u64,
    invite_bytes: Option<usize>,
}

pub(crate) async fn run(conns: Vec<Option<Conn>>) -> anyhow::Result<()> {
    let mut conns = conns.into_iter();
    let mut pairs = Vec::new();
    while let (Some(a), Some(b)) = (conns.next(), conns.next()) {
        if let (Some((_, caller, caller_events)), Some((callee_id, callee, callee_events))) = (a, b)
        {
            pairs.push(Pair {
                caller,
                caller_events,
                callee_id,
                callee,
                callee_events,
            });
        }
    }
    anyhow::ensure!(!pairs.is_empty(), "no pair of users could connect");
    let mut invite_bytes = None;
    crate::windows(async |rate, secs| {
        let n = pairs.len();
        // A moment to spawn every pair before the first slot.
        let start = Instant::now() + Duration::from_millis(200);
        let tasks: Vec<_> = pairs
            .drain(..)
            .enumerate()
            .map(|(i, pair)| {
                let schedule = Schedule::new(start, i, n, rate, secs);
                tokio::spawn(run_pair(pair, schedule))
            })
            .collect();
        let mut total = PairResult::default();
        for t in tasks {
            if let Ok((pair, r)) = t.await {
                pairs.push(pair);
                total.incoming.merge(r.incoming);
                total.full.extend(r.full);
                total.offered += r.offered;
                total.invite_bytes = total.invite_bytes.or(r.invite_bytes);
            }
        }
        invite_bytes = invite_bytes.or(total.invite_bytes);
        let done = total.incoming.latencies.len();
        emit(json!({
            "event": "invites",
            "rate": rate,
            "secs": secs,
            "pairs": n,
            "offered": total.offered,
            "completed": done,
            "achieved_per_sec": done as f64 / secs,
            "failed": total.incoming.failed(),
            "errors": total.incoming.errors,
            "incoming": total.incoming.summary(),
            "full_call": percentiles(&mut total.full),
            "invite_bytes": invite_bytes,
        }));
    })
    .await;
    Ok(())
}

async fn run_pair(mut pair: Pair, schedule: Schedule) -> (Pair, PairResult) {
    let mut r = PairResult {
        offered: schedule.offered(),
        ..PairResult::default()
    };
    let mut slot = schedule.first;
    while slot < schedule.end {
        tokio::time::sleep_until(slot).await;
        slot += schedule.period;
        match one_call(&mut pair, &mut r).await {
            Ok(()) => {}
            Err(kind) => {
                r.incoming.fail(kind);
                // Leave whatever call is left over before the next slot.
                settle(&mut pair).await;
            }
        }
        // Catch up without a burst: a late pair skips the slots it missed.
        let now = Instant::now();
        while slot + schedule.period < now {
            slot += schedule.period;
        }
    }
    (pair, r)
}

/// Invite, wait for the callee's incoming-call notice, accept, end, and wait
/// for the callee to hear the call ended.
async fn one_call(pair: &mut Pair, r: &mut PairResult) -> Result<(), String> {
    while pair.caller_events.try_recv().is_ok() {}
    let callee_events = &mut pair.callee_events;
    let t0 = Instant::now();
    let invite = pair
        .caller
        .invite(vec![pair.callee_id.clone()], CallKind::Voice, None);
    let incoming = async {
        loop {
            match callee_events.recv().await {
                Some(ClientEvent::Notice(Notice::IncomingReceived { call, by })) => {
                    return Ok((Instant::now(), call, by));
                }
                Some(_) => {}
                None => return Err("callee stopped".to_string()),
            }
        }
    };
    let (invitation, incoming) = tokio::join!(invite, timeout(STEP, incoming));
    let invitation = invitation.map_err(|e| format!("invite: {}", kind(&e)))?;
    let (at, call, by) = incoming.map_err(|_| "no incoming notice".to_string())??;
    if call.call_id != invitation.call.call_id {
        return Err("incoming notice for another call".into());
    }
    r.incoming.latencies.push(at - t0);
    if r.invite_bytes.is_none() {
        // What the callee's connection carried for this notice.
        let msg = ServerMessage::Event {
            event: Event::CallInvited {
                call: call.clone(),
                by,
                remaining_ms: u64::from(call.timeout_secs) * 1000,
            },
        };
        r.invite_bytes = serde_json::to_string(&msg).ok().map(|s| s.len());
    }
    let call_id = call.call_id;
    pair.callee
        .accept(call_id.clone())
        .await
        .map_err(|e| format!("accept: {}", kind(&e)))?;
    pair.caller
        .end(call_id.clone())
        .await
        .map_err(|e| format!("end: {}", kind(&e)))?;
    let ended = async {
        loop {
            match callee_events.recv().await {
                Some(ClientEvent::Notice(Notice::CallEnded { call_id: c, .. })) if c == call_id => {
                    return;
                }
                Some(_) => {}
                None => return,
            }
        }
    };
    timeout(STEP, ended)
        .await
        .map_err(|_| "no call-ended notice".to_string())?;
    r.full.push(t0.elapsed());
    Ok(())
}

/// After a failed call: end whatever call either side is still in.
async fn settle(pair: &mut Pair) {
    for c in [&pair.caller, &pair.callee] {
        if let Some(call) = c.current_call() {
            let id = call.info.call_id;
            if c.end(id.clone()).await.is_err() && c.cancel(id.clone(), None).await.is_err() {
                let _ = c.reject(id, beckon_protocol::RejectReason::Declined).await;
            }
        }
    }
    while pair.caller_events.try_recv().is_ok() {}
    while pair.callee_events.try_recv().is_ok() {}
}
