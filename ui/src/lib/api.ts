// The only place that talks to the backend (Tauri IPC).
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { EVENT, FRAME_HEADER, type Command, type Person, type Reply, type Snapshot, type UiError, type UiErrorCode, type UiEvent } from './bindings';
import type { FrameMessage } from './frame';

/** Turns whatever a rejected invoke carried into a UiError. */
export function toUiError(err: unknown): UiError {
  if (err && typeof err === 'object' && 'message' in err) {
    const e = err as { code?: unknown; message: unknown };
    // The backend sends a UiErrorCode; anything else is unexpected.
    return { code: typeof e.code === 'string' ? (e.code as UiErrorCode) : 'unexpected', message: String(e.message) };
  }
  return { code: 'unexpected', message: typeof err === 'string' ? err : 'Something went wrong.' };
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

/** Tiles whose frames are being fetched, with a flag to stop. */
const pulls = new Map<string, { stopped: boolean }>();

/** Frame number in a frame's header (after width, height, capture time). */
function frameNumber(buf: ArrayBuffer): number {
  const view = new DataView(buf, 16, 8);
  return view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
}

/** Fetches `tile`'s frames (a user id, or "self") one at a time: each
 *  request returns the newest frame after the last one shown, so a slow
 *  tile skips frames instead of queueing them. `onFrame` runs before the
 *  next request goes out. */
export async function watchVideo(tile: string, onFrame: (msg: FrameMessage) => void): Promise<void> {
  const earlier = pulls.get(tile);
  if (earlier) earlier.stopped = true;
  const pull = { stopped: false };
  pulls.set(tile, pull);
  let after = 0;
  let failures = 0;
  while (!pull.stopped) {
    let buf: ArrayBuffer;
    try {
      buf = await invoke<ArrayBuffer>('next_frame', { tile, after });
      failures = 0;
    } catch (err) {
      // The first failure is the caller's to report; later ones back off.
      if (failures++ === 0 && after === 0) throw err;
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    if (pull.stopped) break;
    if (!(buf instanceof ArrayBuffer)) {
      // Not a frame at all: never spin on it.
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    if (buf.byteLength > FRAME_HEADER) {
      after = frameNumber(buf);
      onFrame(buf);
    }
  }
}

/** Stops fetching `tile`'s frames. */
export function unwatchVideo(tile: string): Promise<void> {
  const pull = pulls.get(tile);
  if (pull) pull.stopped = true;
  pulls.delete(tile);
  return Promise.resolve();
}
