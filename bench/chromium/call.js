// A loopback WebRTC call inside one page, drawn and measured like Beckon's
// media benchmark: every party films Beckon's synthetic test pattern (same
// picture, same 72-bit stamp of frame number and capture time), sends it and
// a tone to every other party over VP8 and Opus, and every receiving end
// reads the stamp back from every decoded frame.

'use strict';

const MEMBERS = Number(q.get('members') || 2);
const HOLD = Number(q.get('secs') || 15);
const WARMUP = Number(q.get('warmup') || 3);

/** Full resolution at any cost in frame rate, and room to send it. */
async function fullResolution(pc) {
  for (const s of pc.getSenders()) {
    if (!s.track || s.track.kind !== 'video') continue;
    const p = s.getParameters();
    if (!p.encodings || !p.encodings.length) p.encodings = [{}];
    p.encodings[0].scaleResolutionDownBy = 1;
    p.encodings[0].maxBitrate = Math.round(W * H * FPS * 0.12);
    p.encodings[0].maxFramerate = FPS;
    p.degradationPreference = 'maintain-resolution';
    try {
      await s.setParameters(p);
    } catch (e) {
      log('setParameters:', String(e));
    }
  }
}

/** A receiving end: reads every decoded frame of one remote party. */
class Receiver {
  constructor(name) {
    this.name = name;
    this.firstAtUs = null;
    this.frames = 0;
    this.stamped = 0;
    this.latencies = []; // ms, measured window only
    this.all = 0;
    this.size = null;
    this.formats = new Set();
  }

  async run(track, state) {
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    let buf = null;
    for (;;) {
      const { value: frame, done } = await reader.read();
      if (done) return;
      const now = nowUs();
      try {
        if (this.firstAtUs === null) this.firstAtUs = wallUs();
        this.frames++;
        this.size = `${frame.codedWidth}x${frame.codedHeight}`;
        const fmt = frame.format;
        this.formats.add(fmt);
        if (fmt === 'I420' || fmt === 'I420A' || fmt === 'NV12' || fmt === 'I444') {
          // Only the stamp's rows of the luma plane.
          const rect = { x: 0, y: 0, width: frame.codedWidth & ~1, height: Math.min(STAMP_ROWS, frame.codedHeight) };
          const size = frame.allocationSize({ rect });
          if (!buf || buf.length < size) buf = new Uint8Array(size);
          const layout = await frame.copyTo(buf, { rect });
          const s = readStamp(buf.subarray(layout[0].offset), layout[0].stride);
          if (s) {
            this.stamped++;
            const ms = (((now - s.captureUs) % TIME_MOD) + TIME_MOD) % TIME_MOD / 1000;
            if (state.inWindow) this.latencies.push(ms);
          }
        }
      } finally {
        frame.close();
      }
    }
  }
}

/** One pair of parties: a connection at each end, the first one offers. */
async function link(a, b, cams, audio, state) {
  const cfg = { iceServers: [] };
  const pa = new RTCPeerConnection(cfg);
  const pb = new RTCPeerConnection(cfg);
  pa.onicecandidate = (e) => e.candidate && pb.addIceCandidate(e.candidate).catch((x) => log('ice b:', String(x)));
  pb.onicecandidate = (e) => e.candidate && pa.addIceCandidate(e.candidate).catch((x) => log('ice a:', String(x)));
  const ends = { a, b, pa, pb, rxA: new Receiver(`${b}->${a}`), rxB: new Receiver(`${a}->${b}`), offerAtUs: 0 };
  const onTrack = (rx) => (e) => {
    if (e.track.kind === 'video') rx.run(e.track, state).catch((x) => log('rx:', String(x)));
    else state.play(e.track);
  };
  pa.ontrack = onTrack(ends.rxA);
  pb.ontrack = onTrack(ends.rxB);
  const sa = new MediaStream([cams[a].track, audio[a]]);
  pa.addTransceiver(cams[a].track, { direction: 'sendrecv', streams: [sa] });
  pa.addTransceiver(audio[a], { direction: 'sendrecv', streams: [sa] });
  preferVp8(pa);
  ends.offerAtUs = wallUs();
  const offer = await pa.createOffer();
  await pa.setLocalDescription(offer);
  await pb.setRemoteDescription(pa.localDescription);
  const sb = new MediaStream([cams[b].track, audio[b]]);
  for (const t of pb.getTransceivers()) {
    const track = t.receiver.track.kind === 'video' ? cams[b].track : audio[b];
    await t.sender.replaceTrack(track);
    t.sender.setStreams(sb);
    t.direction = 'sendrecv';
  }
  preferVp8(pb);
  const answer = await pb.createAnswer();
  await pb.setLocalDescription(answer);
  await pa.setRemoteDescription(pb.localDescription);
  await fullResolution(pa);
  await fullResolution(pb);
  return ends;
}

