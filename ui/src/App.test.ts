import { beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import App from './App.svelte';
import type { Snapshot, UiEvent } from './lib/bindings';
import { app, OUTCOME_SHOW_MS } from './lib/stores.svelte';
import { call, member, person, snapshot } from './test/fixtures';
import { resetApp } from './test/app';

vi.mock('@tauri-apps/api/core', () => ({ invoke: vi.fn(), Channel: class {} }));
vi.mock('@tauri-apps/api/event', () => ({ listen: vi.fn() }));

const mockedInvoke = vi.mocked(invoke);
const mockedListen = vi.mocked(listen);
let emit: (ev: UiEvent) => void = () => {};

async function start(snap: Snapshot) {
  mockedInvoke.mockImplementation(async (cmd) => (cmd === 'snapshot' ? snap : cmd === 'send' ? { type: 'done' } : undefined));
  mockedListen.mockImplementation(async (name, handler) => {
    expect(name).toBe('beckon://event');
    emit = (ev) => (handler as (e: { payload: UiEvent }) => void)({ payload: ev });
    return () => {};
  });
  app.loaded = false;
  render(App);
  await vi.waitFor(() => expect(app.loaded).toBe(true));
}

beforeEach(() => {
  resetApp();
  mockedInvoke.mockReset();
  mockedListen.mockReset();
});

describe('app routing', () => {
  it('asks for a server on first run', async () => {
    await start(snapshot({ connection: { state: 'noServer' }, server: null, me: null }));
    expect(await screen.findByTestId('host-button')).toBeInTheDocument();
  });

  it('signs in when signed out', async () => {
    await start(snapshot({ connection: { state: 'signedOut', reason: null }, me: null }));
    expect(await screen.findByTestId('signin-button')).toBeInTheDocument();
  });

  it('shows home when online, then follows events', async () => {
    await start(snapshot());
    expect(await screen.findByTestId('home')).toBeInTheDocument();

    emit({ type: 'call', call: call({ phase: 'incoming', inviter: person('bob'), members: [member('bob')] }) });
    expect(await screen.findByTestId('incoming-dialog')).toBeInTheDocument();
    expect(screen.getByTestId('home')).toBeInTheDocument();

    emit({ type: 'call', call: call({ phase: 'connected', inviter: person('bob'), members: [member('bob')] }) });
    expect(await screen.findByTestId('calling-page')).toBeInTheDocument();
    expect(screen.queryByTestId('incoming-dialog')).toBeNull();

    emit({ type: 'call', call: null });
    emit({ type: 'callEnded', outcome: { id: 'c1', reason: 'ended', message: 'Bob left.' } });
    expect(await screen.findByTestId('home')).toBeInTheDocument();
    expect(screen.getByTestId('toast')).toHaveTextContent('Bob left.');
  });

  it('shows the outcome on the waiting page, then goes home', async () => {
    await start(snapshot({ call: call({ phase: 'outgoing', inviter: person('alice'), members: [member('bob', { status: 'ringing' })] }) }));
    expect(await screen.findByTestId('waiting-page')).toBeInTheDocument();
    vi.useFakeTimers();
    try {
      emit({ type: 'callEnded', outcome: { id: 'c1', reason: 'declined', message: 'Bob declined.' } });
      emit({ type: 'call', call: null });
      await vi.advanceTimersByTimeAsync(10);
      expect(screen.getByTestId('call-outcome')).toHaveTextContent('Bob declined.');
      await vi.advanceTimersByTimeAsync(OUTCOME_SHOW_MS);
      expect(screen.queryByTestId('waiting-page')).toBeNull();
      expect(screen.getByTestId('home')).toBeInTheDocument();
    } finally {
      vi.useRealTimers();
    }
  });

  it('shows a banner while reconnecting and toasts problems', async () => {
    await start(snapshot());
    emit({
      type: 'connection',
      connection: { state: 'reconnecting', reason: 'server unreachable', retryInMs: 5000 },
      server: app.server,
      me: app.me,
    });
    const banner = await screen.findByTestId('connection-banner');
    expect(banner).toHaveAttribute('role', 'status');
    expect(banner).toHaveTextContent(/Connection lost — reconnecting in [45]s…/);
    emit({ type: 'problem', message: 'Camera disconnected.' });
    expect(await screen.findByTestId('toast')).toHaveTextContent('Camera disconnected.');
    emit({ type: 'connection', connection: { state: 'online' }, server: app.server, me: app.me });
    await vi.waitFor(() => expect(screen.queryByTestId('connection-banner')).toBeNull());
  });

  it('applies events that arrive before the snapshot after it', async () => {
    mockedListen.mockImplementation(async (_n, handler) => {
      emit = (ev) => (handler as (e: { payload: UiEvent }) => void)({ payload: ev });
      return () => {};
    });
    let release: (s: Snapshot) => void = () => {};
    mockedInvoke.mockImplementation((cmd) =>
      cmd === 'snapshot' ? new Promise((r) => (release = r as (s: Snapshot) => void)) : Promise.resolve({ type: 'done' }),
    );
    app.loaded = false;
    render(App);
    await vi.waitFor(() => expect(mockedInvoke).toHaveBeenCalledWith('snapshot'));
    emit({ type: 'contacts', contacts: [person('zoe')] });
    release(snapshot());
    await vi.waitFor(() => expect(app.loaded).toBe(true));
    expect(app.contacts.map((c) => c.id)).toEqual(['zoe']);
  });
});
