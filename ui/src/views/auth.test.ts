import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/svelte';
import { invoke } from '@tauri-apps/api/core';
import ServerChoice from './ServerChoice.svelte';
import SignIn from './SignIn.svelte';
import { app } from '../lib/stores.svelte';
import { snapshot } from '../test/fixtures';
import { resetApp, sentCommands } from '../test/app';

vi.mock('@tauri-apps/api/core', () => ({ invoke: vi.fn(async () => ({ type: 'done' })), Channel: class {} }));
const mocked = vi.mocked(invoke);

beforeEach(() => {
  mocked.mockReset();
  mocked.mockImplementation(async () => ({ type: 'done' }));
});

describe('server choice', () => {
  beforeEach(() => resetApp(snapshot({ connection: { state: 'noServer' }, server: null, me: null, lastUser: null })));

  it('hosts on this computer with the big button', async () => {
    render(ServerChoice);
    await fireEvent.click(screen.getByTestId('host-button'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'host', port: null }]);
  });

  it('connects to a server by URL', async () => {
    render(ServerChoice);
    await fireEvent.input(screen.getByTestId('server-url'), { target: { value: ' ws://10.0.0.2:7450/ws ' } });
    await fireEvent.click(screen.getByTestId('connect-button'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'useServer', url: 'ws://10.0.0.2:7450/ws' }]);
  });

  it('shows why a server could not be used, next to it', async () => {
    mocked.mockRejectedValueOnce({ code: 'bad_url', message: 'That is not a server address.' });
    render(ServerChoice);
    await fireEvent.input(screen.getByTestId('server-url'), { target: { value: 'nope' } });
    await fireEvent.click(screen.getByTestId('connect-button'));
    expect(await screen.findByRole('alert')).toHaveTextContent('That is not a server address.');
  });
});

describe('sign-in', () => {
  beforeEach(() => resetApp(snapshot({ connection: { state: 'signedOut', reason: null }, me: null, lastUser: 'bob' })));

  it('prefills the last user and shows the server', () => {
    render(SignIn);
    expect(screen.getByTestId('user-input')).toHaveValue('bob');
    expect(screen.getByText('ws://127.0.0.1:7450/ws')).toBeInTheDocument();
    expect(screen.getByText(/Others on your network can connect to: ws:\/\/192\.168\.1\.5:7450\/ws/)).toBeInTheDocument();
    expect(screen.queryByTestId('name-input')).toBeNull();
  });

  it('signs in', async () => {
    render(SignIn);
    await fireEvent.input(screen.getByTestId('password-input'), { target: { value: 'secret' } });
    await fireEvent.click(screen.getByTestId('signin-button'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'signIn', user: 'bob', password: 'secret' }]);
  });

  it('shows the error inline', async () => {
    mocked.mockRejectedValueOnce({ code: 'unauthorized', message: 'Wrong user id or password.' });
    render(SignIn);
    await fireEvent.input(screen.getByTestId('password-input'), { target: { value: 'x' } });
    await fireEvent.click(screen.getByTestId('signin-button'));
    expect(await screen.findByTestId('auth-error')).toHaveTextContent('Wrong user id or password.');
  });

  it('creates an account', async () => {
    render(SignIn);
    await fireEvent.click(screen.getByTestId('register-tab'));
    expect(screen.getByTestId('register-tab')).toHaveAttribute('aria-selected', 'true');
    await fireEvent.input(screen.getByTestId('user-input'), { target: { value: 'dan' } });
    await fireEvent.input(screen.getByTestId('name-input'), { target: { value: 'Dan Brown' } });
    await fireEvent.input(screen.getByTestId('password-input'), { target: { value: 'pw' } });
    await fireEvent.click(screen.getByTestId('register-button'));
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'register', user: 'dan', name: 'Dan Brown', password: 'pw' }]);
  });

  it('asks for missing fields before sending', async () => {
    render(SignIn);
    await fireEvent.click(screen.getByTestId('signin-button'));
    expect(screen.getByTestId('auth-error')).toHaveTextContent(/password/);
    expect(mocked).not.toHaveBeenCalled();
  });

  it('tells why the last session ended', () => {
    resetApp(snapshot({ connection: { state: 'signedOut', reason: 'Your session expired.' }, me: null }));
    render(SignIn);
    expect(screen.getByText('Your session expired.')).toBeInTheDocument();
  });

  it('can go back to the server choice', async () => {
    render(SignIn);
    await fireEvent.click(screen.getByText('Change server'));
    expect(app.choosingServer).toBe(true);
  });
});
