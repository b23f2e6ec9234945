//! Fifty calls set up and torn down in one process: threads, file
//! descriptors (UDP sockets), tokio tasks and memory return to where they
//! started.
//!
//! Reads /proc/self, so it runs on Linux only.
#![cfg(target_os = "linux")]

mod support;

use std::time::{Duration, Instant};

use beckon_protocol::CallKind;
use support::{calls_alive, close_all, eventually, mesh};

const CALLS: usize = 50;
/// Calls before measuring. The first brings runtime threads, codec tables
/// and the like into being; the first few spread allocations over the
/// allocator's per-thread arenas (each call starts ten threads), which then
/// keep some freed memory. That levels off after a handful of calls.
const WARM_UP: usize = 5;
/// Frames each side decodes of the other before hanging up: the whole path
/// (capture, encode, RTP, SRTP, assemble, decode) ran.
const FRAMES: u64 = 5;
/// How long an idle blocking-pool thread lives. Closing a call joins its
/// media threads on that pool; tokio's default of ten seconds would only
/// make the count take longer to settle.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Memory may settle a little above where it stood after warming up: freed
/// memory stays in the allocator's arenas, more or less fragmented. A call
/// that kept even 200 kB (one member's state and recorded audio is more)
/// would exceed this over fifty.
const RSS_SLACK_KB: i64 = 10 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Usage {
    threads: usize,
    fds: usize,
    rss_kb: i64,
    /// Tokio tasks alive (the test's own `block_on` is not one).
    tasks: usize,
    /// Members whose call's event stream is still open.
    calls: usize,
}

fn usage() -> Usage {
    let count = |dir| std::fs::read_dir(dir).unwrap().count();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    Usage {
        threads: count("/proc/self/task"),
        // Less the one `read_dir` itself holds open.
        fds: count("/proc/self/fd") - 1,
        rss_kb,
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        calls: calls_alive(),
    }
}

/// Names of our threads and targets of our fds, to tell what leaked.
fn inventory() -> String {
    let mut threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect();
    threads.sort();
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    fds.sort();
    format!("threads {threads:?}\nfds {fds:?}")
}

/// One call of two, run until each decoded `FRAMES` of the other's camera,
/// then hung up.
async fn one_call(i: usize) {
    let m = mesh(&["alice", "bob"], CallKind::Video, (160, 120)).await;
    eventually(
        20,
        &format!("call {i}: both decode {FRAMES} frames"),
        || m[0].seen("bob").frames >= FRAMES && m[1].seen("alice").frames >= FRAMES,
    )
    .await;
    close_all(m).await;
}

/// Waits, up to `secs`, until threads, tasks and calls are down to `base`'s:
/// idle blocking-pool threads end after `KEEP_ALIVE`, and tasks of the last
/// call finish a moment after it closed.
async fn settle(base: &Usage, secs: u64) -> Usage {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = usage();
        let settled =
            now.threads <= base.threads && now.tasks <= base.tasks && now.calls <= base.calls;
        if settled || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn fifty_calls_leave_threads_fds_and_memory_where_they_started() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(KEEP_ALIVE)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let _turn = support::exclusive().await;
        let started = Instant::now();
        // Measure once the warm-up's blocking-pool threads went idle and
        // ended.
        for i in 0..WARM_UP {
            one_call(i).await;
            if i == 0 {
                println!("after one call: {:?}", usage());
            }
        }
        tokio::time::sleep(KEEP_ALIVE * 2).await;
        let before = usage();
        let inventory_before = inventory();
        println!("after {WARM_UP} calls to warm up: {before:?}");
        for i in 1..=CALLS {
            one_call(WARM_UP + i).await;
            if i % 10 == 0 {
                println!("after {i} more: {:?} ({:.1?})", usage(), started.elapsed());
            }
        }
        // Sockets close and memory is freed with the call; this only waits
        // for the pool's threads and the last call's tasks.
        let after = settle(&before, 10).await;
        let grew = after.rss_kb - before.rss_kb;
        println!(
            "after {CALLS} more and settling: {after:?}; RSS {grew:+} kB; {:.1?} in all",
            started.elapsed()
        );
        let leaks = format!("before:\n{inventory_before}\nafter:\n{}", inventory());
        assert_eq!(after.threads, before.threads, "threads leaked\n{leaks}");
        assert_eq!(after.fds, before.fds, "file descriptors leaked\n{leaks}");
        assert_eq!(after.tasks, before.tasks, "tokio tasks leaked");
        assert_eq!(after.calls, 0, "calls still alive after closing");
        assert!(
            grew <= RSS_SLACK_KB,
            "memory grew by {grew} kB over {CALLS} calls (allowed {RSS_SLACK_KB} kB)"
        );
    });
}
