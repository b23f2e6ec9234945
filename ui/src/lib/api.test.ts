import { describe, expect, it, vi } from 'vitest';
import { invoke } from '@tauri-apps/api/core';
import { attempt, search, send, toUiError } from './api';
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
    mocked.mockRejectedValueOnce({ code: 'wrong_password', message: 'Wrong password.' });
    await expect(send({ type: 'signIn', user: 'a', password: 'b' })).rejects.toEqual({
      code: 'wrong_password',
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
    expect(toUiError('boom')).toEqual({ code: 'error', message: 'boom' });
    expect(toUiError(new Error('bad'))).toEqual({ code: 'error', message: 'bad' });
    expect(toUiError(undefined).message).toMatch(/wrong/);
  });
});
