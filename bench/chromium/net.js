// One party of a 1v1 call across the emulated network (`cargo xtask bench
// network`): this page runs in a headless Chromium on one host (a network
// namespace), the other party's page on the other host. Offer, answer and
// candidates go through xtask (POST /signal, GET /signal long-polls); ICE
// servers (coturn, the only path between the hosts) come from GET /ice.
// Like Beckon's peers, the page sends the test pattern and a tone, and
// records every decoded frame (when, which, how old) and, every 100 ms,
// whether the other party's tone was heard.

'use strict';

const ROLE = q.get('role') || 'a';
const OTHER = ROLE === 'a' ? 'b' : 'a';
const HOLD = Number(q.get('secs') || 30);
const TONE_HZ = ROLE === 'a' ? 440 : 550;
const THEIR_HZ = ROLE === 'a' ? 550 : 440;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function send(msg) {
  return fetch(`/signal?from=${ROLE}&to=${OTHER}`, { method: 'POST', body: JSON.stringify(msg) });
}

/** Power of `hz` in `x` (Goertzel), as a share of all the power. */
function toneShare(x, hz, rate) {
  const k = (2 * Math.cos((2 * Math.PI * hz) / rate));
  let s1 = 0;
  let s2 = 0;
  let total = 0;
  for (const v of x) {
    const s0 = v + k * s1 - s2;
    s2 = s1;
    s1 = s0;
    total += v * v;
  }
  if (total < 1e-9) return 0;
  const power = s1 * s1 + s2 * s2 - k * s1 * s2;
  // Goertzel's power over N samples is N²·A²/4 for a sine of amplitude A,
  // whose total energy is N·A²/2: this ratio is 1 for a pure tone.
  return (2 * power) / (x.length * total);
}

