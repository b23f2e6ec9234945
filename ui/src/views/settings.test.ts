import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/svelte';
import { invoke } from '@tauri-apps/api/core';
import Settings from './Settings.svelte';
import { app } from '../lib/stores.svelte';
import { devices, snapshot } from '../test/fixtures';
import { resetApp, sentCommands } from '../test/app';

vi.mock('@tauri-apps/api/core', () => ({ invoke: vi.fn(async () => ({ type: 'done' })), Channel: class {} }));
const mocked = vi.mocked(invoke);

beforeEach(() => {
  mocked.mockClear();
  resetApp(snapshot({ devices: devices({ problems: ['No camera found.', 'Microphone is busy.'] }) }));
  app.page = 'settings';
});

describe('settings', () => {
  it('lists devices with the chosen ones selected', () => {
    render(Settings);
    expect(screen.getByTestId('settings-page')).toBeInTheDocument();
    expect(screen.getByTestId('camera-select')).toHaveValue('cam0');
    expect(screen.getByTestId('mic-select')).toHaveValue('mic0');
    expect(screen.getByTestId('speaker-select')).toHaveValue('spk0');
    expect(screen.getByRole('option', { name: 'Test pattern' })).toBeInTheDocument();
  });

  it('shows device problems', () => {
    render(Settings);
    expect(screen.getByText('No camera found.')).toBeInTheDocument();
    expect(screen.getByText('Microphone is busy.')).toBeInTheDocument();
  });

  it('turns the preview on while open, off when closed', async () => {
    render(Settings);
    expect(sentCommands(mocked.mock.calls)).toEqual([{ type: 'preview', on: true }]);
    expect(screen.getByTestId('video-self')).toBeInTheDocument();
    await fireEvent.click(screen.getByTestId('settings-close'));
    expect(app.page).toBe('home');
  });

  it('sends preview off on leaving', () => {
    const { unmount } = render(Settings);
    unmount();
    expect(sentCommands(mocked.mock.calls)).toContainEqual({ type: 'preview', on: false });
  });

  it('chooses one device at a time', async () => {
    render(Settings);
    await fireEvent.change(screen.getByTestId('camera-select'), { target: { value: 'synthetic' } });
    await fireEvent.change(screen.getByTestId('mic-select'), { target: { value: 'tone' } });
    expect(sentCommands(mocked.mock.calls).slice(1)).toEqual([
      { type: 'chooseDevices', camera: 'synthetic', microphone: null, speaker: null },
      { type: 'chooseDevices', camera: null, microphone: 'tone', speaker: null },
    ]);
  });

  it('moves the level meter with micLevel', async () => {
    render(Settings);
    const meter = screen.getByTestId('mic-meter');
    expect(meter).toHaveAttribute('role', 'meter');
    expect(meter).toHaveAttribute('aria-valuenow', '0');
    app.micLevel = 0.1;
    await vi.waitFor(() => expect(meter).toHaveAttribute('aria-valuenow', '67'));
  });

  it('shows a device error beside its select', async () => {
    mocked.mockImplementation(async (_cmd, args) => {
      const c = (args as { cmd?: { type: string } } | undefined)?.cmd;
      if (c?.type === 'chooseDevices') throw { code: 'device', message: 'That camera is in use.' };
      return { type: 'done' };
    });
    render(Settings);
    await fireEvent.change(screen.getByTestId('camera-select'), { target: { value: 'synthetic' } });
    expect(await screen.findByRole('alert')).toHaveTextContent('That camera is in use.');
    mocked.mockImplementation(async () => ({ type: 'done' }));
  });
});
