// Sample states for the demo page.
import type { Call, Member, Person, Snapshot, UiEvent } from '../lib/bindings';

const p = (id: string, name: string, online = true, echo = false): Person => ({ id, name, avatarUrl: null, online, echo });
const alice = p('alice', 'Alice Martin');
const bob = p('bob', 'Bob Stone');
const carol = p('carol', 'Carol Diaz');
const dan = p('dan', 'Dan Brown', false);
const erin = p('erin', 'Erin Cho');
const frank = p('frank', 'Frank Ode');
const echo = p('echo', 'Echo test', true, true);

const m = (person: Person, over: Partial<Member> = {}): Member => ({
  person,
  status: 'joined',
  mic: true,
  camera: true,
  quality: 'good',
  speaking: false,
  frames: 0,
  videoStalled: false,
  ...over,
});

const hour = 3_600_000;
const now = Date.now();

const base: Snapshot = {
  connection: { state: 'online' },
  server: { url: 'ws://127.0.0.1:7450/ws', hosted: true, lanUrls: ['ws://192.168.1.23:7450/ws'] },
  me: alice,
  contacts: [bob, carol, dan, echo, erin, frank],
  history: [
    { id: 'h1', kind: 'video', outgoing: false, with: [carol], startedAtMs: now - 0.3 * hour, durationSecs: 0, outcome: 'missed', missed: true },
    { id: 'h2', kind: 'video', outgoing: true, with: [bob], startedAtMs: now - 2 * hour, durationSecs: 754, outcome: 'answered', missed: false },
    { id: 'h3', kind: 'voice', outgoing: true, with: [dan], startedAtMs: now - 26 * hour, durationSecs: 0, outcome: 'declined', missed: false },
    { id: 'h4', kind: 'video', outgoing: false, with: [bob, carol], startedAtMs: now - 80 * hour, durationSecs: 3811, outcome: 'answered', missed: false },
  ],
  missed: 1,
  call: null,
  devices: {
    cameras: [
      { id: 'v4l:0', name: 'Integrated Camera' },
      { id: 'synthetic', name: 'Test pattern' },
      { id: 'none', name: 'No camera' },
    ],
    microphones: [
      { id: 'alsa:default', name: 'Built-in Audio' },
      { id: 'tone', name: 'Test tone' },
    ],
    speakers: [{ id: 'alsa:default', name: 'Built-in Audio' }],
    camera: 'v4l:0',
    microphone: 'alsa:default',
    speaker: 'alsa:default',
    problems: [],
  },
  lastUser: 'alice',
};

const call = (over: Partial<Call>): Call => ({
  id: 'c1',
  kind: 'video',
  phase: 'connected',
  inviter: alice,
  members: [m(bob)],
  connectedAtMs: now - 83_000,
  mic: true,
  camera: true,
  speaker: true,
  videoPaused: false,
  canEndForAll: true,
  ...over,
});

export function scenario(name: string): { snap: Snapshot; events: [number, UiEvent][] } {
  const events: [number, UiEvent][] = [];
  let snap: Snapshot = base;
  switch (name) {
    case 'server':
      snap = { ...base, connection: { state: 'noServer' }, server: null, me: null };
      break;
    case 'signin':
      snap = { ...base, connection: { state: 'signedOut', reason: null }, me: null };
      break;
    case 'incoming':
      snap = { ...base, call: call({ phase: 'incoming', inviter: bob, members: [m(bob), m(carol, { status: 'ringing' })], canEndForAll: false, connectedAtMs: null }) };
      break;
    case 'waiting':
      snap = { ...base, call: call({ phase: 'outgoing', members: [m(bob, { status: 'ringing' })], connectedAtMs: null }) };
      break;
    case 'outcome':
      snap = { ...base, call: call({ phase: 'outgoing', members: [m(bob, { status: 'ringing' })], connectedAtMs: null }) };
      events.push([300, { type: 'callEnded', outcome: { id: 'c1', reason: 'declined', message: 'Bob Stone declined.' } }]);
      events.push([320, { type: 'call', call: null }]);
      break;
    case 'calling1':
      snap = { ...base, call: call({}) };
      break;
    case 'slow':
      snap = { ...base, call: call({ videoPaused: true, members: [m(bob, { quality: 'poor' })] }) };
      break;
    case 'calling':
      snap = {
        ...base,
        call: call({
          members: [
            m(bob, { speaking: true }),
            m(carol, { mic: false, quality: 'fair' }),
            m(dan, { camera: false, quality: 'poor' }),
            m(frank, { quality: 'reconnecting' }),
            m(erin, { status: 'ringing', quality: 'connecting' }),
          ],
        }),
      };
      break;
    case 'calling6':
      snap = {
        ...base,
        call: call({ members: [m(bob), m(carol), m(dan, { camera: false }), m(erin), m(frank, { mic: false }), m(p('gus', 'Gus Lee'))] }),
      };
      break;
    case 'settings':
      snap = { ...base, devices: { ...base.devices, problems: ['The camera "Integrated Camera" is in use by another program.'] } };
      for (let i = 1; i < 30; i++) events.push([i * 100, { type: 'micLevel', level: 0.02 + 0.1 * Math.abs(Math.sin(i / 3)) }]);
      break;
    case 'reconnecting':
      snap = { ...base, connection: { state: 'reconnecting', reason: 'server closed the connection', retryInMs: 8000 } };
      events.push([200, { type: 'problem', message: 'Lost the server; calls will resume when it is back.' }]);
      break;
  }
  return { snap, events };
}
