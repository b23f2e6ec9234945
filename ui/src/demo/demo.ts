// A look at the UI without the backend: `npm run dev`, then open
// /demo.html?s=home (or incoming, waiting, outcome, calling, calling1,
// calling6, slow, settings, signin, server, reconnecting). Dev only: the
// production build does not include it.
import { mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import type { Command, Snapshot, UiEvent } from '../lib/bindings';
import { makeFrame } from '../lib/frame';
import { scenario } from './scenarios';

const name = new URLSearchParams(location.search).get('s') ?? 'home';
const { snap, events } = scenario(name);

function testPattern(tile: string, n: number): ArrayBuffer {
  const w = 320;
  const h = 180;
  const shift = (n * 4) % w;
  const hue = [...tile].reduce((a, c) => a + c.charCodeAt(0), 0) % 200;
  return makeFrame(w, h, Date.now() * 1000, (plane, x, y) => {
    if (plane === 'y') return 40 + ((((x + shift) >> 5) + (y >> 5)) % 2) * 120 + (y >> 2);
    return plane === 'u' ? 28 + hue / 2 + (x >> 3) : 200 - (y >> 2);
  });
}

const timers = new Map<string, ReturnType<typeof setInterval>>();

mockIPC(
  (cmd, args) => {
    const a = args as Record<string, unknown>;
    switch (cmd) {
      case 'snapshot':
        return snap satisfies Snapshot;
      case 'send': {
        const c = a.cmd as Command;
        console.info('demo: send', c);
        if (c.type === 'search') return { type: 'users', users: [{ id: 'dan', name: 'Dan Brown', avatarUrl: null, online: true, echo: false }] };
        if (c.type === 'signIn' && c.password !== 'pw') throw { code: 'unauthorized', message: 'Wrong user id or password.' };
        return { type: 'done' };
      }
      case 'watch_video': {
        const tile = a.tile as string;
        const channel = a.channel as { onmessage: (m: ArrayBuffer) => void };
        let n = 0;
        clearInterval(timers.get(tile));
        timers.set(tile, setInterval(() => channel.onmessage(testPattern(tile, n++)), 66));
        return null;
      }
      case 'unwatch_video':
        clearInterval(timers.get(a.tile as string));
        return null;
      default:
        return null;
    }
  },
  { shouldMockEvents: true },
);

await import('../main');
if (name === 'settings') (await import('../lib/stores.svelte')).app.page = 'settings';
for (const [delay, ev] of events) setTimeout(() => emit('beckon://event', ev satisfies UiEvent), delay);
