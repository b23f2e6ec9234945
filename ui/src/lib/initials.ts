/** Up to two letters for an avatar: first letters of the first and last
 *  words of the shown name, or the start of the user id. */
export function initials(name: string, id = ''): string {
  const words = name
    .trim()
    .split(/[\s._-]+/u)
    .filter((w) => w.length > 0);
  const first = (w: string) => Array.from(w)[0] ?? '';
  if (words.length >= 2) {
    return (first(words[0]) + first(words[words.length - 1])).toUpperCase();
  }
  if (words.length === 1) {
    return Array.from(words[0]).slice(0, 2).join('').toUpperCase();
  }
  const fromId = Array.from(id.trim()).slice(0, 2).join('');
  return fromId.length > 0 ? fromId.toUpperCase() : '?';
}
