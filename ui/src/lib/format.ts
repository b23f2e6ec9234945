const pad = (n: number) => String(n).padStart(2, '0');

/** `m:ss` below an hour, `h:mm:ss` from there; whole seconds. */
export function formatDuration(totalSecs: number): string {
  const s = Math.max(0, Math.floor(totalSecs));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${pad(m)}:${pad(sec)}`;
}

/** The running time of a call that connected at `connectedAtMs`. */
export function callElapsed(connectedAtMs: number | null, nowMs: number): string {
  if (connectedAtMs === null) return formatDuration(0);
  return formatDuration((nowMs - connectedAtMs) / 1000);
}

/** When a past call happened, short: "14:05", "Yesterday 14:05", "3 Mar 14:05". */
export function formatWhen(atMs: number, nowMs: number): string {
  const at = new Date(atMs);
  const now = new Date(nowMs);
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}`;
  const dayStart = (d: Date) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((dayStart(now) - dayStart(at)) / 86_400_000);
  if (days === 0) return time;
  if (days === 1) return `Yesterday ${time}`;
  const month = at.toLocaleString('en', { month: 'short' });
  const year = at.getFullYear() === now.getFullYear() ? '' : ` ${at.getFullYear()}`;
  return `${at.getDate()} ${month}${year} ${time}`;
}

/** Seconds left until `atMs`, rounded up, never negative. */
export function secondsUntil(atMs: number, nowMs: number): number {
  return Math.max(0, Math.ceil((atMs - nowMs) / 1000));
}

/** "Bob", "Bob and Carol", "Bob, Carol and Dan". */
export function joinNames(names: string[]): string {
  if (names.length <= 1) return names[0] ?? '';
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}
