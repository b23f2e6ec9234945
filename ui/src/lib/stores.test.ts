import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { UiEvent } from './bindings';
import { AppState, OUTCOME_SHOW_MS, OUTCOME_WAIT_MS, TOAST_MS, applyEvent, load, ringing, route } from './stores.svelte';
import { call, devices, historyItem, person, snapshot } from '../test/fixtures';

let s: AppState;

beforeEach(() => {
  vi.useFakeTimers();
  s = new AppState();
  load(snapshot(), s, 1_000);
});

afterEach(() => {
  vi.useRealTimers();
});

describe('load', () => {
  it('takes the whole snapshot', () => {
    expect(s.loaded).toBe(true);
    expect(s.me?.id).toBe('alice');
    expect(s.contacts).toHaveLength(3);
    expect(s.server?.hosted).toBe(true);
    expect(s.lastUser).toBe('alice');
    expect(route(s)).toBe('home');
  });
  it('starts a reconnect countdown from the snapshot', () => {
    const t = new AppState();
    load(snapshot({ connection: { state: 'reconnecting', reason: 'lost', retryInMs: 4000 } }), t, 10_000);
    expect(t.reconnectAtMs).toBe(14_000);
  });
});

describe('applyEvent', () => {
  it('connection: replaces connection, server and me', () => {
    applyEvent({ type: 'connection', connection: { state: 'signedOut', reason: 'Session expired.' }, server: null, me: null }, s);
    expect(s.connection).toEqual({ state: 'signedOut', reason: 'Session expired.' });
    expect(s.server).toBeNull();
    expect(s.me).toBeNull();
    expect(s.lastUser).toBe('alice');
    expect(route(s)).toBe('signIn');
  });

  it('connection: reconnecting sets when the next attempt starts', () => {
    applyEvent(
      { type: 'connection', connection: { state: 'reconnecting', reason: 'network down', retryInMs: 3000 }, server: s.server, me: s.me },
      s,
      50_000,
    );
    expect(s.reconnectAtMs).toBe(53_000);
    expect(route(s)).toBe('home');
    applyEvent({ type: 'connection', connection: { state: 'online' }, server: s.server, me: s.me }, s);
    expect(s.reconnectAtMs).toBeNull();
  });

  it('connection: signing out leaves settings', () => {
    s.page = 'settings';
    expect(route(s)).toBe('settings');
    applyEvent({ type: 'connection', connection: { state: 'signedOut', reason: null }, server: s.server, me: null }, s);
    expect(s.page).toBe('home');
  });

  it('contacts: replaces the list', () => {
    applyEvent({ type: 'contacts', contacts: [person('dan')] }, s);
    expect(s.contacts.map((c) => c.id)).toEqual(['dan']);
  });

  it('history: replaces history and missed', () => {
    applyEvent({ type: 'history', history: [historyItem('h1', { missed: true })], missed: 1 }, s);
    expect(s.history).toHaveLength(1);
    expect(s.missed).toBe(1);
  });

  it('call: sets and clears the call, and the route follows its phase', () => {
    applyEvent({ type: 'call', call: call({ phase: 'incoming' }) }, s);
    expect(route(s)).toBe('home');
    expect(ringing(s)).toBe(true);
    applyEvent({ type: 'call', call: call({ phase: 'connected' }) }, s);
    expect(route(s)).toBe('calling');
    expect(ringing(s)).toBe(false);
    applyEvent({ type: 'call', call: null }, s);
    expect(s.call).toBeNull();
    expect(route(s)).toBe('home');
  });

  it('callEnded for our invitation: the waiting page shows why for a while, then home', () => {
    applyEvent({ type: 'call', call: call({ phase: 'outgoing', id: 'c9' }) }, s);
    expect(route(s)).toBe('waiting');
    applyEvent({ type: 'callEnded', outcome: { id: 'c9', reason: 'declined', message: 'Bob declined.' } }, s);
    applyEvent({ type: 'call', call: null }, s);
    expect(route(s)).toBe('waiting');
    expect(s.lastOutcome?.message).toBe('Bob declined.');
    expect(s.endedOutgoing?.id).toBe('c9');
    vi.advanceTimersByTime(OUTCOME_SHOW_MS - 10);
    expect(route(s)).toBe('waiting');
    vi.advanceTimersByTime(20);
    expect(route(s)).toBe('home');
    expect(s.lastOutcome).toBeNull();
    expect(s.toasts).toHaveLength(0);
  });

  it('callEnded may come after the call is gone', () => {
    applyEvent({ type: 'call', call: call({ phase: 'outgoing', id: 'c9' }) }, s);
    applyEvent({ type: 'call', call: null }, s);
    expect(route(s)).toBe('waiting');
    applyEvent({ type: 'callEnded', outcome: { id: 'c9', reason: 'busy', message: 'Bob is busy.' } }, s);
    expect(s.lastOutcome?.reason).toBe('busy');
    vi.advanceTimersByTime(OUTCOME_SHOW_MS + 1);
    expect(route(s)).toBe('home');
  });

  it('without a callEnded the waiting page goes home soon', () => {
    applyEvent({ type: 'call', call: call({ phase: 'outgoing' }) }, s);
    applyEvent({ type: 'call', call: null }, s);
    expect(route(s)).toBe('waiting');
    vi.advanceTimersByTime(OUTCOME_WAIT_MS + 1);
    expect(route(s)).toBe('home');
  });

  it('a new call replaces the lingering outcome', () => {
    applyEvent({ type: 'call', call: call({ phase: 'outgoing', id: 'c1' }) }, s);
    applyEvent({ type: 'call', call: null }, s);
    applyEvent({ type: 'callEnded', outcome: { id: 'c1', reason: 'declined', message: 'Bob declined.' } }, s);
    applyEvent({ type: 'call', call: call({ phase: 'incoming', id: 'c2' }) }, s);
    expect(s.lastOutcome).toBeNull();
    expect(route(s)).toBe('home');
    expect(ringing(s)).toBe(true);
  });

  it('callEnded for another call is a toast', () => {
    applyEvent({ type: 'call', call: call({ phase: 'connected', id: 'c1' }) }, s);
    applyEvent({ type: 'callEnded', outcome: { id: 'c1', reason: 'ended', message: 'Bob ended the call.' } }, s);
    expect(s.toasts.map((t) => t.message)).toEqual(['Bob ended the call.']);
    expect(s.lastOutcome).toBeNull();
  });

  it('devices: replaces devices', () => {
    applyEvent({ type: 'devices', devices: devices({ problems: ['No camera found.'] }) }, s);
    expect(s.devices.problems).toEqual(['No camera found.']);
  });

  it('micLevel: keeps the level', () => {
    applyEvent({ type: 'micLevel', level: 0.25 }, s);
    expect(s.micLevel).toBe(0.25);
  });

  it('problem: a toast that goes away by itself or when dismissed', () => {
    applyEvent({ type: 'problem', message: 'Camera busy.' }, s);
    applyEvent({ type: 'problem', message: 'Speaker gone.' }, s);
    expect(s.toasts.map((t) => t.message)).toEqual(['Camera busy.', 'Speaker gone.']);
    s.dismissToast(s.toasts[0].id);
    expect(s.toasts.map((t) => t.message)).toEqual(['Speaker gone.']);
    vi.advanceTimersByTime(TOAST_MS + 1);
    expect(s.toasts).toHaveLength(0);
  });

  it('handles every UiEvent variant', () => {
    const all: UiEvent[] = [
      { type: 'connection', connection: { state: 'online' }, server: null, me: person('alice') },
      { type: 'contacts', contacts: [] },
      { type: 'history', history: [], missed: 0 },
      { type: 'call', call: null },
      { type: 'callEnded', outcome: { id: 'x', reason: 'failed', message: 'Failed.' } },
      { type: 'devices', devices: devices() },
      { type: 'micLevel', level: 0 },
      { type: 'problem', message: 'p' },
    ];
    for (const ev of all) expect(() => applyEvent(ev, s)).not.toThrow();
  });
});

describe('route', () => {
  it('waits for the snapshot', () => {
    expect(route(new AppState())).toBe('loading');
  });
  it('asks for a server on first run', () => {
    const t = new AppState();
    load(snapshot({ connection: { state: 'noServer' }, server: null, me: null }), t);
    expect(route(t)).toBe('serverChoice');
  });
  it('signs in while connecting without a user', () => {
    const t = new AppState();
    load(snapshot({ connection: { state: 'connecting' }, me: null }), t);
    expect(route(t)).toBe('signIn');
    t.choosingServer = true;
    expect(route(t)).toBe('serverChoice');
  });
  it('shows the waiting page for an outgoing call', () => {
    s.call = call({ phase: 'outgoing' });
    expect(route(s)).toBe('waiting');
  });
});
