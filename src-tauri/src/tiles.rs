//! Video to the UI, latest frame wins. The window asks for a tile's next
//! frame (`next_frame`) once it has drawn the last one; the answer is the
//! newest frame it has not seen, raw I420 behind a 24-byte header. Frames
//! that arrive while the window is drawing replace each other, so a slow
//! tile drops frames and never queues them, and each frame costs the window
//! one request (measured against a pushed channel: docs/benchmarks.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beckon_media::frame::VideoFrame;
use beckon_media::pipeline::VideoSink;
use beckon_protocol::UserId;
use tokio::sync::watch;

use crate::view::FRAME_HEADER;

/// The tile of our own camera.
pub const SELF_TILE: &str = "self";

/// Counters of one tile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TileCounters {
    /// Frames that arrived for it.
    pub arrived: u64,
    /// Frames handed to the window.
    pub sent: u64,
    /// Frames replaced by a newer one before the window asked.
    pub dropped: u64,
}

#[derive(Debug, Clone, Default)]
struct Latest {
    /// Numbers every frame the tile ever had; never goes back.
    seq: u64,
    frame: Option<VideoFrame>,
}

#[derive(Debug)]
struct Slot {
    latest: watch::Sender<Latest>,
    counters: Mutex<(TileCounters, u64)>,
}

/// Every tile, by name (a member's user id, or [`SELF_TILE`]).
#[derive(Debug, Default)]
pub struct Tiles {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Tiles {
    fn slot(&self, tile: &str) -> Arc<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tile.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    latest: watch::Sender::new(Latest::default()),
                    counters: Mutex::new((TileCounters::default(), 0)),
                })
            })
            .clone()
    }

    /// A new frame for `tile`.
    pub fn offer(&self, tile: &str, frame: VideoFrame) {
        let slot = self.slot(tile);
        let mut replaced = false;
        let mut seq = 0;
        slot.latest.send_modify(|l| {
            replaced = l.frame.is_some();
            l.seq += 1;
            seq = l.seq;
            l.frame = Some(frame);
        });
        let mut c = slot.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.0.arrived += 1;
        // The one before was never fetched.
        if replaced && c.1 < seq - 1 {
            c.0.dropped += 1;
        }
    }

    /// The newest frame of `tile` after frame number `after`, encoded for
    /// the window, waiting up to `wait` for one; `None` when none came.
    pub async fn next(&self, tile: &str, after: u64, wait: Duration) -> Option<Vec<u8>> {
        let slot = self.slot(tile);
        let mut rx = slot.latest.subscribe();
        let found = tokio::time::timeout(wait, rx.wait_for(|l| l.seq > after && l.frame.is_some()))
            .await
            .ok()?
            .ok()?;
        let (seq, frame) = (found.seq, found.frame.clone()?);
        drop(found);
        let mut c = slot.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.0.sent += 1;
        c.1 = c.1.max(seq);
        Some(encode(&frame, seq))
    }

    /// Forgets `tile`'s frame (the member left, the camera stopped).
    pub fn clear(&self, tile: &str) {
        let slot = self.slot(tile);
        slot.latest.send_modify(|l| l.frame = None);
        slot.counters.lock().unwrap_or_else(|p| p.into_inner()).0 = TileCounters::default();
    }

    /// The counters of `tile`.
    pub fn counters(&self, tile: &str) -> TileCounters {
        self.slot(tile)
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
    }
}

/// A frame as the UI reads it: width, height (u32), capture time in µs
/// (u64), frame number (u64), little endian, then the I420 planes.
pub fn encode(frame: &VideoFrame, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + frame.data.len());
    out.extend_from_slice(&frame.width.to_le_bytes());
    out.extend_from_slice(&frame.height.to_le_bytes());
    out.extend_from_slice(&frame.timestamp_us.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&frame.data);
    out
}

/// The media engine's sink: decoded frames go to their member's tile, our
/// own preview to [`SELF_TILE`].
#[derive(Debug, Clone)]
pub struct TileSink {
    /// The tiles.
    pub tiles: Arc<Tiles>,
    /// Our own id (the preview arrives under it).
    pub me: UserId,
}

impl VideoSink for TileSink {
    fn frame(&self, from: &UserId, frame: VideoFrame) {
        if from == &self.me {
            // In a call the self view is a small tile: a quarter of the
            // pixels is plenty, and the window's work per frame shrinks
            // with them.
            let small = if frame.width > SELF_VIEW_MAX_WIDTH {
                halve(&frame)
            } else {
                frame
            };
            self.tiles.offer(SELF_TILE, small);
        } else {
            self.tiles.offer(from.as_str(), frame);
        }
    }
}

/// Widest self view sent to the window during a call.
const SELF_VIEW_MAX_WIDTH: u32 = 400;

