import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, within } from '@testing-library/svelte';
import { invoke } from '@tauri-apps/api/core';
import Home from './Home.svelte';
import { app } from '../lib/stores.svelte';
import { call, historyItem, person, snapshot } from '../test/fixtures';
import { resetApp, sentCommands } from '../test/app';

vi.mock('@tauri-apps/api/core', () => ({ invoke: vi.fn(async () => ({ type: 'done' })), Channel: class {} }));
const mocked = vi.mocked(invoke);

beforeEach(() => {
  mocked.mockReset();
  mocked.mockImplementation(async () => ({ type: 'done' }));
  resetApp(
    snapshot({
      history: [
        historyItem('h1', { startedAtMs: 1_000, outgoing: true }),
        historyItem('h2', { startedAtMs: 5_000, outgoing: false, missed: true, outcome: 'missed', with: [person('carol')] }),
      ],
      missed: 1,
    }),
  );
});

describe('home', () => {
  it('shows me, the server address for others and the tools', () => {
    render(Home);
    expect(screen.getByTestId('me')).toHaveTextContent('Alice');
    expect(screen.getByTestId('server-address')).toHaveTextContent('ws://192.168.1.5:7450/ws');
    expect(screen.getByTestId('settings-button')).toHaveAccessibleName('Settings');
    expect(screen.getByTestId('signout-button')).toHaveAccessibleName('Sign out');
  });

  it('lists contacts with presence in words, the echo test first', () => {
    render(Home);
    const rows = screen.getAllByTestId(/^contact-/);
    expect(rows.map((r) => r.dataset.testid)).toEqual(['contact-echo', 'contact-bob', 'contact-carol']);
    expect(rows[0]).toHaveTextContent('Echo test — check your camera and microphone');
    expect(screen.getByTestId('contact-bob')).toHaveAttribute('data-online', 'true');
    expect(within(screen.getByTestId('contact-bob')).getByText('Online')).toBeInTheDocument();
    expect(screen.getByTestId('contact-carol')).toHaveAttribute('data-online', 'false');
    expect(within(screen.getByTestId('contact-carol')).getByText('Offline')).toBeInTheDocument();
  });

  it('calls a contact by video or voice', async () => {
    render(Home);
    expect(screen.getByTestId('call-video-bob')).toHaveAccessibleName('Video call Bob');
    await fireEvent.click(screen.getByTestId('call-video-bob'));
    await fireEvent.click(screen.getByTestId('call-voice-carol'));
    expect(sentCommands(mocked.mock.calls)).toEqual([
      { type: 'call', users: ['bob'], video: true },
      { type: 'call', users: ['carol'], video: false },
    ]);
  });

  it('offers a group call once two are picked', async () => {
    render(Home);
    expect(screen.queryByTestId('group-call')).toBeNull();
    await fireEvent.click(screen.getByTestId('select-bob'));
    expect(screen.queryByTestId('group-call')).toBeNull();
    await fireEvent.click(screen.getByTestId('select-carol'));
    expect(screen.getByTestId('group-call')).toHaveTextContent('Group call (2)');
    await fireEvent.click(screen.getByTestId('group-call'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'call', users: ['bob', 'carol'], video: true }]);
  });

  it('does not offer calls while in one', () => {
    app.call = call({ phase: 'incoming' });
    render(Home);
    expect(screen.getByTestId('call-video-bob')).toBeDisabled();
  });

  it('shows a call error by the contact', async () => {
    mocked.mockRejectedValueOnce({ code: 'offline', message: 'Carol is offline.' });
    render(Home);
    await fireEvent.click(screen.getByTestId('call-video-carol'));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Carol is offline.');
    expect(screen.getByTestId('contact-carol')).toContainElement(alert);
  });

  it('searches and adds people', async () => {
    vi.useFakeTimers();
    mocked.mockImplementation(async (_c, args) => {
      const cmd = (args as { cmd: { type: string } }).cmd;
      return cmd.type === 'search' ? { type: 'users', users: [person('dan'), person('bob'), person('alice')] } : { type: 'done' };
    });
    render(Home);
    await fireEvent.input(screen.getByTestId('search-input'), { target: { value: 'd' } });
    await vi.advanceTimersByTimeAsync(350);
    vi.useRealTimers();
    expect(await screen.findByTestId('search-result-dan')).toBeInTheDocument();
    expect(screen.queryByTestId('search-result-alice')).toBeNull();
    expect(screen.queryByTestId('add-contact-bob')).toBeNull();
    await fireEvent.click(screen.getByTestId('add-contact-dan'));
    expect(sentCommands(mocked.mock.calls)).toEqual([
      { type: 'search', query: 'd' },
      { type: 'addContact', user: 'dan' },
    ]);
  });

  it('removes a contact', async () => {
    render(Home);
    await fireEvent.click(screen.getByTestId('remove-bob'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'removeContact', user: 'bob' }]);
  });

  it('lists history newest first with missed calls marked', () => {
    render(Home);
    const items = screen.getAllByTestId('history-item');
    expect(items).toHaveLength(2);
    expect(items[0]).toHaveAttribute('data-missed', 'true');
    expect(items[0]).toHaveTextContent('Carol');
    expect(items[0]).toHaveTextContent('Missed');
    expect(items[1]).toHaveAttribute('data-missed', 'false');
    expect(items[1]).toHaveTextContent('01:35');
    expect(items[1]).toHaveTextContent('Answered');
    expect(screen.getByTestId('missed-badge')).toHaveTextContent('1 missed');
  });

  it('marks history seen when opened, and calls back', async () => {
    render(Home);
    await fireEvent.click(screen.getAllByTestId('call-back')[0]);
    const sent = sentCommands(mocked.mock.calls);
    expect(sent).toContainEqual({ type: 'markHistorySeen' });
    expect(sent).toContainEqual({ type: 'call', users: ['carol'], video: true });
  });

  it('signs out', async () => {
    render(Home);
    await fireEvent.click(screen.getByTestId('signout-button'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'signOut' }]);
  });

  it('opens settings', async () => {
    render(Home);
    await fireEvent.click(screen.getByTestId('settings-button'));
    expect(app.page).toBe('settings');
  });
});