async function main() {
  if (typeof MediaStreamTrackProcessor === 'undefined') throw new Error('no MediaStreamTrackProcessor in this Chromium');
  const ice = await (await fetch('/ice')).json();
  await log(`page ${ROLE}: ${W}x${H}@${FPS}, hold ${HOLD} s; ${navigator.userAgent}`);
  const cam = new PatternCamera(background());
  const period = 1000 / FPS;
  let due = performance.now();
  const tick = () => {
    cam.draw();
    due = Math.max(due + period, performance.now() - period);
    setTimeout(tick, Math.max(0, due - performance.now()));
  };
  tick();
  const ac = new AudioContext({ sampleRate: 48000 });
  await ac.resume().catch(() => {});
  const osc = new OscillatorNode(ac, { frequency: TONE_HZ });
  const dest = new MediaStreamAudioDestinationNode(ac);
  osc.connect(new GainNode(ac, { gain: 0.3 })).connect(dest);
  osc.start();
  const mic = dest.stream.getAudioTracks()[0];

  const pc = new RTCPeerConnection({ iceServers: ice.iceServers });
  const out = {
    role: ROLE,
    frames: [], // [wall ms, frame number, glass-to-glass ms]
    tone_start_us: null,
    tone: '',
    send_kbps: [],
    offer_at_us: null,
    first_frame_at_us: null,
    ice_states: [],
  };
  const stream = new MediaStream([cam.track, mic]);
  if (ROLE === 'a') {
    pc.addTransceiver(cam.track, { direction: 'sendrecv', streams: [stream] });
    pc.addTransceiver(mic, { direction: 'sendrecv', streams: [stream] });
    preferVp8(pc);
  }
  // b sends on the transceivers a's offer makes.
  let answeredOnce = false;
  const sendOnOffered = async () => {
    if (answeredOnce) return;
    answeredOnce = true;
    for (const t of pc.getTransceivers()) {
      await t.sender.replaceTrack(t.receiver.track.kind === 'video' ? cam.track : mic);
      t.sender.setStreams(stream);
      t.direction = 'sendrecv';
    }
    preferVp8(pc);
  };

  // Offers come from a; b answers. Either side asks for an ICE restart when
  // its connection fails or stays disconnected (what a calling app does).
  let making = false;
  const offer = async (restart) => {
    if (making) return;
    making = true;
    try {
      if (restart) pc.restartIce();
      const o = await pc.createOffer(restart ? { iceRestart: true } : {});
      if (out.offer_at_us === null) out.offer_at_us = wallUs();
      await pc.setLocalDescription(o);
      await send({ sdp: pc.localDescription });
    } finally {
      making = false;
    }
  };
  pc.onicecandidate = (e) => e.candidate && send({ candidate: e.candidate });
  let troubleSince = null;
  pc.oniceconnectionstatechange = () => {
    out.ice_states.push([Date.now(), pc.iceConnectionState]);
    const s = pc.iceConnectionState;
    troubleSince = s === 'disconnected' || s === 'failed' ? troubleSince || Date.now() : null;
  };
  setInterval(() => {
    if (troubleSince === null || Date.now() - troubleSince < 2000) return;
    troubleSince = Date.now();
    if (ROLE === 'a') offer(true).catch((x) => log('restart:', String(x)));
    else send({ restart: true });
  }, 250);
  const poll = async () => {
    for (;;) {
      const r = await fetch(`/signal?me=${ROLE}`);
      for (const m of await r.json()) {
        if (m.sdp) {
          await pc.setRemoteDescription(m.sdp);
          if (m.sdp.type === 'offer') {
            await sendOnOffered();
            await pc.setLocalDescription(await pc.createAnswer());
            await send({ sdp: pc.localDescription });
          }
        } else if (m.candidate) {
          await pc.addIceCandidate(m.candidate).catch((x) => log('candidate:', String(x)));
        } else if (m.restart && ROLE === 'a') {
          await offer(true);
        }
      }
    }
  };
  poll().catch((x) => log('signal poll:', String(x)));

  pc.ontrack = (e) => {
    if (e.track.kind === 'video') {
      receiveVideo(e.track).catch((x) => log('video:', String(x)));
      return;
    }
    // Played silently, and listened to every 100 ms.
    const s = new MediaStream([e.track]);
    const el = new Audio();
    el.muted = true;
    el.srcObject = s;
    el.play().catch((x) => log('audio element:', String(x)));
    const analyser = new AnalyserNode(ac, { fftSize: 8192 });
    new MediaStreamAudioSourceNode(ac, { mediaStream: s }).connect(analyser);
    analyser.connect(new GainNode(ac, { gain: 0 })).connect(ac.destination);
    const buf = new Float32Array(analyser.fftSize);
    out.tone_start_us = wallUs();
    let blocks = 0;
    const listen = () => {
      // One block per 100 ms of wall time since the first.
      while (out.tone_start_us + (blocks + 1) * 100000 <= wallUs()) {
        analyser.getFloatTimeDomainData(buf);
        const last = buf.subarray(buf.length - 4800);
        let energy = 0;
        for (const v of last) energy += v * v;
        const rms = Math.sqrt(energy / last.length);
        out.tone += rms > 0.01 && toneShare(last, THEIR_HZ, ac.sampleRate) > 0.6 ? '1' : '0';
        blocks++;
      }
    };
    setInterval(listen, 25);
  };

  async function receiveVideo(track) {
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    let buf = null;
    for (;;) {
      const { value: frame, done } = await reader.read();
      if (done) return;
      const now = nowUs();
      const wall = wallUs();
      try {
        if (out.first_frame_at_us === null) out.first_frame_at_us = wall;
        const rect = { x: 0, y: 0, width: frame.codedWidth & ~1, height: Math.min(STAMP_ROWS, frame.codedHeight) };
        const size = frame.allocationSize({ rect });
        if (!buf || buf.length < size) buf = new Uint8Array(size);
        const layout = await frame.copyTo(buf, { rect });
        // The stamp's blocks scale with the frame: read it only at full size.
        const s = frame.codedWidth === W ? readStamp(buf.subarray(layout[0].offset), layout[0].stride) : null;
        const age = s ? ((((now - s.captureUs) % TIME_MOD) + TIME_MOD) % TIME_MOD) / 1000 : null;
        out.frames.push([wall / 1000, s ? s.frame : -1, age]);
      } finally {
        frame.close();
      }
    }
  }

  if (ROLE === 'a') await offer(false);
  await post('/mark', { phase: `call-${ROLE}` });

  // Every second: what we sent (bytes of every outbound stream).
  let lastBytes = 0;
  let lastAt = performance.now();
  const t0 = performance.now();
  while (performance.now() - t0 < HOLD * 1000) {
    await sleep(1000);
    let bytes = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp') bytes += (s.bytesSent || 0) + (s.headerBytesSent || 0);
    });
    const now = performance.now();
    out.send_kbps.push([Date.now(), ((bytes - lastBytes) * 8) / (now - lastAt)]);
    lastBytes = bytes;
    lastAt = now;
  }
  let sent = 0;
  let decoded = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.kind !== 'video') return;
    if (s.type === 'outbound-rtp') sent += s.framesSent || 0;
    if (s.type === 'inbound-rtp') decoded += s.framesDecoded || 0;
  });
  out.frames_sent = sent;
  out.frames_decoded = decoded;
  await post('/result', out);
  pc.close();
}

main().catch((e) => post('/result', { role: ROLE, error: String((e && e.stack) || e) }));
