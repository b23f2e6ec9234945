import { FRAME_HEADER } from './bindings';

/** Bytes before the planes: width u32, height u32, capture time µs u64 (LE). */
export { FRAME_HEADER };

/** One I420 video frame as the backend sends it over a tile's channel. */
export interface I420Frame {
  width: number;
  height: number;
  /** Capture time, microseconds (Unix epoch or the sender's clock). */
  captureUs: number;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

/** What a channel message may arrive as: raw bytes, or JSON numbers when
 *  the backend did not send it as a raw body. */
export type FrameMessage = ArrayBuffer | ArrayBufferView | number[];

function toBytes(msg: FrameMessage): Uint8Array {
  if (msg instanceof ArrayBuffer) return new Uint8Array(msg);
  if (ArrayBuffer.isView(msg)) return new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
  return Uint8Array.from(msg);
}

/** Chroma plane size for an I420 frame (odd sizes round up). */
export function chromaSize(width: number, height: number): { cw: number; ch: number } {
  return { cw: Math.ceil(width / 2), ch: Math.ceil(height / 2) };
}

/** Reads the header and slices the planes (no copies). Throws on a short
 *  or malformed message. */
export function parseFrame(msg: FrameMessage): I420Frame {
  const bytes = toBytes(msg);
  if (bytes.byteLength < FRAME_HEADER) {
    throw new Error(`video frame too short: ${bytes.byteLength} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER);
  const width = view.getUint32(0, true);
  const height = view.getUint32(4, true);
  const captureUs = view.getUint32(8, true) + view.getUint32(12, true) * 2 ** 32;
  if (width === 0 || height === 0 || width > 8192 || height > 8192) {
    throw new Error(`video frame has an impossible size ${width}x${height}`);
  }
  const { cw, ch } = chromaSize(width, height);
  const ySize = width * height;
  const cSize = cw * ch;
  const need = FRAME_HEADER + ySize + 2 * cSize;
  if (bytes.byteLength < need) {
    throw new Error(`video frame ${width}x${height} needs ${need} bytes, got ${bytes.byteLength}`);
  }
  const base = FRAME_HEADER;
  return {
    width,
    height,
    captureUs,
    y: bytes.subarray(base, base + ySize),
    u: bytes.subarray(base + ySize, base + ySize + cSize),
    v: bytes.subarray(base + ySize + cSize, base + ySize + 2 * cSize),
  };
}

/** Builds a frame message (tests, the browser demo). */
export function makeFrame(
  width: number,
  height: number,
  captureUs: number,
  fill: (plane: 'y' | 'u' | 'v', x: number, y: number) => number = (p) => (p === 'y' ? 128 : 128),
): ArrayBuffer {
  const { cw, ch } = chromaSize(width, height);
  const buf = new ArrayBuffer(FRAME_HEADER + width * height + 2 * cw * ch);
  const view = new DataView(buf);
  view.setUint32(0, width, true);
  view.setUint32(4, height, true);
  view.setUint32(8, captureUs % 2 ** 32, true);
  view.setUint32(12, Math.floor(captureUs / 2 ** 32), true);
  const bytes = new Uint8Array(buf);
  let o = FRAME_HEADER;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) bytes[o++] = fill('y', x, y);
  for (const p of ['u', 'v'] as const) {
    for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) bytes[o++] = fill(p, x, y);
  }
  return buf;
}
