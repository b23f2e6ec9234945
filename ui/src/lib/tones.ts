// Ringtone and ringback, made with WebAudio (no audio files).

export interface TonePattern {
  /** Frequencies played together. */
  freqs: number[];
  /** On, off, on, off… in milliseconds; repeats. */
  cadenceMs: number[];
  /** Loudness 0–1. */
  gain: number;
}

/** The incoming-call ring: two short rings, then a pause. */
export const RINGTONE: TonePattern = { freqs: [440, 480], cadenceMs: [400, 200, 400, 2000], gain: 0.2 };

/** What the caller hears while it rings: 2 s on, 4 s off, quietly. */
export const RINGBACK: TonePattern = { freqs: [440, 480], cadenceMs: [2000, 4000], gain: 0.06 };

type AudioContextCtor = typeof AudioContext;

function audioContextCtor(): AudioContextCtor | null {
  if (typeof window === 'undefined') return null;
  const w = window as unknown as { AudioContext?: AudioContextCtor; webkitAudioContext?: AudioContextCtor };
  return w.AudioContext ?? w.webkitAudioContext ?? null;
}

/** Start times (s, from 0) and lengths of the "on" parts of one cycle. */
export function onSegments(cadenceMs: number[]): { start: number; length: number }[] {
  const out: { start: number; length: number }[] = [];
  let t = 0;
  cadenceMs.forEach((ms, i) => {
    if (i % 2 === 0) out.push({ start: t / 1000, length: ms / 1000 });
    t += ms;
  });
  return out;
}

/** Plays `pattern` until the returned function is called. Silent (and
 *  harmless) where WebAudio is missing or refused. */
export function startTone(pattern: TonePattern): () => void {
  const Ctor = audioContextCtor();
  if (!Ctor) return () => {};
  let ctx: AudioContext;
  try {
    ctx = new Ctor();
  } catch {
    return () => {};
  }
  const out = ctx.createGain();
  out.gain.value = 0;
  out.connect(ctx.destination);
  const oscillators = pattern.freqs.map((f) => {
    const osc = ctx.createOscillator();
    osc.type = 'sine';
    osc.frequency.value = f;
    osc.connect(out);
    osc.start();
    return osc;
  });
  const level = pattern.gain / Math.max(1, pattern.freqs.length);
  const cycle = pattern.cadenceMs.reduce((a, b) => a + b, 0) / 1000;
  const segments = onSegments(pattern.cadenceMs);
  const ramp = 0.015;
  let next = ctx.currentTime + 0.05;
  let stopped = false;

  const schedule = () => {
    // Keep about two cycles scheduled ahead.
    while (next < ctx.currentTime + 2 * cycle) {
      for (const s of segments) {
        const a = next + s.start;
        out.gain.setValueAtTime(0, a);
        out.gain.linearRampToValueAtTime(level, a + ramp);
        out.gain.setValueAtTime(level, a + s.length - ramp);
        out.gain.linearRampToValueAtTime(0, a + s.length);
      }
      next += cycle;
    }
  };
  schedule();
  const timer = setInterval(schedule, Math.max(500, cycle * 500));
  if (ctx.state === 'suspended') ctx.resume().catch(() => {});

  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    try {
      out.gain.cancelScheduledValues(ctx.currentTime);
      out.gain.setValueAtTime(0, ctx.currentTime);
      oscillators.forEach((o) => o.stop());
    } catch {
      // already stopped
    }
    ctx.close().catch(() => {});
  };
}
