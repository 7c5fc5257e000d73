// whep: the view's WebRTC connection to the hub (draft-ietf-wish-whep): the browser
// offers to receive video and audio and opens the vitals channels itself, as the
// hub's SFU expects of viewers ("vitals" reliable and ordered, "vitals-wave" unordered
// without retransmits); modules (talk-back, 12-lead) may add their own channels and
// transceivers before the offer. A lost connection is made again, with back-off.

function gathered(pc, timeout) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise(resolve => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeout); // the hub is ICE-lite: host candidates are enough
  });
}

export class Viewer {
  // url is the WHEP endpoint; headers go with every request (the hub's anti-CSRF
  // token); hooks: onTrack(track, streams), onMessage(label, data), onState(state),
  // beforeOffer(pc, channels) (add channels/transceivers).
  constructor(url, headers, hooks) {
    this.url = url;
    this.headers = headers;
    this.hooks = hooks;
    this.pc = null;
    this.location = null;
    this.channels = {};
    this.backoff = 1000;
    this.stopped = false;
    this.attempts = 0;
  }

  async start() {
    while (!this.stopped) {
      this.attempts++;
      try {
        await this.connect();
        this.backoff = 1000;
        await this.closed();
      } catch (e) {
        this.hooks.onState("failed", String(e.message || e));
      }
      this.teardown();
      if (this.stopped) return;
      this.hooks.onState("reconnecting");
      await new Promise(r => setTimeout(r, this.backoff));
      this.backoff = Math.min(this.backoff * 2, 10000);
    }
  }

  async connect() {
    this.hooks.onState("connecting");
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    this.channels = {
      "vitals": pc.createDataChannel("vitals"),
      "vitals-wave": pc.createDataChannel("vitals-wave", { ordered: false, maxRetransmits: 0 }),
    };
    if (this.hooks.beforeOffer) this.hooks.beforeOffer(pc, this.channels);
    for (const [label, ch] of Object.entries(this.channels)) {
      ch.onmessage = e => this.hooks.onMessage(label, e.data);
    }
    pc.ontrack = e => this.hooks.onTrack(e.track, e.streams);
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 2000);
    const res = await fetch(this.url, {
      method: "POST", credentials: "same-origin",
      headers: { ...this.headers, "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
    });
    const body = await res.text();
    if (this.hooks.onResponse) this.hooks.onResponse(res);
    if (res.status !== 201) throw new Error("WHEP " + res.status + ": " + body.trim());
    this.location = res.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: body });
  }

  // closed resolves when the connection has failed or closed for good.
  closed() {
    const pc = this.pc;
    return new Promise(resolve => {
      const check = () => {
        const s = pc.connectionState;
        if (s === "connected") this.hooks.onState("connected");
        // ICE may still recover; until it does, nothing new is arriving.
        if (s === "disconnected") this.hooks.onState("reconnecting");
        if (s === "failed" || s === "closed") resolve();
      };
      pc.addEventListener("connectionstatechange", check);
      // The hub ends a view (the box is gone for good) by closing it: the vitals
      // channel closes before ICE would notice.
      this.channels.vitals.addEventListener("close", resolve);
      check();
    });
  }

  teardown() {
    if (this.location) {
      // Tell the hub the view ended, so its audit and viewer count are right.
      fetch(this.location, { method: "DELETE", headers: this.headers, credentials: "same-origin", keepalive: true }).catch(() => {});
      this.location = null;
    }
    if (this.pc) this.pc.close();
    this.pc = null;
  }

  stop() {
    this.stopped = true;
    this.teardown();
  }

  async videoStats() {
    const out = { framesDecoded: 0, frameWidth: 0, frameHeight: 0, framesPerSecond: 0, packetsLost: 0 };
    if (!this.pc) return out;
    for (const r of (await this.pc.getStats()).values()) {
      if (r.type === "inbound-rtp" && r.kind === "video") {
        for (const k of Object.keys(out)) out[k] = r[k] || 0;
      }
    }
    return out;
  }
}
