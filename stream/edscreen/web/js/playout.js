// playout: the one clock every wave of a view is drawn by. Samples carry the box's
// time (their chunk's start plus i / rate); the clock maps it to this browser's time
// through the fastest delivery seen lately, plus a small delay that absorbs the
// network's jitter and the monitor's 100 ms blocks. All waves share it, so an ECG
// beat and the pleth pulse it causes line up as on the monitor.

const window_ms = 5000; // how long a fast delivery is remembered: drift and clock steps
const delay_ms = 250;   // jitter absorbed; the price is this much latency

export class Playout {
  constructor() {
    this.recent = []; // {at, off}: local arrival time and arrival minus the chunk's end
    this.offset = null;
  }

  // arrived notes a chunk whose last sample is at box time end (ms) arriving now.
  arrived(end, now = performance.timeOrigin + performance.now()) {
    const off = now - end;
    this.recent.push({ at: now, off });
    while (this.recent.length && now - this.recent[0].at > window_ms) this.recent.shift();
    this.offset = Math.min(...this.recent.map(r => r.off));
  }

  // now is the box time being drawn now, or null before any chunk arrived.
  now(local = performance.timeOrigin + performance.now()) {
    return this.offset === null ? null : local - this.offset - delay_ms;
  }
}
