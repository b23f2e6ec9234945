// What the end-to-end scenarios share: a real signaling server, headless
// beckon-peers, and the real app in a real window through tauri-driver.
// `cargo xtask e2e` builds the binaries, starts Xvfb and tauri-driver, and
// sets BECKON_BIN_DIR and BECKON_E2E_OUT.

import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { remote } from 'webdriverio';

const BIN = process.env.BECKON_BIN_DIR ?? join(process.cwd(), '..', 'target', 'debug');
const OUT = process.env.BECKON_E2E_OUT ?? join(process.cwd(), '..', 'target', 'e2e');
const DRIVER_PORT = Number(process.env.TAURI_DRIVER_PORT ?? 4444);
export const PASSWORD = 'correct horse battery';

mkdirSync(OUT, { recursive: true });
const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

/** Runs a binary, collecting its stdout lines (JSON where they parse). */
function run(name, args, env = {}) {
  const child = spawn(join(BIN, name), args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines = [];
  const waiters = new Set();
  createInterface({ input: child.stdout }).on('line', (line) => {
    let value = line;
    try {
      value = JSON.parse(line);
    } catch {}
    lines.push(value);
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d) => {
    if (process.env.BECKON_E2E_VERBOSE) process.stderr.write(`[${name}] ${d}`);
  });
  /** The first line `pred` accepts, within `ms`. */
  const waitFor = (what, pred, ms = 20000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const hit = lines.find(pred);
        if (hit !== undefined) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        const tail = lines.slice(-8).map((l) => JSON.stringify(l).slice(0, 200));
        reject(new Error(`${name}: no ${what} in ${ms} ms; last lines:\n${tail.join('\n')}`));
      }, ms);
      waiters.add(check);
      check();
    });
  const stop = () => child.kill('SIGTERM');
  return { child, lines, waitFor, stop };
}

/** A signaling server on loopback with a fresh database. */
export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'beckon-e2e-server-'));
  const server = run('beckon-server', ['--listen', '127.0.0.1:0', '--database', join(dir, 'db.sqlite')]);
  const line = await server.waitFor('listening line', (l) => typeof l === 'string' && l.includes('listening on'));
  const url = line.slice(line.indexOf('listening on') + 'listening on'.length).trim();
  return { ...server, url: url.endsWith('/ws') ? url : `${url.replace(/\/$/, '')}/ws` };
}

/** A headless user; `args` are beckon-peer flags. */
export function startPeer(server, user, args = []) {
  const peer = run('beckon-peer', [
    '--server', server.url, '--user', user, '--password', PASSWORD, '--register',
    '--name', user[0].toUpperCase() + user.slice(1), '--udp-addr', '127.0.0.1:0',
    ...(args.includes('--video-size') ? [] : ['--video-size', '640x360']), ...args,
  ]);
  peer.user = user;
  return peer;
}

let profiles = 0;

/** The real app with a fresh profile (or the one in `dataDir`), synthetic
 *  camera and tone. */
export async function startApp({ dataDir } = {}) {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), `beckon-e2e-app-${profiles++}-`));
  const browser = await remote({
    hostname: '127.0.0.1',
    port: DRIVER_PORT,
    logLevel: 'error',
    connectionRetryCount: 0,
    capabilities: {
      browserName: 'wry',
      'wdio:enforceWebDriverClassic': true,
      'tauri:options': { application: join(BIN, 'beckon'), args: ['--data-dir', dir] },
    },
  });
  browser.dataDir = dir;
  return browser;
}

/** The element with this test id. */
export const byId = (b, id) => b.$(`[data-testid="${id}"]`);

/** Waits until the element with this test id is shown. */
export async function shown(b, id, timeout = 20000) {
  const el = await byId(b, id);
  await el.waitForDisplayed({ timeout, timeoutMsg: `"${id}" was not shown within ${timeout} ms` });
  return el;
}

/** Waits until the element with this test id is gone. */
export async function gone(b, id, timeout = 20000) {
  const el = await byId(b, id);
  await el.waitForDisplayed({ timeout, reverse: true, timeoutMsg: `"${id}" was still shown after ${timeout} ms` });
}

export async function click(b, id) {
  const el = await shown(b, id);
  await el.click();
}

/** Connects the app to `server` and creates `user`. */
export async function signUp(b, server, user, { shots = false } = {}) {
  const url = await shown(b, 'server-url');
  await url.setValue(server.url);
  if (shots) await shot(b, '00-first-run-server-choice');
  await click(b, 'connect-button');
  await click(b, 'register-tab');
  await (await shown(b, 'user-input')).setValue(user);
  await (await shown(b, 'name-input')).setValue(user[0].toUpperCase() + user.slice(1));
  await (await shown(b, 'password-input')).setValue(PASSWORD);
  if (shots) await shot(b, '00-sign-up-form');
  await click(b, 'register-button');
  await shown(b, 'home');
}

/** Finds `user` with the search box and adds them as a contact. */
export async function addContact(b, user) {
  const search = await shown(b, 'search-input');
  await search.setValue(user);
  await b.keys('Enter');
  await click(b, `add-contact-${user}`);
  await shown(b, `contact-${user}`);
}

/** Frames drawn so far by a tile's canvas. */
export async function framesDrawn(b, tile) {
  const v = await b.execute((t) => (window.__beckonVideo && window.__beckonVideo[t]) || null, tile);
  return v ? v.frames : 0;
}

/** Waits until a tile has drawn at least `n` frames. */
export async function waitFrames(b, tile, n, timeout = 20000) {
  await b.waitUntil(async () => (await framesDrawn(b, tile)) >= n, {
    timeout,
    interval: 200,
    timeoutMsg: `tile "${tile}" drew fewer than ${n} frames in ${timeout} ms`,
  });
}

/** Saves a screenshot of the app's window as OUT/name.png. It is taken
 *  from the X display (ImageMagick's `import`) rather than WebDriver: with
 *  no GPU the app turns WebKit's compositing off, and WebKit's own snapshot
 *  then waits for a paint that a still page never makes. */
export async function shot(b, name) {
  const { w, h } = await b.execute(() => ({ w: window.innerWidth, h: window.innerHeight }));
  // Let the last change reach the screen.
  await new Promise((r) => setTimeout(r, 150));
  await new Promise((resolve, reject) =>
    execFile('import', ['-window', 'root', '-crop', `${w}x${h}+0+0`, '+repage', join(OUT, `${name}.png`)],
      (err) => (err ? reject(err) : resolve())));
}

/** The peer's last stats line that says it decodes frames from `who`. */
export async function peerSees(peer, who, minFrames = 10, ms = 20000) {
  return peer.waitFor(`${minFrames} frames from ${who}`, (l) =>
    l.event === 'stats' && (l.members ?? []).some((m) => m.who === who && m.frames >= minFrames), ms);
}
