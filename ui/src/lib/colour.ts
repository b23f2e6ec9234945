/** A stable hue (0–359) for a user id: FNV-1a over its UTF-16 units. */
export function hueFor(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 360;
}

/** An avatar background for a user id: the same id always gets the same
 *  colour, dark enough for white initials in both themes. */
export function colourFor(id: string): string {
  return `hsl(${hueFor(id)} 45% 38%)`;
}
