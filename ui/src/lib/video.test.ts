import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { invoke } from '@tauri-apps/api/core';
import { makeFrame } from './frame';
import { UNWATCH_DELAY_MS, subscribe, watchedTiles } from './video';

vi.mock('@tauri-apps/api/core', () => {
  class Channel {
    static last: Channel | null = null;
    onmessage: (m: unknown) => void = () => {};
    constructor() {
      Channel.last = this;
    }
  }
  return { invoke: vi.fn(async () => undefined), Channel };
});

type Sent = { onmessage: (m: unknown) => void };
const mocked = vi.mocked(invoke);
const channelOf = (tile: string): Sent => {
  const c = mocked.mock.calls.find(([cmd, args]) => cmd === 'watch_video' && (args as { tile: string }).tile === tile);
  if (!c) throw new Error(`no watch_video for ${tile}`);
  return (c[1] as { channel: Sent }).channel;
};
const callsOf = (cmd: string) => mocked.mock.calls.filter(([c]) => c === cmd).map(([, a]) => a);

beforeEach(() => {
  vi.useFakeTimers();
  mocked.mockClear();
  window.__beckonVideo = {};
});
afterEach(() => {
  vi.runAllTimers();
  vi.useRealTimers();
});

describe('video tiles', () => {
  it('watches a tile, draws its frames, asks for the next one and records stats', () => {
    const drawn: number[] = [];
    const stop = subscribe('bob', (f) => drawn.push(f.width));
    expect(callsOf('watch_video')).toHaveLength(1);
    channelOf('bob').onmessage(makeFrame(4, 2, 123));
    channelOf('bob').onmessage(makeFrame(6, 4, 456));
    expect(drawn).toEqual([4, 6]);
    expect(callsOf('frame_done')).toEqual([{ tile: 'bob' }, { tile: 'bob' }]);
    expect(window.__beckonVideo?.bob).toMatchObject({ frames: 2, width: 6, height: 4, lastCaptureUs: 456 });
    expect(window.__beckonVideo?.bob.lastDrawMs).toBeGreaterThan(0);
    stop();
  });

  it('still asks for the next frame when one is malformed', () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const stop = subscribe('carol', () => {});
    channelOf('carol').onmessage(new ArrayBuffer(3));
    expect(callsOf('frame_done')).toEqual([{ tile: 'carol' }]);
    expect(err).toHaveBeenCalled();
    err.mockRestore();
    stop();
  });

  it('unwatches a moment after the last canvas goes', () => {
    const stop = subscribe('dan', () => {});
    stop();
    expect(callsOf('unwatch_video')).toHaveLength(0);
    vi.advanceTimersByTime(UNWATCH_DELAY_MS + 1);
    expect(callsOf('unwatch_video')).toEqual([{ tile: 'dan' }]);
    expect(watchedTiles()).not.toContain('dan');
  });

  it('keeps the stream when a new canvas takes the tile over', () => {
    const first: number[] = [];
    const second: number[] = [];
    const stopA = subscribe('self', () => first.push(1));
    stopA();
    const stopB = subscribe('self', () => second.push(1));
    vi.advanceTimersByTime(UNWATCH_DELAY_MS * 2);
    expect(callsOf('watch_video')).toHaveLength(1);
    expect(callsOf('unwatch_video')).toHaveLength(0);
    channelOf('self').onmessage(makeFrame(2, 2, 0));
    expect(first).toEqual([]);
    expect(second).toEqual([1]);
    stopB();
    vi.advanceTimersByTime(UNWATCH_DELAY_MS + 1);
    expect(callsOf('unwatch_video')).toEqual([{ tile: 'self' }]);
  });
});

describe('a refused watch', () => {
  it('is tried again by the next canvas', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    mocked.mockRejectedValueOnce({ code: 'no_tile', message: 'No such tile.' });
    const stop = subscribe('zed', () => {});
    await vi.waitFor(() => expect(watchedTiles()).not.toContain('zed'));
    stop();
    const again = subscribe('zed', () => {});
    expect(callsOf('watch_video')).toHaveLength(2);
    expect(warn).toHaveBeenCalled();
    warn.mockRestore();
    again();
  });
});
