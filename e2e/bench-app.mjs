// The app's footprint and its video path, measured in a real window:
// start-up, idle memory and CPU, a 1v1 call, and frames per second drawn
// with 1, 2 and 4 remote 640×360@30 streams plus the self view.
// `cargo xtask bench app` runs it (release build) and writes the result
// into docs/benchmarks.md. Prints one JSON object on its last line.

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import {
  addContact, click, framesDrawn, shown, signUp, startApp, startPeer, startServer,
} from './harness.mjs';

const HOLD_MS = Number(process.env.BECKON_BENCH_HOLD_MS ?? 10000);
const WARM_MS = 4000;
const TICKS = 100; // USER_HZ on Linux
const PAGE = 4096;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Proportional set size: resident memory with pages shared between
 *  processes (WebKit's libraries, mapped by all three) counted once. */
function pss(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+) kB/m);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** pid → { ppid, comm, cpu seconds, memory bytes (PSS) } for every process. */
function processes() {
  const all = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      all.set(Number(name), {
        ppid: Number(f[1]),
        comm,
        cpu: (Number(f[11]) + Number(f[12])) / TICKS,
        rss: Number(f[21]) * PAGE,
        pss: pss(name) ?? Number(f[21]) * PAGE,
      });
    } catch {}
  }
  return all;
}

/** The app's process and everything it started (WebKit's processes). */
function appTree(root) {
  const all = processes();
  const tree = new Map();
  const add = (pid) => {
    const p = all.get(pid);
    if (!p) return;
    tree.set(pid, p);
    for (const [child, q] of all) if (q.ppid === pid) add(child);
  };
  add(root);
  return tree;
}

function findApp(dataDir) {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (cmd[0].endsWith('/beckon') && cmd.includes(dataDir)) return Number(name);
    } catch {}
  }
  throw new Error('the app process was not found');
}

const sum = (tree, key) => [...tree.values()].reduce((a, p) => a + p[key], 0);

/** CPU (% of one core) and RSS of the app's processes over `ms`. */
async function measure(root, ms, during = async () => {}) {
  const before = appTree(root);
  const t0 = Date.now();
  const drawn0 = await during();
  await sleep(ms);
  const drawn1 = await during();
  const after = appTree(root);
  const secs = (Date.now() - t0) / 1000;
  let cpu = 0;
  const cpuByProcess = {};
  for (const [pid, p] of after) {
    const used = p.cpu - (before.get(pid)?.cpu ?? 0);
    cpu += used;
    cpuByProcess[p.comm] = (cpuByProcess[p.comm] ?? 0) + (100 * used) / ((Date.now() - t0) / 1000);
  }
  const byProcess = {};
  for (const p of after.values()) byProcess[p.comm] = (byProcess[p.comm] ?? 0) + p.pss / 1e6;
  return {
    cpuPct: (100 * cpu) / secs,
    pssMb: sum(after, 'pss') / 1e6,
    rssMb: sum(after, 'rss') / 1e6,
    byProcessMb: byProcess,
    cpuByProcess,
    processes: after.size,
    drawn0,
    drawn1,
    secs,
  };
}

async function tileFrames(b, tiles) {
  const out = {};
  for (const t of tiles) out[t] = await framesDrawn(b, t);
  return out;
}

const fps = (m, tile) => (m.drawn1[tile] - m.drawn0[tile]) / m.secs;

const server = await startServer();
const result = { holdSecs: HOLD_MS / 1000 };
const t0 = Date.now();
let b = await startApp();
await shown(b, 'server-url', 30000);
result.startToInteractiveMs = Date.now() - t0;
let pid = findApp(b.dataDir);

await signUp(b, server, 'bench');
await shown(b, 'home');

// Cold start: quit, drop the kernel's page cache (needs root; said in the
// result), start again on the signed-in profile and wait for the home view,
// which needs the saved session resumed with the server.
const dataDir = b.dataDir;
await b.deleteSession();
for (let i = 0; i < 100 && appTree(pid).size > 0; i++) await sleep(100);
try {
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
  result.pageCacheDropped = true;
} catch {
  result.pageCacheDropped = false;
}
const t1 = Date.now();
b = await startApp({ dataDir });
await shown(b, 'home', 30000);
result.coldStartToHomeMs = Date.now() - t1;
pid = findApp(dataDir);
result.renderer = await b.execute(() => {
  const c = document.createElement('canvas');
  const gl = c.getContext('webgl');
  if (!gl) return 'no webgl';
  const ext = gl.getExtension('WEBGL_debug_renderer_info');
  return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
});
await sleep(3000);
result.idle = await measure(pid, HOLD_MS);

const peers = [];
try {
  // 1v1 at 640×480, as a person would call.
  const one = startPeer(server, 'solo', ['--on-incoming', 'accept', '--hangup', 'stay', '--video-size', '640x480', '--stats-every-secs', '0']);
  peers.push(one);
  await one.waitFor('sign-in', (l) => l.event === 'signed_in');
  await addContact(b, 'solo');
  await click(b, 'call-video-solo');
  await shown(b, 'calling-page');
  await sleep(WARM_MS);
  result.call1v1 = await measure(pid, HOLD_MS, () => tileFrames(b, ['solo', 'self']));
  result.call1v1.fps = fps(result.call1v1, 'solo');
  result.call1v1.selfFps = fps(result.call1v1, 'self');
  await click(b, 'hangup-button');
  await shown(b, 'home');
  one.stop();

  // The frame path with 1, 2 and 4 remote 640×360@30 streams.
  result.tiles = [];
  for (const n of [1, 2, 4]) {
    const group = [];
    for (let i = 0; i < n; i++) {
      const p = startPeer(server, `tile${n}x${i}`, ['--on-incoming', 'accept', '--hangup', 'stay', '--stats-every-secs', '0']);
      group.push(p);
      peers.push(p);
    }
    for (const p of group) await p.waitFor('sign-in', (l) => l.event === 'signed_in');
    for (const p of group) await addContact(b, p.user);
    if (n === 1) {
      await click(b, `call-video-${group[0].user}`);
    } else {
      for (const p of group) await click(b, `select-${p.user}`);
      await click(b, 'group-call');
    }
    await shown(b, 'calling-page');
    await sleep(WARM_MS + 1000 * n);
    const names = [...group.map((p) => p.user), 'self'];
    const m = await measure(pid, HOLD_MS, () => tileFrames(b, names));
    result.tiles.push({
      remote: n,
      fpsPerTile: group.map((p) => fps(m, p.user)),
      selfFps: fps(m, 'self'),
      cpuPct: m.cpuPct,
      rssMb: m.rssMb,
      pssMb: m.pssMb,
      byProcessMb: m.byProcessMb,
      cpuByProcess: m.cpuByProcess,
    });
    await click(b, 'hangup-button');
    await shown(b, 'home');
    group.forEach((p) => p.stop());
    await sleep(2000);
  }
} finally {
  peers.forEach((p) => p.stop());
  await b.deleteSession().catch(() => {});
  server.stop();
}
console.log(JSON.stringify(result));
process.exit(0);
