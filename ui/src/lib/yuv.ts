import { chromaSize, type I420Frame } from './frame';

const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** BT.601 limited-range YUV → RGB for one pixel (0–255 each). */
export function yuvToRgb(y: number, u: number, v: number): [number, number, number] {
  const c = 1.164 * (y - 16);
  const d = u - 128;
  const e = v - 128;
  return [
    clamp(Math.round(c + 1.596 * e)),
    clamp(Math.round(c - 0.392 * d - 0.813 * e)),
    clamp(Math.round(c + 2.017 * d)),
  ];
}

/** Converts a whole I420 frame into RGBA (the 2D-canvas fallback), writing
 *  into `out` (width*height*4 bytes). Integer maths, 10-bit fixed point. */
export function i420ToRgba(frame: I420Frame, out: Uint8ClampedArray): void {
  const { width, height, y: Y, u: U, v: V } = frame;
  const { cw } = chromaSize(width, height);
  let o = 0;
  for (let row = 0; row < height; row++) {
    const yRow = row * width;
    const cRow = (row >> 1) * cw;
    for (let col = 0; col < width; col++) {
      const c = 1192 * (Y[yRow + col] - 16);
      const ci = cRow + (col >> 1);
      const d = U[ci] - 128;
      const e = V[ci] - 128;
      out[o++] = (c + 1634 * e) >> 10;
      out[o++] = (c - 401 * d - 833 * e) >> 10;
      out[o++] = (c + 2065 * d) >> 10;
      out[o++] = 255;
    }
  }
}
