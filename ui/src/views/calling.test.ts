import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, within } from '@testing-library/svelte';
import { invoke } from '@tauri-apps/api/core';
import CallingPage from './CallingPage.svelte';
import { call, member, person } from '../test/fixtures';
import { sentCommands } from '../test/app';

vi.mock('@tauri-apps/api/core', () => ({ invoke: vi.fn(async () => ({ type: 'done' })), Channel: class {} }));
const mocked = vi.mocked(invoke);
const me = person('alice');
const contacts = [person('bob'), person('carol'), person('dan', { online: false })];

beforeEach(() => mocked.mockClear());

const connected = (over = {}) =>
  call({
    phase: 'connected',
    inviter: me,
    connectedAtMs: Date.now() - 65_000,
    members: [
      member('bob', { mic: false, speaking: true, quality: 'fair' }),
      member('carol', { status: 'ringing', camera: false }),
      member('eve', { status: 'gone' }),
    ],
    ...over,
  });

describe('calling page', () => {
  it('shows a tile per member still involved, with their state', () => {
    render(CallingPage, { call: connected(), me, contacts });
    const bob = screen.getByTestId('tile-bob');
    expect(bob).toHaveAttribute('data-status', 'joined');
    expect(bob).toHaveAttribute('data-mic', 'false');
    expect(bob).toHaveAttribute('data-camera', 'true');
    expect(bob).toHaveAttribute('data-speaking', 'true');
    expect(bob).toHaveAttribute('data-quality', 'fair');
    expect(within(bob).getByText('Muted')).toBeInTheDocument();
    expect(within(bob).getByText('Speaking')).toBeInTheDocument();
    expect(within(bob).getByText('Fair')).toBeInTheDocument();
    expect(within(bob).getByTestId('video-bob')).toHaveAttribute('data-frames', '0');

    const carol = screen.getByTestId('tile-carol');
    expect(carol).toHaveAttribute('data-status', 'ringing');
    expect(within(carol).getByText('Ringing…')).toBeInTheDocument();
    expect(within(carol).queryByTestId('video-carol')).toBeNull();

    expect(screen.queryByTestId('tile-eve')).toBeNull();
    expect(screen.getByTestId('tile-self')).toBeInTheDocument();
  });

  it('shows camera off without video', () => {
    render(CallingPage, { call: connected({ members: [member('bob', { camera: false })] }), me, contacts });
    expect(within(screen.getByTestId('tile-bob')).getByText('Camera off')).toBeInTheDocument();
    expect(screen.queryByTestId('video-bob')).toBeNull();
  });

  it('says when video stalls and when the connection is being restored', () => {
    render(CallingPage, {
      call: connected({
        members: [member('bob', { videoStalled: true }), member('carol', { quality: 'reconnecting' })],
      }),
      me,
      contacts,
    });
    const bob = screen.getByTestId('tile-bob');
    expect(bob).toHaveAttribute('data-stalled', 'true');
    expect(within(bob).getByRole('status')).toHaveTextContent('Poor connection');
    expect(within(bob).getByTestId('video-bob')).toBeInTheDocument();
    expect(bob).toHaveAttribute('data-quality', 'poor');
    expect(within(bob).getByText('Poor')).toBeInTheDocument();
    const carol = screen.getByTestId('tile-carol');
    expect(within(carol).getByRole('status')).toHaveTextContent('Reconnecting…');
    expect(within(carol).getAllByText('Reconnecting').length).toBeGreaterThan(0);
  });

  it('says nothing over video that flows', () => {
    render(CallingPage, { call: connected({ members: [member('bob')] }), me, contacts });
    expect(within(screen.getByTestId('tile-bob')).queryByRole('status')).toBeNull();
  });

  it('shows the running duration', () => {
    render(CallingPage, { call: connected(), me, contacts });
    expect(screen.getByTestId('call-duration')).toHaveTextContent('01:05');
  });

  it('sends the controls with their state', async () => {
    render(CallingPage, { call: connected({ mic: true, camera: false, speaker: true }), me, contacts });
    expect(screen.getByTestId('mic-button')).toHaveAttribute('aria-pressed', 'true');
    expect(screen.getByTestId('camera-button')).toHaveAttribute('aria-pressed', 'false');
    await fireEvent.click(screen.getByTestId('mic-button'));
    await fireEvent.click(screen.getByTestId('camera-button'));
    await fireEvent.click(screen.getByTestId('speaker-button'));
    await fireEvent.click(screen.getByTestId('switch-camera-button'));
    await fireEvent.click(screen.getByTestId('hangup-button'));
    await fireEvent.click(screen.getByTestId('end-all-button'));
    expect(sentCommands(mocked.mock.calls)).toEqual([
      { type: 'setMic', on: false },
      { type: 'setCamera', on: true },
      { type: 'setSpeaker', on: false },
      { type: 'switchCamera' },
      { type: 'hangup' },
      { type: 'endForAll' },
    ]);
  });

  it('offers end for all only to who may', () => {
    render(CallingPage, { call: connected({ canEndForAll: false }), me, contacts });
    expect(screen.queryByTestId('end-all-button')).toBeNull();
  });

  it('says when our video is paused for a slow connection', () => {
    const { unmount } = render(CallingPage, { call: connected({ videoPaused: true }), me, contacts });
    expect(screen.getByTestId('tile-self')).toHaveAttribute('data-video-paused', 'true');
    expect(within(screen.getByTestId('tile-self')).getByText('Video paused')).toBeInTheDocument();
    expect(screen.getByTestId('video-paused')).toHaveTextContent('Your connection is too slow for video');
    unmount();
    // Not with the camera off: that says so instead.
    render(CallingPage, { call: connected({ videoPaused: true, camera: false }), me, contacts });
    expect(screen.getByTestId('tile-self')).toHaveAttribute('data-video-paused', 'false');
    expect(screen.queryByTestId('video-paused')).toBeNull();
  });

  it('adds contacts not in the call', async () => {
    render(CallingPage, { call: connected(), me, contacts });
    await fireEvent.click(screen.getByTestId('add-member-button'));
    const dialog = screen.getByTestId('add-member-dialog');
    expect(within(dialog).queryByTestId('add-bob')).toBeNull();
    expect(within(dialog).queryByTestId('add-carol')).toBeNull();
    expect(screen.getByTestId('add-confirm')).toBeDisabled();
    await fireEvent.click(within(dialog).getByTestId('add-dan'));
    await fireEvent.click(screen.getByTestId('add-confirm'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'addMembers', users: ['dan'] }]);
    await vi.waitFor(() => expect(screen.queryByTestId('add-member-dialog')).toBeNull());
  });

  it('shows a control error next to the bar', async () => {
    mocked.mockRejectedValueOnce({ code: 'no_device', message: 'No camera to switch to.' });
    render(CallingPage, { call: connected(), me, contacts });
    await fireEvent.click(screen.getByTestId('switch-camera-button'));
    expect(await screen.findByRole('alert')).toHaveTextContent('No camera to switch to.');
  });
});