/// Half the width and height, each pixel the mean of four.
pub fn halve(frame: &VideoFrame) -> VideoFrame {
    let (w, h) = (frame.width as usize, frame.height as usize);
    // Even output size, so the chroma planes stay exact halves.
    let (ow, oh) = ((w / 2) & !1, (h / 2) & !1);
    let mut out = Vec::with_capacity(VideoFrame::i420_len(ow as u32, oh as u32));
    let mut plane = |src: &[u8], sw: usize, dw: usize, dh: usize| {
        for y in 0..dh {
            let (r0, r1) = (&src[2 * y * sw..], &src[(2 * y + 1) * sw..]);
            out.extend((0..dw).map(|x| {
                let sum = u16::from(r0[2 * x])
                    + u16::from(r0[2 * x + 1])
                    + u16::from(r1[2 * x])
                    + u16::from(r1[2 * x + 1]);
                ((sum + 2) / 4) as u8
            }));
        }
    };
    plane(frame.y(), w, ow, oh);
    plane(frame.u(), w / 2, ow / 2, oh / 2);
    plane(frame.v(), w / 2, ow / 2, oh / 2);
    VideoFrame::new(ow as u32, oh as u32, out, frame.timestamp_us).expect("sizes add up")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> VideoFrame {
        let mut data = vec![n as u8; 4 * 4];
        data.resize(VideoFrame::i420_len(4, 4), 128);
        VideoFrame::new(4, 4, data, n).expect("size")
    }

    fn stamp(bytes: &[u8]) -> u64 {
        u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"))
    }

    fn seq(bytes: &[u8]) -> u64 {
        u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"))
    }

    const WAIT: Duration = Duration::from_millis(50);

    #[test]
    fn a_frame_is_encoded_with_its_size_time_and_number() {
        let bytes = encode(&frame(9), 3);
        assert_eq!(bytes.len(), FRAME_HEADER + VideoFrame::i420_len(4, 4));
        assert_eq!(&bytes[0..4], &4u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &4u32.to_le_bytes());
        assert_eq!((stamp(&bytes), seq(&bytes)), (9, 3));
        assert_eq!(bytes[FRAME_HEADER], 9);
    }

    #[tokio::test]
    async fn a_slow_tile_gets_the_latest_frame_not_a_queue() {
        let tiles = Tiles::default();
        tiles.offer("bob", frame(1));
        let first = tiles.next("bob", 0, WAIT).await.expect("a frame");
        assert_eq!(stamp(&first), 1);
        // Drawing takes a while: three frames arrive meanwhile.
        for n in 2..=5 {
            tiles.offer("bob", frame(n));
        }
        let next = tiles.next("bob", seq(&first), WAIT).await.expect("a frame");
        assert_eq!(stamp(&next), 5);
        let c = tiles.counters("bob");
        assert_eq!((c.arrived, c.sent, c.dropped), (5, 2, 3));
        // Nothing newer: the request waits, then comes back empty.
        assert!(tiles.next("bob", seq(&next), WAIT).await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_next_frame_as_it_arrives() {
        let tiles = Arc::new(Tiles::default());
        let t = tiles.clone();
        let waiting = tokio::spawn(async move { t.next("self", 0, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tiles.offer("self", frame(7));
        let got = waiting.await.expect("task").expect("a frame");
        assert_eq!(stamp(&got), 7);
    }

    #[test]
    fn halving_averages_each_square_of_four() {
        let (w, h) = (8usize, 4usize);
        let mut data: Vec<u8> = (0..w * h).map(|i| (i % w) as u8 * 10).collect();
        data.extend(std::iter::repeat_n(100u8, w * h / 4));
        data.extend(std::iter::repeat_n(200u8, w * h / 4));
        let f = VideoFrame::new(w as u32, h as u32, data, 5).expect("size");
        let half = halve(&f);
        assert_eq!((half.width, half.height, half.timestamp_us), (4, 2, 5));
        // Columns 0 and 1 (values 0, 10) average to 5.
        assert_eq!(&half.y()[..4], &[5, 25, 45, 65]);
        assert_eq!((half.u()[0], half.v()[0]), (100, 200));
    }

    #[test]
    fn the_self_view_in_a_call_is_sent_at_half_size() {
        let tiles = Arc::new(Tiles::default());
        let sink = TileSink {
            tiles: tiles.clone(),
            me: "alice".parse().expect("id"),
        };
        let mut data = vec![0u8; 640 * 480];
        data.resize(VideoFrame::i420_len(640, 480), 128);
        let big = VideoFrame::new(640, 480, data, 1).expect("size");
        sink.frame(&"alice".parse().expect("id"), big.clone());
        sink.frame(&"bob".parse().expect("id"), big);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let me = rt.block_on(tiles.next(SELF_TILE, 0, WAIT)).expect("self");
        let bob = rt.block_on(tiles.next("bob", 0, WAIT)).expect("bob");
        assert_eq!(&me[0..8], &[64, 1, 0, 0, 240, 0, 0, 0]);
        assert_eq!(&bob[0..4], &640u32.to_le_bytes());
    }

    #[tokio::test]
    async fn a_cleared_tile_has_nothing_to_show() {
        let tiles = Tiles::default();
        tiles.offer("carol", frame(1));
        tiles.clear("carol");
        assert!(tiles.next("carol", 0, WAIT).await.is_none());
        tiles.offer("carol", frame(2));
        let got = tiles.next("carol", 0, WAIT).await.expect("a frame");
        assert_eq!((stamp(&got), seq(&got)), (2, 2));
    }
}
