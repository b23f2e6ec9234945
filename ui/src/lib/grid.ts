/** How many columns the call grid uses for `n` tiles: one large tile, two
 *  side by side, 2×2 for three or four, three columns beyond. */
export function gridColumns(n: number): number {
  if (n <= 1) return 1;
  if (n <= 4) return 2;
  return 3;
}

export interface GridLayout {
  cols: number;
  rows: number;
  /** Tile size in CSS pixels (16:9). */
  width: number;
  height: number;
}

/** The largest 16:9 tiles for `n` members that fit `areaW`×`areaH` with
 *  `gap` pixels between them. */
export function fitGrid(n: number, areaW: number, areaH: number, gap = 12): GridLayout {
  const count = Math.max(1, n);
  const cols = Math.min(gridColumns(count), count);
  const rows = Math.ceil(count / cols);
  const byWidth = Math.max(0, (areaW - gap * (cols - 1)) / cols);
  const byHeight = Math.max(0, ((areaH - gap * (rows - 1)) / rows) * (16 / 9));
  const width = Math.floor(Math.min(byWidth, byHeight));
  return { cols, rows, width, height: Math.floor((width * 9) / 16) };
}
