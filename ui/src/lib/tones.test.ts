import { afterEach, describe, expect, it, vi } from 'vitest';
import { RINGBACK, RINGTONE, onSegments, startTone } from './tones';

class FakeParam {
  value = 0;
  events: [string, number, number][] = [];
  setValueAtTime(v: number, t: number) {
    this.events.push(['set', v, t]);
  }
  linearRampToValueAtTime(v: number, t: number) {
    this.events.push(['ramp', v, t]);
  }
  cancelScheduledValues() {}
}

class FakeContext {
  static last: FakeContext | null = null;
  currentTime = 0;
  state = 'running';
  destination = {};
  oscillators: { frequency: { value: number }; started: boolean; stopped: boolean }[] = [];
  gain = new FakeParam();
  closed = false;
  constructor() {
    FakeContext.last = this;
  }
  createGain() {
    return { gain: this.gain, connect() {} };
  }
  createOscillator() {
    const o = {
      type: 'sine',
      frequency: { value: 0 },
      started: false,
      stopped: false,
      connect() {},
      start() {
        o.started = true;
      },
      stop() {
        o.stopped = true;
      },
    };
    this.oscillators.push(o);
    return o;
  }
  resume() {
    return Promise.resolve();
  }
  close() {
    this.closed = true;
    return Promise.resolve();
  }
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('tones', () => {
  it('finds the on parts of a cadence', () => {
    expect(onSegments([2000, 4000])).toEqual([{ start: 0, length: 2 }]);
    expect(onSegments([400, 200, 400, 2000])).toEqual([
      { start: 0, length: 0.4 },
      { start: 0.6, length: 0.4 },
    ]);
  });

  it('rings two tones together, 2 s on and 4 s off, quietly for ringback', () => {
    expect(RINGBACK.freqs).toEqual([440, 480]);
    expect(RINGBACK.cadenceMs).toEqual([2000, 4000]);
    expect(RINGBACK.gain).toBeLessThan(RINGTONE.gain);
  });

  it('plays with WebAudio and stops cleanly', () => {
    vi.stubGlobal('AudioContext', FakeContext);
    const stop = startTone(RINGBACK);
    const ctx = FakeContext.last!;
    expect(ctx.oscillators.map((o) => o.frequency.value)).toEqual([440, 480]);
    expect(ctx.oscillators.every((o) => o.started)).toBe(true);
    // Gain goes up at the start of a ring and back to 0 after 2 s.
    const ramps = ctx.gain.events.filter((e) => e[0] === 'ramp');
    expect(ramps[0][1]).toBeGreaterThan(0);
    expect(ramps[1][1]).toBe(0);
    expect(ramps[1][2] - ramps[0][2]).toBeCloseTo(2 - 0.015, 3);
    stop();
    stop();
    expect(ctx.oscillators.every((o) => o.stopped)).toBe(true);
    expect(ctx.closed).toBe(true);
  });

  it('is silent without WebAudio', () => {
    vi.stubGlobal('AudioContext', undefined);
    expect(() => startTone(RINGTONE)()).not.toThrow();
  });
});
