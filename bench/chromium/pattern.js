// Beckon's synthetic camera in a page: the test pattern with its 72-bit
// stamp (frame number and capture time, crates/media/src/source/synthetic.rs),
// reading the stamp back from decoded frames, and the page's reports to
// xtask. Shared by call.js (the loopback media bench) and net.js (a call
// across the emulated network). Reads w and h from the query string.

'use strict';

const q = new URLSearchParams(location.search);
const W = Number(q.get('w') || 640);
const H = Number(q.get('h') || 480);
const FPS = 30;
const TIME_BITS = 40;
const TIME_MOD = 2 ** TIME_BITS;

function post(path, body) {
  return fetch(path, { method: 'POST', body: JSON.stringify(body) }).catch(() => {});
}
function log(...parts) {
  const msg = parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(' ');
  return post('/log', { msg });
}
window.addEventListener('error', (e) => log('error:', String(e.message)));
window.addEventListener('unhandledrejection', (e) => log('rejection:', String(e.reason && (e.reason.stack || e.reason))));

/** Wall-clock microseconds, modulo 2^40 (the stamp's capture time). */
function nowUs() {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000) % TIME_MOD;
}
/** Wall-clock microseconds, whole (for offer and first-frame times). */
function wallUs() {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

// ---- the stamp (crates/media/src/source/synthetic.rs) ----

function crc8(bytes) {
  let crc = 0xff;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

/** The 8 payload bytes: 24 bits of frame number, 40 of capture time. */
function payloadBytes(frame, captureUs) {
  const hi = Math.floor(captureUs / 2 ** 32); // top 8 bits of the time
  const lo = captureUs % 2 ** 32;
  return [
    (frame >>> 16) & 0xff, (frame >>> 8) & 0xff, frame & 0xff,
    hi & 0xff,
    (lo >>> 24) & 0xff, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff,
  ];
}

function stampBits(frame, captureUs) {
  const bytes = payloadBytes(frame & 0xffffff, captureUs);
  const all = [...bytes, crc8(bytes)];
  const bits = [];
  for (const b of all) for (let i = 7; i >= 0; i--) bits.push((b >> i) & 1);
  return bits;
}

const BLOCK = W >= 320 ? 16 : 8;
const PER_ROW = Math.floor(W / BLOCK);
const STAMP_ROWS = Math.ceil(72 / PER_ROW) * BLOCK;
function blockOrigin(i) {
  return [(i % PER_ROW) * BLOCK, Math.floor(i / PER_ROW) * BLOCK];
}

/** Reads the stamp from a luma plane (`stride` bytes a row); null when the CRC fails. */
function readStamp(y, stride) {
  const lo = BLOCK / 4;
  const hi = BLOCK - BLOCK / 4;
  const bits = [];
  for (let i = 0; i < 72; i++) {
    const [x0, y0] = blockOrigin(i);
    let sum = 0;
    for (let yy = y0 + lo; yy < y0 + hi; yy++) {
      for (let xx = x0 + lo; xx < x0 + hi; xx++) sum += y[yy * stride + xx];
    }
    bits.push(Math.floor(sum / ((hi - lo) * (hi - lo))) > 128 ? 1 : 0);
  }
  const bytes = [];
  for (let i = 0; i < 9; i++) {
    let b = 0;
    for (let j = 0; j < 8; j++) b = (b << 1) | bits[i * 8 + j];
    bytes.push(b);
  }
  if (crc8(bytes.slice(0, 8)) !== bytes[8]) return null;
  const frame = (bytes[0] << 16) | (bytes[1] << 8) | bytes[2];
  const captureUs = bytes[3] * 2 ** 32 + ((bytes[4] << 24) >>> 0) + (bytes[5] << 16) + (bytes[6] << 8) + bytes[7];
  return { frame, captureUs };
}

// ---- the test pattern ----

/** Limited-range BT.601 YUV to RGB (what the encoder's RGB-to-I420 inverts). */
function yuvToRgb(y, u, v) {
  const c = 1.164 * (y - 16);
  const cl = (x) => Math.max(0, Math.min(255, Math.round(x)));
  return [cl(c + 1.596 * (v - 128)), cl(c - 0.392 * (u - 128) - 0.813 * (v - 128)), cl(c + 2.017 * (u - 128))];
}

/** The still background, drawn once: a diagonal luma ramp, colour bands. */
function background() {
  const c = document.createElement('canvas');
  c.width = W;
  c.height = H;
  const ctx = c.getContext('2d');
  const img = ctx.createImageData(W, H);
  const U = [128, 90, 200, 60, 160, 110, 40, 220];
  const V = [128, 200, 90, 160, 60, 40, 220, 110];
  const cw = W / 2;
  for (let row = 0; row < H; row++) {
    for (let col = 0; col < W; col++) {
      const y = 16 + Math.floor(((col + row) % 440) / 2);
      const ccol = col >> 1;
      const crow = row >> 1;
      const band = Math.floor((ccol * 8) / cw) % 8;
      const [r, g, b] = yuvToRgb(y, U[band], V[(band + Math.floor(crow / 32)) % 8]);
      const o = (row * W + col) * 4;
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

/** One party's camera: a canvas redrawn 30 times a second. */
class PatternCamera {
  constructor(bg) {
    this.bg = bg;
    this.canvas = document.createElement('canvas');
    this.canvas.width = W;
    this.canvas.height = H;
    this.ctx = this.canvas.getContext('2d', { alpha: false });
    this.n = 0;
    this.draw();
    this.stream = this.canvas.captureStream(FPS);
    this.track = this.stream.getVideoTracks()[0];
  }

  draw() {
    const ctx = this.ctx;
    ctx.drawImage(this.bg, 0, 0);
    const side = Math.floor(H / 6);
    const bx = (this.n * 6) % Math.max(W - side, 1);
    ctx.fillStyle = '#fff';
    ctx.fillRect(bx, Math.floor(H / 2), side, side);
    const bits = stampBits(this.n, nowUs());
    for (let i = 0; i < 72; i++) {
      const [x0, y0] = blockOrigin(i);
      if (y0 + BLOCK > H) break;
      ctx.fillStyle = bits[i] ? '#fff' : '#000';
      ctx.fillRect(x0, y0, BLOCK, BLOCK);
    }
    this.n++;
  }
}

// ---- the call ----

const VP8 = () =>
  RTCRtpReceiver.getCapabilities('video').codecs.filter((c) => c.mimeType.toLowerCase() === 'video/vp8');

function preferVp8(pc) {
  for (const t of pc.getTransceivers()) {
    if ((t.receiver.track && t.receiver.track.kind) === 'video') t.setCodecPreferences(VP8());
  }
}

