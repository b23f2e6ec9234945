import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/svelte';
import { invoke } from '@tauri-apps/api/core';
import WaitingPage from './WaitingPage.svelte';
import { call, member, person } from '../test/fixtures';
import { sentCommands } from '../test/app';

vi.mock('@tauri-apps/api/core', () => ({ invoke: vi.fn(async () => ({ type: 'done' })), Channel: class {} }));
const mocked = vi.mocked(invoke);
const me = person('alice');

beforeEach(() => mocked.mockClear());

const outgoing = (over = {}) =>
  call({ phase: 'outgoing', inviter: me, members: [member('bob', { status: 'ringing' })], connectedAtMs: null, ...over });

describe('waiting page', () => {
  it('says whom it calls and shows our camera preview', () => {
    render(WaitingPage, { call: outgoing(), me, outcome: null });
    expect(screen.getByTestId('waiting-page')).toBeInTheDocument();
    expect(screen.getByRole('heading')).toHaveTextContent('Calling Bob…');
    // The backend runs the camera for the waiting page of a video call by itself.
    expect(screen.getByTestId('video-self')).toBeInTheDocument();
    expect(sentCommands(mocked.mock.calls)).toEqual([]);
    expect(screen.queryByTestId('call-outcome')).toBeNull();
  });

  it('names several callees', () => {
    render(WaitingPage, {
      call: outgoing({ members: [member('bob', { status: 'ringing' }), member('carol', { status: 'ringing' })] }),
      me,
      outcome: null,
    });
    expect(screen.getByRole('heading')).toHaveTextContent('Calling Bob and Carol…');
  });

  it('shows an avatar instead of video for a voice call', () => {
    render(WaitingPage, { call: outgoing({ kind: 'voice', camera: false }), me, outcome: null });
    expect(screen.queryByTestId('video-self')).toBeNull();
    expect(screen.getByText('Camera off')).toBeInTheDocument();
  });

  it('cancels', async () => {
    render(WaitingPage, { call: outgoing(), me, outcome: null });
    await fireEvent.click(screen.getByTestId('cancel-button'));
    expect(sentCommands(mocked.mock.calls)).toContainEqual({ type: 'cancel' });
  });

  it('shows the outcome message', () => {
    render(WaitingPage, {
      call: outgoing(),
      me,
      outcome: { id: 'c1', reason: 'declined', message: 'Bob declined.' },
    });
    expect(screen.getByTestId('call-outcome')).toHaveTextContent('Bob declined.');
    expect(screen.getByTestId('cancel-button')).toBeDisabled();
  });
});
