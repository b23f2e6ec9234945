//! Video to the UI: one channel per tile, raw I420 behind a 16-byte header,
//! latest frame wins. A tile has at most one frame in flight; frames that
//! arrive before the UI says it drew the last one replace each other, so a
//! slow tile drops frames and never queues them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use beckon_media::frame::VideoFrame;
use beckon_media::pipeline::VideoSink;
use beckon_protocol::UserId;

use crate::view::FRAME_HEADER;

/// The tile of our own camera.
pub const SELF_TILE: &str = "self";

/// Where a tile's frames go (a Tauri channel in the app).
pub trait FrameChannel: Send + Sync {
    /// Sends one encoded frame; `false` when the other end is gone.
    fn send(&self, bytes: Vec<u8>) -> bool;
}

/// Counters of one tile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TileCounters {
    /// Frames that arrived for it.
    pub arrived: u64,
    /// Frames sent to the UI.
    pub sent: u64,
    /// Frames replaced by a newer one before they could be sent.
    pub dropped: u64,
}

#[derive(Default)]
struct Tile {
    channel: Option<Arc<dyn FrameChannel>>,
    pending: Option<VideoFrame>,
    in_flight: bool,
    counters: TileCounters,
}

/// Every tile, by name (a member's user id, or [`SELF_TILE`]).
#[derive(Default)]
pub struct Tiles {
    tiles: Mutex<HashMap<String, Tile>>,
}

impl std::fmt::Debug for Tiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiles").finish_non_exhaustive()
    }
}

impl Tiles {
    /// Sends `tile`'s frames to `channel` from now on (replacing an earlier
    /// one); the latest frame, if any, goes at once.
    pub fn watch(&self, tile: &str, channel: Arc<dyn FrameChannel>) {
        let mut tiles = self.lock();
        let t = tiles.entry(tile.to_owned()).or_default();
        t.channel = Some(channel);
        t.in_flight = false;
        Self::pump(t);
    }

    /// Stops sending `tile`'s frames.
    pub fn unwatch(&self, tile: &str) {
        if let Some(t) = self.lock().get_mut(tile) {
            t.channel = None;
            t.in_flight = false;
        }
    }

    /// The UI drew the last frame of `tile`: the next may go.
    pub fn done(&self, tile: &str) {
        if let Some(t) = self.lock().get_mut(tile) {
            t.in_flight = false;
            Self::pump(t);
        }
    }

    /// A new frame for `tile`.
    pub fn offer(&self, tile: &str, frame: VideoFrame) {
        let mut tiles = self.lock();
        let t = tiles.entry(tile.to_owned()).or_default();
        t.counters.arrived += 1;
        if t.pending.replace(frame).is_some() {
            t.counters.dropped += 1;
        }
        Self::pump(t);
    }

    /// Forgets `tile`'s frames (the member left, the camera stopped); its
    /// channel stays for when they come back.
    pub fn clear(&self, tile: &str) {
        if let Some(t) = self.lock().get_mut(tile) {
            t.pending = None;
            t.counters = TileCounters::default();
        }
    }

    /// The counters of `tile`.
    pub fn counters(&self, tile: &str) -> TileCounters {
        self.lock()
            .get(tile)
            .map(|t| t.counters)
            .unwrap_or_default()
    }

    fn pump(t: &mut Tile) {
        if t.in_flight || t.channel.is_none() {
            return;
        }
        let (Some(channel), Some(frame)) = (&t.channel, t.pending.take()) else {
            return;
        };
        if channel.send(encode(&frame)) {
            t.in_flight = true;
            t.counters.sent += 1;
        } else {
            t.channel = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tile>> {
        self.tiles.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A frame as the UI reads it: width, height (u32), capture time in µs
/// (u64), little endian, then the I420 planes.
pub fn encode(frame: &VideoFrame) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + frame.data.len());
    out.extend_from_slice(&frame.width.to_le_bytes());
    out.extend_from_slice(&frame.height.to_le_bytes());
    out.extend_from_slice(&frame.timestamp_us.to_le_bytes());
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
        let tile = if from == &self.me {
            SELF_TILE
        } else {
            from.as_str()
        };
        self.tiles.offer(tile, frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        frames: Mutex<Vec<Vec<u8>>>,
        gone: bool,
    }

    impl FrameChannel for Recorder {
        fn send(&self, bytes: Vec<u8>) -> bool {
            self.frames.lock().expect("lock").push(bytes);
            !self.gone
        }
    }

    fn frame(n: u64) -> VideoFrame {
        let mut data = vec![n as u8; 4 * 4];
        data.resize(VideoFrame::i420_len(4, 4), 128);
        VideoFrame::new(4, 4, data, n).expect("size")
    }

    fn stamp(bytes: &[u8]) -> u64 {
        u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"))
    }

    #[test]
    fn a_frame_is_encoded_with_its_size_and_time() {
        let bytes = encode(&frame(9));
        assert_eq!(bytes.len(), FRAME_HEADER + VideoFrame::i420_len(4, 4));
        assert_eq!(&bytes[0..4], &4u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &4u32.to_le_bytes());
        assert_eq!(stamp(&bytes), 9);
        assert_eq!(bytes[FRAME_HEADER], 9);
    }

    #[test]
    fn a_slow_tile_gets_the_latest_frame_not_a_queue() {
        let tiles = Tiles::default();
        let ui = Arc::new(Recorder::default());
        tiles.watch("bob", ui.clone());
        for n in 1..=5 {
            tiles.offer("bob", frame(n));
        }
        // Frame 1 went at once; 2–4 were replaced while it was drawn.
        tiles.done("bob");
        let sent: Vec<u64> = ui
            .frames
            .lock()
            .expect("lock")
            .iter()
            .map(|b| stamp(b))
            .collect();
        assert_eq!(sent, vec![1, 5]);
        let c = tiles.counters("bob");
        assert_eq!((c.arrived, c.sent, c.dropped), (5, 2, 3));
        // Nothing is waiting: `done` sends nothing more.
        tiles.done("bob");
        assert_eq!(ui.frames.lock().expect("lock").len(), 2);
    }

    #[test]
    fn a_tile_watched_late_gets_the_last_frame_at_once() {
        let tiles = Tiles::default();
        tiles.offer("self", frame(3));
        let ui = Arc::new(Recorder::default());
        tiles.watch("self", ui.clone());
        assert_eq!(stamp(&ui.frames.lock().expect("lock")[0]), 3);
    }

    #[test]
    fn unwatched_and_closed_tiles_receive_nothing() {
        let tiles = Tiles::default();
        let ui = Arc::new(Recorder::default());
        tiles.watch("bob", ui.clone());
        tiles.unwatch("bob");
        tiles.offer("bob", frame(1));
        assert!(ui.frames.lock().expect("lock").is_empty());
        let closed = Arc::new(Recorder {
            gone: true,
            ..Recorder::default()
        });
        tiles.watch("carol", closed.clone());
        tiles.offer("carol", frame(1));
        tiles.done("carol");
        tiles.offer("carol", frame(2));
        assert_eq!(closed.frames.lock().expect("lock").len(), 1);
    }
}
