/** Meter position (0–100) for an RMS level 0–1, on a -60…0 dBFS scale so
 *  that speech sits mid-way rather than near the left edge. */
export function meterPercent(rms: number): number {
  if (!(rms > 0)) return 0;
  const db = 20 * Math.log10(Math.min(1, rms));
  const pct = ((db + 60) / 60) * 100;
  return Math.round(Math.max(0, Math.min(100, pct)));
}
