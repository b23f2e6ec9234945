// Every scenario of the issue, in the real app: sign in, call and be
// called, decline, cancel, ring timeout, busy, group call, add member,
// mute and camera off as the peer sees them. Each saves a screenshot.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  addContact, byId, click, gone, PASSWORD, peerSees, shot, shown, signUp, startApp, startPeer,
  startServer, waitFrames,
} from '../harness.mjs';

let server;
let n = 0;
/** A user name unique to this run. */
const unique = (base) => `${base}${++n}`;

before(async () => {
  server = await startServer();
});
after(() => server?.stop());

/** Runs `body` with a fresh app signed in as a new user. */
async function withApp(base, body, options = {}) {
  const me = unique(base);
  const b = await startApp();
  try {
    await signUp(b, server, me, options);
    await body(b, me);
  } finally {
    await b.deleteSession().catch(() => {});
  }
}

describe('the desktop app', () => {
  it('hosts its own server: the echo test returns your video, and a peer can call in', async () => {
    const b = await startApp();
    let peer;
    try {
      await click(b, 'host-button');
      await click(b, 'register-tab');
      await (await shown(b, 'user-input')).setValue('host1');
      await (await shown(b, 'name-input')).setValue('Host');
      await (await shown(b, 'password-input')).setValue(PASSWORD);
      await click(b, 'register-button');
      await shown(b, 'home');
      await shown(b, 'contact-echo');
      await click(b, 'call-video-echo');
      await shown(b, 'calling-page');
      await waitFrames(b, 'echo', 30);
      await shot(b, '13-hosted-echo-test');
      await click(b, 'hangup-button');
      await gone(b, 'calling-page');
      // Someone else on the network uses the address the app shows.
      const address = (await (await shown(b, 'server-address')).getText()).match(/wss?:\/\/\S+/)[0];
      peer = startPeer({ url: address.replace(/\/\/[^/:]+:/, '//127.0.0.1:') }, 'guest1', ['--call', 'host1', '--hangup', 'stay']);
      await shown(b, 'incoming-dialog');
      await click(b, 'accept-button');
      await waitFrames(b, 'guest1', 30);
      await peerSees(peer, 'host1', 10);
      await shot(b, '14-hosted-guest-call');
      await click(b, 'hangup-button');
    } finally {
      peer?.stop();
      await b.deleteSession().catch(() => {});
    }
  });

  it('signs up and calls a peer who accepts: the calling page shows its video', async () => {
    await withApp('alice', async (b, me) => {
      const bob = startPeer(server, unique('bob'), ['--on-incoming', 'accept', '--hangup', 'stay']);
      try {
        await bob.waitFor('sign-in', (l) => l.event === 'signed_in');
        await shot(b, '01-home-signed-in');
        await addContact(b, bob.user);
        await click(b, `call-video-${bob.user}`);
        await shown(b, 'calling-page');
        await waitFrames(b, bob.user, 30);
        await peerSees(bob, me, 10);
        await shot(b, '02-calling-peer-video');
        await click(b, 'hangup-button');
        await gone(b, 'calling-page');
        await shown(b, 'history-item');
      } finally {
        bob.stop();
      }
    }, { shots: true });
  });

  it('settings show the camera preview and the microphone level', async () => {
    await withApp('sam', async (b) => {
      await click(b, 'settings-button');
      await shown(b, 'settings-page');
      await waitFrames(b, 'self', 10);
      const meter = await shown(b, 'mic-meter');
      await b.waitUntil(async () => Number(await meter.getAttribute('aria-valuenow')) > 0, {
        timeout: 10000,
        timeoutMsg: 'the microphone meter never moved',
      });
      await shot(b, '12-settings-preview-meter');
      await click(b, 'settings-close');
      await shown(b, 'home');
    });
  });

  it('a peer calls the app: the incoming dialog, accept, video both ways', async () => {
    await withApp('carol', async (b, me) => {
      const dave = startPeer(server, unique('dave'), ['--call', me, '--call-after-ms', '500', '--hangup', 'stay']);
      try {
        const caller = await shown(b, 'incoming-caller');
        assert.match(await caller.getText(), /Dave/);
        await shot(b, '03-incoming-dialog');
        await click(b, 'accept-button');
        await shown(b, 'calling-page');
        await waitFrames(b, dave.user, 30);
        await peerSees(dave, me, 10);
        await shot(b, '04-accepted-call');
        await click(b, 'hangup-button');
        await gone(b, 'calling-page');
      } finally {
        dave.stop();
      }
    });
  });

  it('declining closes the dialog and the caller hears "declined"', async () => {
    await withApp('erin', async (b, me) => {
      const frank = startPeer(server, unique('frank'), ['--call', me, '--call-after-ms', '500', '--exit-after-call']);
      try {
        await shown(b, 'incoming-dialog');
        await click(b, 'decline-button');
        await gone(b, 'incoming-dialog');
        await frank.waitFor('the decline', (l) => l.event === 'member' && l.state === 'rejected');
        await shot(b, '05-declined');
      } finally {
        frank.stop();
      }
    });
  });

  it('the dialog closes when the caller cancels', async () => {
    await withApp('gina', async (b, me) => {
      const hank = startPeer(server, unique('hank'), ['--call', me, '--call-after-ms', '500', '--cancel-after-ms', '2500']);
      try {
        await shown(b, 'incoming-dialog');
        await hank.waitFor('the cancel', (l) => l.event === 'cancelled_ours', 10000);
        await gone(b, 'incoming-dialog', 10000);
        await shot(b, '06-caller-cancelled');
      } finally {
        hank.stop();
      }
    });
  });

  it('an unanswered call times out, closes the dialog and counts as missed', async () => {
    await withApp('ivy', async (b, me) => {
      const jack = startPeer(server, unique('jack'), ['--call', me, '--call-after-ms', '500', '--timeout-secs', '3']);
      try {
        await shown(b, 'incoming-dialog');
        await gone(b, 'incoming-dialog', 15000);
        const badge = await shown(b, 'missed-badge');
        assert.match(await badge.getText(), /1/);
        const missed = await byId(b, 'history-item');
        assert.equal(await missed.getAttribute('data-missed'), 'true');
        await shot(b, '07-ring-timeout-missed');
      } finally {
        jack.stop();
      }
    });
  });

  it('calling someone busy says so on the waiting page', async () => {
    await withApp('kate', async (b) => {
      const leo = startPeer(server, unique('leo'), ['--on-incoming', 'busy']);
      try {
        await leo.waitFor('sign-in', (l) => l.event === 'signed_in');
        await addContact(b, leo.user);
        await click(b, `call-video-${leo.user}`);
        const outcome = await shown(b, 'call-outcome');
        assert.match(await outcome.getText(), /busy/i);
        await shot(b, '08-busy');
      } finally {
        leo.stop();
      }
    });
  });

  it('a group call with two peers shows both tiles with video, then adds a third', async () => {
    await withApp('mia', async (b, me) => {
      const peers = ['ned', 'olga', 'pete'].map((p) =>
        startPeer(server, unique(p), ['--on-incoming', 'accept', '--hangup', 'stay']));
      try {
        for (const p of peers) await p.waitFor('sign-in', (l) => l.event === 'signed_in');
        for (const p of peers) await addContact(b, p.user);
        await click(b, `select-${peers[0].user}`);
        await click(b, `select-${peers[1].user}`);
        await click(b, 'group-call');
        await shown(b, 'calling-page');
        await waitFrames(b, peers[0].user, 20);
        await waitFrames(b, peers[1].user, 20);
        await shot(b, '09-group-call');
        await click(b, 'add-member-button');
        await shown(b, 'add-member-dialog');
        await click(b, `add-${peers[2].user}`);
        await click(b, 'add-confirm');
        await waitFrames(b, peers[2].user, 20, 30000);
        await peerSees(peers[2], me, 10, 30000);
        await shot(b, '10-member-added');
        await click(b, 'hangup-button');
      } finally {
        peers.forEach((p) => p.stop());
      }
    });
  });

  it('a tile whose video stops coming says the connection is poor', async () => {
    await withApp('tara', async (b, me) => {
      const uma = startPeer(server, unique('uma'), [
        '--on-incoming', 'accept', '--hangup', 'stay', '--stall-video-after-ms', '2500',
      ]);
      try {
        await uma.waitFor('sign-in', (l) => l.event === 'signed_in');
        await addContact(b, uma.user);
        await click(b, `call-video-${uma.user}`);
        await shown(b, 'calling-page');
        await waitFrames(b, uma.user, 30);
        const tile = await shown(b, `tile-${uma.user}`);
        await b.waitUntil(async () => (await tile.getAttribute('data-stalled')) === 'true', {
          timeout: 15000,
          timeoutMsg: 'the tile never said the video stalled',
        });
        const notice = await tile.$('[role="status"]');
        assert.equal(await notice.getText(), 'Poor connection');
        await shot(b, '15-video-stalled');
        await click(b, 'hangup-button');
      } finally {
        uma.stop();
      }
    });
  });

  it('mute and camera off are seen by the peer', async () => {
    await withApp('quinn', async (b, me) => {
      const rose = startPeer(server, unique('rose'), ['--on-incoming', 'accept', '--hangup', 'stay']);
      try {
        await rose.waitFor('sign-in', (l) => l.event === 'signed_in');
        await addContact(b, rose.user);
        await click(b, `call-video-${rose.user}`);
        await shown(b, 'calling-page');
        await peerSees(rose, me, 10);
        await click(b, 'mic-button');
        await rose.waitFor('mic off', (l) => l.event === 'media_state' && l.who === me && l.mic === false);
        await click(b, 'camera-button');
        await rose.waitFor('camera off', (l) => l.event === 'media_state' && l.who === me && l.camera === false);
        const mic = await byId(b, 'mic-button');
        assert.equal(await mic.getAttribute('aria-pressed'), 'false');
        await shot(b, '11-muted-camera-off');
        await click(b, 'hangup-button');
      } finally {
        rose.stop();
      }
    });
  });
});