async function videoStats(pcs) {
  const out = { framesSent: 0, framesEncoded: 0, framesDecoded: 0, audioSamples: 0, sizes: [], encoders: new Set(), decoders: new Set(), limits: new Set() };
  for (const pc of pcs) {
    const r = await pc.getStats();
    r.forEach((s) => {
      if (s.kind === 'audio' && s.type === 'inbound-rtp') out.audioSamples += s.totalSamplesReceived || 0;
      if (s.kind !== 'video') return;
      if (s.type === 'outbound-rtp') {
        out.framesSent += s.framesSent || 0;
        out.framesEncoded += s.framesEncoded || 0;
        if (s.encoderImplementation) out.encoders.add(s.encoderImplementation);
        if (s.qualityLimitationReason) out.limits.add(s.qualityLimitationReason);
      } else if (s.type === 'inbound-rtp') {
        out.framesDecoded += s.framesDecoded || 0;
        if (s.frameWidth) out.sizes.push(`${s.frameWidth}x${s.frameHeight}`);
        if (s.decoderImplementation) out.decoders.add(s.decoderImplementation);
      }
    });
  }
  return out;
}

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.round((sorted.length - 1) * q)];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (typeof MediaStreamTrackProcessor === 'undefined') throw new Error('no MediaStreamTrackProcessor in this Chromium');
  await log(`page: ${MEMBERS} parties, ${W}x${H}@${FPS}, hold ${HOLD} s, warm-up ${WARMUP} s; ${navigator.userAgent}`);
  const bg = background();
  const cams = [];
  for (let i = 0; i < MEMBERS; i++) cams.push(new PatternCamera(bg));
  // The cameras' clock: every party draws a frame every 1/30 s.
  const period = 1000 / FPS;
  let due = performance.now();
  const tick = () => {
    for (const c of cams) c.draw();
    due = Math.max(due + period, performance.now() - period);
    setTimeout(tick, Math.max(0, due - performance.now()));
  };
  tick();
  // A tone per party, each its own pitch.
  const ac = new AudioContext({ sampleRate: 48000 });
  await ac.resume().catch(() => {});
  const audio = [];
  for (let i = 0; i < MEMBERS; i++) {
    const osc = new OscillatorNode(ac, { frequency: 440 + 110 * i });
    const gain = new GainNode(ac, { gain: 0.3 });
    const dest = new MediaStreamAudioDestinationNode(ac);
    osc.connect(gain).connect(dest);
    osc.start();
    audio.push(dest.stream.getAudioTracks()[0]);
  }
  await log(`audio context ${ac.state}`);

  // Received audio is played (silently) like Beckon's peers play it into
  // a null speaker: decoded and mixed, not heard.
  const silent = new GainNode(ac, { gain: 0 });
  silent.connect(ac.destination);
  const players = [];
  const play = (track) => {
    const stream = new MediaStream([track]);
    // Chromium only pulls remote WebRTC audio into WebAudio while a media
    // element plays the stream too.
    const el = new Audio();
    el.muted = true;
    el.srcObject = stream;
    el.play().catch((x) => log('audio element:', String(x)));
    new MediaStreamAudioSourceNode(ac, { mediaStream: stream }).connect(silent);
    players.push(el);
  };
  const state = { inWindow: false, play };
  const t0 = performance.now();
  const pairs = [];
  for (let a = 0; a < MEMBERS; a++) for (let b = a + 1; b < MEMBERS; b++) pairs.push([a, b]);
  const links = await Promise.all(pairs.map(([a, b]) => link(b, a, cams, audio, state)));
  const receivers = links.flatMap((l) => [l.rxA, l.rxB]);
  const pcs = links.flatMap((l) => [l.pa, l.pb]);

  // Every receiving end's first decoded frame.
  while (receivers.some((r) => r.firstAtUs === null)) {
    if (performance.now() - t0 > 20000) throw new Error('no first frame after 20 s');
    await sleep(10);
  }
  const firstFrameMs = Math.max(...links.flatMap((l) => [l.rxA, l.rxB].map((r) => (r.firstAtUs - l.offerAtUs) / 1000)));
  await log(`first frames in; offer to first frame at most ${firstFrameMs.toFixed(0)} ms`);

  const warmEnd = t0 + WARMUP * 1000;
  if (performance.now() < warmEnd) await sleep(warmEnd - performance.now());
  const windowMs = (HOLD - WARMUP - 0.5) * 1000;
  const before = await videoStats(pcs);
  await post('/mark', { phase: 'start' });
  state.inWindow = true;
  const w0 = performance.now();
  await sleep(windowMs);
  state.inWindow = false;
  const secs = (performance.now() - w0) / 1000;
  await post('/mark', { phase: 'end' });
  const after = await videoStats(pcs);

  const lat = receivers.flatMap((r) => r.latencies).sort((x, y) => x - y);
  const result = {
    members: MEMBERS,
    size: `${W}x${H}`,
    secs,
    latency_ms_mean: lat.length ? lat.reduce((s, x) => s + x, 0) / lat.length : null,
    latency_ms_p50: percentile(lat, 0.5),
    latency_ms_p95: percentile(lat, 0.95),
    latency_samples: lat.length,
    first_frame_ms: firstFrameMs,
    frames_sent: after.framesSent - before.framesSent,
    frames_encoded: after.framesEncoded - before.framesEncoded,
    frames_decoded: after.framesDecoded - before.framesDecoded,
    audio_samples_per_sec_per_stream: (after.audioSamples - before.audioSamples) / secs / receivers.length,
    frames_read: receivers.reduce((s, r) => s + r.frames, 0),
    frames_stamped: receivers.reduce((s, r) => s + r.stamped, 0),
    decoded_sizes: [...new Set(after.sizes)],
    frame_sizes: [...new Set(receivers.map((r) => r.size))],
    frame_formats: [...new Set(receivers.flatMap((r) => [...r.formats]))],
    encoders: [...after.encoders],
    decoders: [...after.decoders],
    quality_limitation: [...after.limits],
    audio_context: ac.state,
    user_agent: navigator.userAgent,
  };
  await post('/result', result);
  for (const pc of pcs) pc.close();
}

main().catch((e) => post('/result', { error: String((e && e.stack) || e) }));
