import { describe, expect, it, vi } from 'vitest';
import { invoke } from '@tauri-apps/api/core';
import { attempt, search, send, toUiError, unwatchVideo, watchVideo } from './api';
import { makeFrame } from './frame';
import { person } from '../test/fixtures';

vi.mock('@tauri-apps/api/core', () => ({ invoke: vi.fn(), Channel: class {} }));
vi.mock('@tauri-apps/api/event', () => ({ listen: vi.fn(async () => () => {}) }));

const mocked = vi.mocked(invoke);

describe('api', () => {
  it('sends commands as { cmd }', async () => {
    mocked.mockResolvedValueOnce({ type: 'done' });
    await expect(send({ type: 'setMic', on: false })).resolves.toEqual({ type: 'done' });
    expect(mocked).toHaveBeenLastCalledWith('send', { cmd: { type: 'setMic', on: false } });
  });

  it('rejects with a UiError', async () => {
    mocked.mockRejectedValueOnce({ code: 'unauthorized', message: 'Wrong password.' });
    await expect(send({ type: 'signIn', user: 'a', password: 'b' })).rejects.toEqual({
      code: 'unauthorized',
      message: 'Wrong password.',
    });
  });

  it('attempt gives the message or null', async () => {
    mocked.mockRejectedValueOnce({ code: 'busy', message: 'You are in a call.' });
    expect(await attempt({ type: 'cancel' })).toBe('You are in a call.');
    mocked.mockResolvedValueOnce({ type: 'done' });
    expect(await attempt({ type: 'cancel' })).toBeNull();
  });

  it('search returns the users of the reply', async () => {
    mocked.mockResolvedValueOnce({ type: 'users', users: [person('bob')] });
    expect((await search('bo')).map((p) => p.id)).toEqual(['bob']);
    expect(mocked).toHaveBeenLastCalledWith('send', { cmd: { type: 'search', query: 'bo' } });
  });

  it('makes a UiError of anything', () => {
    expect(toUiError('boom')).toEqual({ code: 'unexpected', message: 'boom' });
    expect(toUiError(new Error('bad'))).toEqual({ code: 'unexpected', message: 'bad' });
    expect(toUiError(undefined).message).toMatch(/wrong/);
  });

  it('fetches frames one at a time, each after the last one drawn, until unwatched', async () => {
    const numbered = (n: number) => {
      const buf = makeFrame(2, 2, n);
      new DataView(buf).setUint32(16, n, true);
      return buf;
    };
    const asked: unknown[] = [];
    let n = 0;
    mocked.mockImplementation(async (cmd, args) => {
      asked.push(args);
      if (cmd !== 'next_frame') return undefined;
      n += 1;
      // The second answer is empty: nothing new came within the wait.
      return n === 2 ? new ArrayBuffer(0) : numbered(n * 10);
    });
    const drawn: number[] = [];
    const done = watchVideo('bob', (m) => {
      drawn.push(new DataView(m as ArrayBuffer).getUint32(16, true));
      if (drawn.length === 2) void unwatchVideo('bob');
    });
    await done;
    expect(drawn).toEqual([10, 30]);
    expect(asked).toEqual([
      { tile: 'bob', after: 0 },
      { tile: 'bob', after: 10 },
      { tile: 'bob', after: 10 },
    ]);
    mocked.mockReset();
  });
});
