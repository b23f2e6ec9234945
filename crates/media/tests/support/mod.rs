//! Members of a call in one process, their signaling routed in memory, with
//! synthetic cameras and tone microphones, and sinks that read the stamps
//! and tones back.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beckon_media::call::{CallConfig, CallMedia, MediaEvent, PeerStats};
use beckon_media::frame::{VideoFrame, now_us};
use beckon_media::pipeline::VideoSink;
use beckon_media::sink::mixer::RecordingOutput;
use beckon_media::source::synthetic::{SyntheticCamera, ToneMicrophone, read_stamp, tone_for};
use beckon_protocol::{CallKind, UserId};

/// What one member saw of each other member's camera.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub frames: u64,
    pub last_frame: Option<u32>,
    pub width: u32,
    pub rising: bool,
    pub latencies_us: Vec<u64>,
}

#[derive(Default)]
pub struct Screen {
    pub seen: Mutex<HashMap<UserId, Seen>>,
}

impl VideoSink for Screen {
    fn frame(&self, from: &UserId, frame: VideoFrame) {
        let mut seen = self.seen.lock().unwrap();
        let s = seen.entry(from.clone()).or_insert_with(|| Seen {
            rising: true,
            ..Seen::default()
        });
        s.frames += 1;
        s.width = frame.width;
        if let Some(stamp) = read_stamp(&frame) {
            if s.last_frame.is_some_and(|l| stamp.frame <= l) {
                s.rising = false;
            }
            s.last_frame = Some(stamp.frame);
            s.latencies_us.push(stamp.age_us(now_us()));
        }
    }
}

pub struct Member {
    pub name: UserId,
    pub call: Arc<CallMedia>,
    pub screen: Arc<Screen>,
    pub speaker: RecordingOutput,
    pub events: Arc<Mutex<Vec<MediaEvent>>>,
}

impl Member {
    pub fn seen(&self, who: &str) -> Seen {
        self.screen
            .seen
            .lock()
            .unwrap()
            .get(&uid(who))
            .cloned()
            .unwrap_or_default()
    }

    pub async fn stats_of(&self, who: &str) -> PeerStats {
        self.call
            .stats()
            .await
            .into_iter()
            .find(|s| s.user == uid(who))
            .expect("a connection to them")
    }
}

pub fn uid(s: &str) -> UserId {
    s.parse().unwrap()
}

/// Starts `names` in one call; each later member offers to those before.
pub async fn mesh(names: &[&str], kind: CallKind, size: (u32, u32)) -> Vec<Member> {
    mesh_with(names, kind, size, false).await
}

/// As `mesh`; with `glare`, both sides of every pair offer at once.
pub async fn mesh_with(
    names: &[&str],
    kind: CallKind,
    size: (u32, u32),
    glare: bool,
) -> Vec<Member> {
    // Each mesh routes its own signaling: tests run side by side.
    let routes = Arc::new(Routes::default());
    let members: Vec<Member> = names
        .iter()
        .map(|n| start(n, kind, size, &routes))
        .collect();
    for (i, later) in members.iter().enumerate() {
        for earlier in &members[..i] {
            earlier
                .call
                .add_member(later.name.clone(), glare)
                .await
                .unwrap();
            later
                .call
                .add_member(earlier.name.clone(), true)
                .await
                .unwrap();
        }
    }
    members
}

/// One member, its signaling routed to the others through `routes`.
fn start(name: &str, kind: CallKind, (w, h): (u32, u32), routes: &Arc<Routes>) -> Member {
    let me = uid(name);
    let mut config = CallConfig::new(me.clone(), kind);
    config.udp_addrs = vec!["127.0.0.1:0".into()];
    let screen = Arc::new(Screen::default());
    let speaker = RecordingOutput::default();
    let camera: Option<Box<dyn beckon_media::source::VideoSource>> =
        Some(Box::new(SyntheticCamera::new(w, h, 30)));
    let (call, mut rx) = CallMedia::start(
        config,
        camera,
        Box::new(ToneMicrophone::new(tone_for(name), 0.3)),
        screen.clone(),
        Box::new(speaker.clone()),
        None,
    )
    .unwrap();
    let call = Arc::new(call);
    routes
        .lock()
        .unwrap()
        .insert(me.clone(), Arc::downgrade(&call));
    let routes = routes.clone();
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    let from = me.clone();
    let alive = Alive::new();
    tokio::spawn(async move {
        let _alive = alive;
        while let Some(event) = rx.recv().await {
            if let MediaEvent::Signal { to, signal } = &event {
                let target = routes.lock().unwrap().get(to).and_then(|w| w.upgrade());
                if let Some(target) = target {
                    let _ = target.on_signal(&from, signal.clone()).await;
                }
            }
            log.lock().unwrap().push(event);
        }
    });
    Member {
        name: me,
        call,
        screen,
        speaker,
        events,
    }
}

/// Members started whose event stream is still open: it ends only when the
/// call is closed and dropped and nothing it started holds on to it.
pub fn calls_alive() -> usize {
    ALIVE.load(Ordering::SeqCst)
}

static ALIVE: AtomicUsize = AtomicUsize::new(0);

struct Alive;

impl Alive {
    fn new() -> Self {
        ALIVE.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

type Routes = Mutex<HashMap<UserId, std::sync::Weak<CallMedia>>>;

/// One media test at a time: a call of four encodes and decodes a dozen
/// streams, and two cores have no room for several such at once.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Polls `check` until it holds, for at most `secs`.
pub async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn close_all(members: Vec<Member>) {
    for m in members {
        m.call.close().await;
    }
}
