// The only place that talks to the backend (Tauri IPC).
import { Channel, invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { EVENT, type Command, type Person, type Reply, type Snapshot, type UiError, type UiEvent } from './bindings';
import type { FrameMessage } from './frame';

/** Turns whatever a rejected invoke carried into a UiError. */
export function toUiError(err: unknown): UiError {
  if (err && typeof err === 'object' && 'message' in err) {
    const e = err as { code?: unknown; message: unknown };
    return { code: typeof e.code === 'string' ? e.code : 'error', message: String(e.message) };
  }
  return { code: 'error', message: typeof err === 'string' ? err : 'Something went wrong.' };
}

/** Sends a command; rejects with a UiError. */
export async function send(cmd: Command): Promise<Reply> {
  try {
    return await invoke<Reply>('send', { cmd });
  } catch (err) {
    throw toUiError(err);
  }
}

/** Sends a command and returns the error message instead of throwing
 *  (null when it worked): for a view to show next to its control. */
export async function attempt(cmd: Command): Promise<string | null> {
  try {
    await send(cmd);
    return null;
  } catch (err) {
    return toUiError(err).message;
  }
}

/** Searches people on the server. */
export async function search(query: string): Promise<Person[]> {
  const reply = await send({ type: 'search', query });
  return reply.type === 'users' ? reply.users : [];
}

/** The whole state, at start-up. */
export function snapshot(): Promise<Snapshot> {
  return invoke<Snapshot>('snapshot');
}

/** Calls `handler` for every UiEvent. */
export function onEvent(handler: (ev: UiEvent) => void): Promise<UnlistenFn> {
  return listen<UiEvent>(EVENT, (e) => handler(e.payload));
}

/** Starts frames for `tile` (a user id, or "self") over a new channel. */
export async function watchVideo(tile: string, onFrame: (msg: FrameMessage) => void): Promise<void> {
  const channel = new Channel<FrameMessage>();
  channel.onmessage = onFrame;
  await invoke('watch_video', { tile, channel });
}

/** Tells the backend the last frame of `tile` is drawn (it may send the next). */
export function frameDone(tile: string): Promise<void> {
  return invoke('frame_done', { tile });
}

/** Stops frames for `tile`. */
export function unwatchVideo(tile: string): Promise<void> {
  return invoke('unwatch_video', { tile });
}
