import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeFrame, type FrameMessage } from './frame';
import { unwatchVideo, watchVideo } from './api';
import { UNWATCH_DELAY_MS, subscribe, watchedTiles } from './video';

// The tile layer over the backend's frame fetching (api.ts, tested there).
vi.mock('./api', () => ({
  watchVideo: vi.fn(() => new Promise<void>(() => {})),
  unwatchVideo: vi.fn(async () => undefined),
}));

const watched = vi.mocked(watchVideo);
const unwatched = vi.mocked(unwatchVideo);
/** The frame callback the tile layer gave for `tile`. */
const feed = (tile: string): ((m: FrameMessage) => void) => {
  const c = watched.mock.calls.find(([t]) => t === tile);
  if (!c) throw new Error(`no watch for ${tile}`);
  return c[1];
};

beforeEach(() => {
  vi.useFakeTimers();
  watched.mockClear();
  unwatched.mockClear();
  window.__beckonVideo = {};
});
afterEach(() => {
  vi.runAllTimers();
  vi.useRealTimers();
});

describe('video tiles', () => {
  it('watches a tile, draws its frames and records stats', () => {
    const drawn: number[] = [];
    const stop = subscribe('bob', (f) => drawn.push(f.width));
    expect(watched).toHaveBeenCalledTimes(1);
    feed('bob')(makeFrame(4, 2, 123));
    feed('bob')(makeFrame(6, 4, 456));
    expect(drawn).toEqual([4, 6]);
    expect(window.__beckonVideo?.bob).toMatchObject({ frames: 2, width: 6, height: 4, lastCaptureUs: 456 });
    expect(window.__beckonVideo?.bob.lastDrawMs).toBeGreaterThan(0);
    stop();
  });

  it('survives a malformed frame and draws the next one', () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const drawn: number[] = [];
    const stop = subscribe('carol', (f) => drawn.push(f.width));
    feed('carol')(new ArrayBuffer(3));
    feed('carol')(makeFrame(2, 2, 1));
    expect(drawn).toEqual([2]);
    expect(err).toHaveBeenCalled();
    err.mockRestore();
    stop();
  });

  it('unwatches a moment after the last canvas goes', () => {
    const stop = subscribe('dan', () => {});
    stop();
    expect(unwatched).not.toHaveBeenCalled();
    vi.advanceTimersByTime(UNWATCH_DELAY_MS + 1);
    expect(unwatched).toHaveBeenCalledWith('dan');
    expect(watchedTiles()).not.toContain('dan');
  });

  it('keeps the stream when a new canvas takes the tile over', () => {
    const first: number[] = [];
    const second: number[] = [];
    const stopA = subscribe('self', () => first.push(1));
    stopA();
    const stopB = subscribe('self', () => second.push(1));
    vi.advanceTimersByTime(UNWATCH_DELAY_MS * 2);
    expect(watched).toHaveBeenCalledTimes(1);
    expect(unwatched).not.toHaveBeenCalled();
    feed('self')(makeFrame(2, 2, 0));
    expect(first).toEqual([]);
    expect(second).toEqual([1]);
    stopB();
    vi.advanceTimersByTime(UNWATCH_DELAY_MS + 1);
    expect(unwatched).toHaveBeenCalledWith('self');
  });
});

describe('a refused watch', () => {
  it('is tried again by the next canvas', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    watched.mockRejectedValueOnce({ code: 'no_tile', message: 'No such tile.' });
    const stop = subscribe('zed', () => {});
    await vi.waitFor(() => expect(watchedTiles()).not.toContain('zed'));
    stop();
    const again = subscribe('zed', () => {});
    expect(watched).toHaveBeenCalledTimes(2);
    expect(warn).toHaveBeenCalled();
    warn.mockRestore();
    again();
  });
});
