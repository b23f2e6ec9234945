import { describe, expect, it } from 'vitest';
import { colourFor, hueFor } from './colour';
import { callElapsed, formatDuration, formatWhen, joinNames, secondsUntil } from './format';
import { fitGrid, gridColumns } from './grid';
import { initials } from './initials';
import { meterPercent } from './meter';

describe('initials', () => {
  it('takes the first letters of the first and last words', () => {
    expect(initials('Bob Marley')).toBe('BM');
    expect(initials('anna maria de la cruz')).toBe('AC');
  });
  it('takes two letters of a single word', () => {
    expect(initials('bob')).toBe('BO');
    expect(initials('Ö')).toBe('Ö');
  });
  it('splits on dots, dashes and underscores', () => {
    expect(initials('jean-luc')).toBe('JL');
    expect(initials('first.last')).toBe('FL');
  });
  it('falls back to the id, then to a question mark', () => {
    expect(initials('   ', 'zed')).toBe('ZE');
    expect(initials('', '')).toBe('?');
  });
  it('keeps whole characters (no split surrogates)', () => {
    expect(initials('😀 Smile')).toBe('😀S');
  });
});

describe('colourFor', () => {
  it('is stable for an id', () => {
    expect(colourFor('bob')).toBe(colourFor('bob'));
    expect(hueFor('alice')).toBe(hueFor('alice'));
  });
  it('spreads ids over hues', () => {
    const hues = new Set(['alice', 'bob', 'carol', 'dan', 'eve', 'frank', 'grace', 'heidi'].map(hueFor));
    expect(hues.size).toBeGreaterThanOrEqual(6);
    for (const h of hues) {
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThan(360);
    }
  });
  it('is a CSS colour', () => {
    expect(colourFor('bob')).toMatch(/^hsl\(\d+ 45% 38%\)$/);
  });
});

describe('formatDuration', () => {
  it('shows mm:ss under an hour and h:mm:ss beyond', () => {
    expect(formatDuration(0)).toBe('00:00');
    expect(formatDuration(5)).toBe('00:05');
    expect(formatDuration(95)).toBe('01:35');
    expect(formatDuration(3599)).toBe('59:59');
    expect(formatDuration(3600)).toBe('1:00:00');
    expect(formatDuration(3723.9)).toBe('1:02:03');
  });
  it('never goes negative', () => {
    expect(formatDuration(-4)).toBe('00:00');
  });
  it('counts a call from connectedAtMs', () => {
    expect(callElapsed(1_000, 66_500)).toBe('01:05');
    expect(callElapsed(null, 66_500)).toBe('00:00');
  });
});

describe('formatWhen', () => {
  const now = new Date(2026, 2, 10, 15, 30).getTime();
  it('shows the time today, "Yesterday" and a date before that', () => {
    expect(formatWhen(new Date(2026, 2, 10, 9, 5).getTime(), now)).toBe('09:05');
    expect(formatWhen(new Date(2026, 2, 9, 22, 0).getTime(), now)).toBe('Yesterday 22:00');
    expect(formatWhen(new Date(2026, 2, 3, 8, 0).getTime(), now)).toBe('3 Mar 08:00');
    expect(formatWhen(new Date(2025, 11, 24, 8, 0).getTime(), now)).toBe('24 Dec 2025 08:00');
  });
});

describe('small formatters', () => {
  it('counts seconds up, never below zero', () => {
    expect(secondsUntil(10_000, 7_100)).toBe(3);
    expect(secondsUntil(10_000, 12_000)).toBe(0);
  });
  it('joins names for people', () => {
    expect(joinNames([])).toBe('');
    expect(joinNames(['Bob'])).toBe('Bob');
    expect(joinNames(['Bob', 'Carol'])).toBe('Bob and Carol');
    expect(joinNames(['Bob', 'Carol', 'Dan'])).toBe('Bob, Carol and Dan');
  });
  it('maps RMS onto a -60…0 dB meter', () => {
    expect(meterPercent(0)).toBe(0);
    expect(meterPercent(Number.NaN)).toBe(0);
    expect(meterPercent(1)).toBe(100);
    expect(meterPercent(2)).toBe(100);
    expect(meterPercent(0.001)).toBe(0);
    expect(meterPercent(0.1)).toBe(67);
  });
});

describe('grid layout', () => {
  it('uses 1, 2, 2×2 and then 3 columns', () => {
    expect([1, 2, 3, 4, 5, 6, 9, 10].map(gridColumns)).toEqual([1, 2, 2, 2, 3, 3, 3, 3]);
  });
  it('gives one member one large tile', () => {
    const g = fitGrid(1, 1280, 600, 12);
    expect(g).toMatchObject({ cols: 1, rows: 1 });
    expect(g.height).toBeLessThanOrEqual(600);
    expect(g.width).toBe(Math.floor((600 * 16) / 9));
  });
  it('puts two side by side, limited by width', () => {
    const g = fitGrid(2, 1000, 800, 10);
    expect(g).toMatchObject({ cols: 2, rows: 1, width: 495 });
    expect(g.height).toBe(Math.floor((495 * 9) / 16));
  });
  it('makes 2×2 for three and four', () => {
    expect(fitGrid(3, 1200, 700)).toMatchObject({ cols: 2, rows: 2 });
    expect(fitGrid(4, 1200, 700)).toMatchObject({ cols: 2, rows: 2 });
  });
  it('keeps 16:9 tiles inside the area for many members', () => {
    for (const n of [5, 7, 10]) {
      const g = fitGrid(n, 1024, 520, 12);
      expect(g.cols).toBe(3);
      expect(g.rows).toBe(Math.ceil(n / 3));
      expect(g.cols * g.width + (g.cols - 1) * 12).toBeLessThanOrEqual(1024);
      expect(g.rows * g.height + (g.rows - 1) * 12).toBeLessThanOrEqual(520);
    }
  });
  it('copes with no room and no members', () => {
    expect(fitGrid(0, 0, 0)).toMatchObject({ cols: 1, rows: 1, width: 0, height: 0 });
  });
});
