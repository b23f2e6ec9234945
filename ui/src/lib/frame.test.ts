import { describe, expect, it } from 'vitest';
import { FRAME_HEADER, makeFrame, parseFrame } from './frame';
import { i420ToRgba, yuvToRgb } from './yuv';

describe('I420 frame parsing', () => {
  it('reads the little-endian header and slices the planes', () => {
    const capture = 1_767_225_600_123_456; // µs, needs more than 32 bits
    const buf = makeFrame(4, 2, capture, (plane, x, y) => (plane === 'y' ? 10 * y + x : plane === 'u' ? 100 : 200));
    expect(buf.byteLength).toBe(FRAME_HEADER + 8 + 2 + 2);
    const f = parseFrame(buf);
    expect(f.width).toBe(4);
    expect(f.height).toBe(2);
    expect(f.captureUs).toBe(capture);
    expect(Array.from(f.y)).toEqual([0, 1, 2, 3, 10, 11, 12, 13]);
    expect(Array.from(f.u)).toEqual([100, 100]);
    expect(Array.from(f.v)).toEqual([200, 200]);
  });

  it('reads the header bytes as written by the backend', () => {
    const bytes = new Uint8Array(FRAME_HEADER + 2 * 2 + 1 + 1);
    bytes.set([2, 0, 0, 0, 2, 0, 0, 0, 0x40, 0x42, 0x0f, 0, 0, 0, 0, 0]); // 2x2 at 1 000 000 µs
    const f = parseFrame(bytes.buffer);
    expect([f.width, f.height, f.captureUs]).toEqual([2, 2, 1_000_000]);
  });

  it('accepts views and plain number arrays', () => {
    const buf = makeFrame(2, 2, 7);
    const padded = new Uint8Array(buf.byteLength + 3);
    padded.set(new Uint8Array(buf), 3);
    expect(parseFrame(padded.subarray(3)).captureUs).toBe(7);
    expect(parseFrame(Array.from(new Uint8Array(buf))).width).toBe(2);
  });

  it('rounds chroma up for odd sizes', () => {
    const f = parseFrame(makeFrame(3, 3, 0));
    expect(f.u.length).toBe(4);
    expect(f.v.length).toBe(4);
  });

  it('refuses short or impossible frames', () => {
    expect(() => parseFrame(new ArrayBuffer(8))).toThrow(/too short/);
    const buf = makeFrame(4, 4, 0);
    expect(() => parseFrame(buf.slice(0, buf.byteLength - 1))).toThrow(/needs/);
    const zero = new Uint8Array(FRAME_HEADER);
    expect(() => parseFrame(zero.buffer)).toThrow(/impossible/);
  });
});

describe('BT.601 limited range conversion', () => {
  it('maps black, white and grey', () => {
    expect(yuvToRgb(16, 128, 128)).toEqual([0, 0, 0]);
    expect(yuvToRgb(235, 128, 128)).toEqual([255, 255, 255]);
    expect(yuvToRgb(126, 128, 128)).toEqual([128, 128, 128]);
  });
  it('maps saturated red roughly to red', () => {
    const [r, g, b] = yuvToRgb(81, 90, 240);
    expect(r).toBeGreaterThan(250);
    expect(g).toBeLessThan(5);
    expect(b).toBeLessThan(5);
  });
  it('converts a whole frame like the per-pixel formula (within 1)', () => {
    const f = parseFrame(makeFrame(4, 2, 0, (p, x, y) => (p === 'y' ? 16 + 30 * x + 50 * y : p === 'u' ? 60 + 100 * x : 200 - 90 * x)));
    const out = new Uint8ClampedArray(4 * 2 * 4);
    i420ToRgba(f, out);
    for (let y = 0; y < 2; y++) {
      for (let x = 0; x < 4; x++) {
        const ci = x >> 1;
        const want = yuvToRgb(f.y[y * 4 + x], f.u[ci], f.v[ci]);
        const at = (y * 4 + x) * 4;
        for (let c = 0; c < 3; c++) expect(Math.abs(out[at + c] - want[c])).toBeLessThanOrEqual(1);
        expect(out[at + 3]).toBe(255);
      }
    }
  });
});
