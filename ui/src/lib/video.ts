// One backend watch per video tile, shared by whichever canvas shows that
// tile now. Unwatching waits a moment so that a canvas replaced by another
// for the same tile (waiting page → calling page) keeps the stream.
import { unwatchVideo, watchVideo } from './api';
import { parseFrame, type FrameMessage, type I420Frame } from './frame';

export type FrameSink = (frame: I420Frame) => void;

/** What tests and benchmarks read: frames drawn per tile. */
export interface TileStats {
  frames: number;
  width: number;
  height: number;
  /** Date.now() when the last frame was drawn. */
  lastDrawMs: number;
  /** Capture time of the last frame drawn (µs, from its header). */
  lastCaptureUs: number;
}

declare global {
  interface Window {
    __beckonVideo?: Record<string, TileStats>;
  }
}

interface Watch {
  sinks: FrameSink[];
  stopTimer: ReturnType<typeof setTimeout> | null;
}

/** How long a tile's stream outlives its last canvas. */
export const UNWATCH_DELAY_MS = 300;

const watches = new Map<string, Watch>();
let badFrames = 0;

function stats(): Record<string, TileStats> {
  if (typeof window === 'undefined') return {};
  window.__beckonVideo ??= {};
  return window.__beckonVideo;
}

function deliver(tile: string, msg: FrameMessage): void {
  const watch = watches.get(tile);
  try {
    const sink = watch?.sinks[watch.sinks.length - 1];
    if (sink) {
      const frame = parseFrame(msg);
      sink(frame);
      const s = (stats()[tile] ??= { frames: 0, width: 0, height: 0, lastDrawMs: 0, lastCaptureUs: 0 });
      s.frames += 1;
      s.width = frame.width;
      s.height = frame.height;
      s.lastDrawMs = Date.now();
      s.lastCaptureUs = frame.captureUs;
    }
  } catch (err) {
    if (badFrames++ < 5) console.error(`Beckon video: frame for ${tile} not drawn:`, err);
  }
}

/** Shows `tile`'s frames through `sink` until the returned function is
 *  called. The newest subscriber of a tile gets its frames. */
export function subscribe(tile: string, sink: FrameSink): () => void {
  let watch = watches.get(tile);
  if (!watch) {
    const fresh: Watch = { sinks: [], stopTimer: null };
    watch = fresh;
    watches.set(tile, fresh);
    watchVideo(tile, (msg) => deliver(tile, msg)).catch((err) => {
      console.warn(`Beckon video: could not watch ${tile}:`, err);
      // Forget it, so that the next canvas for this tile tries again.
      if (watches.get(tile) === fresh) watches.delete(tile);
    });
  }
  if (watch.stopTimer !== null) {
    clearTimeout(watch.stopTimer);
    watch.stopTimer = null;
  }
  watch.sinks.push(sink);
  const w = watch;
  return () => {
    const i = w.sinks.lastIndexOf(sink);
    if (i >= 0) w.sinks.splice(i, 1);
    if (w.sinks.length > 0 || w.stopTimer !== null) return;
    w.stopTimer = setTimeout(() => {
      if (watches.get(tile) !== w || w.sinks.length > 0) return;
      watches.delete(tile);
      unwatchVideo(tile).catch(() => {});
    }, UNWATCH_DELAY_MS);
  };
}

/** Tiles being watched now (tests). */
export function watchedTiles(): string[] {
  return [...watches.keys()];
}
