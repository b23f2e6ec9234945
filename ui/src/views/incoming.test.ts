import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/svelte';
import { invoke } from '@tauri-apps/api/core';
import IncomingDialog from './IncomingDialog.svelte';
import { call, member, person } from '../test/fixtures';
import { sentCommands } from '../test/app';

vi.mock('@tauri-apps/api/core', () => ({ invoke: vi.fn(async () => ({ type: 'done' })), Channel: class {} }));
const mocked = vi.mocked(invoke);

beforeEach(() => mocked.mockClear());

const incoming = (over = {}) =>
  call({
    phase: 'incoming',
    inviter: person('bob', { name: 'Bob Stone' }),
    members: [member('bob', { person: person('bob', { name: 'Bob Stone' }) }), member('carol', { status: 'ringing' }), member('me', { status: 'ringing' })],
    ...over,
  });

describe('incoming call dialog', () => {
  it('shows the caller, the kind and the others invited', () => {
    render(IncomingDialog, { call: incoming(), meId: 'me' });
    expect(screen.getByTestId('incoming-dialog')).toHaveAttribute('role', 'dialog');
    expect(screen.getByTestId('incoming-caller')).toHaveTextContent('Bob Stone');
    expect(screen.getByText('Video call')).toBeInTheDocument();
    expect(screen.getByText('With Carol')).toBeInTheDocument();
    expect(screen.getByTestId('accept-button')).toHaveAccessibleName('Accept video call from Bob Stone');
    expect(screen.getByTestId('decline-button')).toHaveAccessibleName('Decline video call from Bob Stone');
  });

  it('says voice call for a voice call', () => {
    render(IncomingDialog, { call: incoming({ kind: 'voice' }), meId: 'me' });
    expect(screen.getByText('Voice call')).toBeInTheDocument();
  });

  it('focuses accept, and accepts on click', async () => {
    render(IncomingDialog, { call: incoming(), meId: 'me' });
    expect(document.activeElement).toBe(screen.getByTestId('accept-button'));
    await fireEvent.click(screen.getByTestId('accept-button'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'accept' }]);
  });

  it('declines with the button or Escape', async () => {
    const { unmount } = render(IncomingDialog, { call: incoming(), meId: 'me' });
    await fireEvent.keyDown(screen.getByTestId('incoming-dialog'), { key: 'Escape' });
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'decline' }]);
    unmount();
    mocked.mockClear();
    render(IncomingDialog, { call: incoming(), meId: 'me' });
    await fireEvent.click(screen.getByTestId('decline-button'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'decline' }]);
  });

  it('shows why answering failed', async () => {
    mocked.mockRejectedValueOnce({ code: 'gone', message: 'The call is over.' });
    render(IncomingDialog, { call: incoming(), meId: 'me' });
    await fireEvent.click(screen.getByTestId('accept-button'));
    expect(await screen.findByRole('alert')).toHaveTextContent('The call is over.');
  });
});
