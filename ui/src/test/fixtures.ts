// Sample backend state for tests.
import type { Call, Devices, HistoryItem, Member, Person, Snapshot } from '../lib/bindings';

export function person(id: string, over: Partial<Person> = {}): Person {
  const name = id.charAt(0).toUpperCase() + id.slice(1);
  return { id, name, avatarUrl: null, online: true, echo: false, ...over };
}

export function member(id: string, over: Partial<Member> = {}): Member {
  return {
    person: person(id),
    status: 'joined',
    mic: true,
    camera: true,
    quality: 'good',
    speaking: false,
    frames: 0,
    videoStalled: false,
    ...over,
  };
}

export function call(over: Partial<Call> = {}): Call {
  return {
    id: 'c1',
    kind: 'video',
    phase: 'connected',
    inviter: person('alice'),
    members: [member('bob')],
    connectedAtMs: null,
    mic: true,
    camera: true,
    speaker: true,
    videoPaused: false,
    canEndForAll: true,
    ...over,
  };
}

export function devices(over: Partial<Devices> = {}): Devices {
  return {
    cameras: [
      { id: 'cam0', name: 'Built-in camera' },
      { id: 'synthetic', name: 'Test pattern' },
      { id: 'none', name: 'No camera' },
    ],
    microphones: [
      { id: 'mic0', name: 'Built-in microphone' },
      { id: 'tone', name: 'Test tone' },
    ],
    speakers: [{ id: 'spk0', name: 'Speakers' }],
    camera: 'cam0',
    microphone: 'mic0',
    speaker: 'spk0',
    problems: [],
    ...over,
  };
}

export function historyItem(id: string, over: Partial<HistoryItem> = {}): HistoryItem {
  return {
    id,
    kind: 'video',
    outgoing: true,
    with: [person('bob')],
    startedAtMs: Date.UTC(2026, 0, 10, 12, 0),
    durationSecs: 95,
    outcome: 'answered',
    missed: false,
    ...over,
  };
}

/** Signed in as alice on a hosted server, with bob, carol and the echo test. */
export function snapshot(over: Partial<Snapshot> = {}): Snapshot {
  return {
    connection: { state: 'online' },
    server: { url: 'ws://127.0.0.1:7450/ws', hosted: true, lanUrls: ['ws://192.168.1.5:7450/ws'] },
    me: person('alice'),
    contacts: [person('bob'), person('carol', { online: false }), person('echo', { name: 'Echo test', echo: true })],
    history: [],
    missed: 0,
    call: null,
    devices: devices(),
    lastUser: 'alice',
    ...over,
  };
}
