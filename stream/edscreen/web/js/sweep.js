// sweep: one waveform drawn as a monitor's sweep display on the standard ECG grid, at
// 25 mm/s, every sample at its own time at the signal's true rate (never resampled,
// never interpolated across a gap). The trace is written left to right; an erase bar
// runs ahead of the cursor and wipes the previous sweep. A gap (the chunk's gap flag,
// or a chunk that does not start where the previous one ended) starts a new trace
// segment: the hole stays blank.
import { waveKind } from "./labels.js";

const mmPerSecond = 25;
const mmPerMillivolt = 10;
const eraseMm = 6;
const maxPending = 600; // chunks: a minute of one signal at 10 per second

// heightMm is a row's height by its kind: ±1.5 mV fits an ECG row at 10 mm/mV.
const heightMm = { ecg: 30, pleth: 20, resp: 16, co2: 16, other: 16 };

export class Sweep {
  constructor(code, unit) {
    this.code = code;
    this.unit = unit;
    this.kind = waveKind(code);
    this.grid = document.createElement("canvas");
    this.trace = document.createElement("canvas");
    this.grid.className = "grid";
    this.trace.className = "trace trace-" + this.kind;
    this.pending = [];     // chunks not yet drawn, by start
    this.lastTime = null;  // box time of the last sample drawn (ms)
    this.prevEnd = null;   // end of the last chunk drawn, to find gaps
    this.prev = null;      // {x, y} of the last point drawn, null after a break
    this.cursorX = null;
    this.range = null;     // {lo, hi} for signals without a standard gain
    this.sweepRange = null;
    this.stats = { rate: 0, drawn: 0, drawnPerSec: 0, gaps: 0, late: 0, lastGap: null };
    this.pxPerMm = 96 / 25.4;
  }

  // mount puts the row's canvases into el and sizes them.
  mount(el, pxPerMm) {
    el.append(this.grid, this.trace);
    this.el = el;
    this.resize(pxPerMm);
  }

  // resize follows the element's width and the calibration; the trace starts over.
  resize(pxPerMm) {
    this.pxPerMm = pxPerMm;
    const dpr = window.devicePixelRatio || 1;
    this.w = Math.max(100, this.el.clientWidth);
    this.h = Math.round(heightMm[this.kind] * pxPerMm);
    this.el.style.height = this.h + "px";
    for (const c of [this.grid, this.trace]) {
      c.width = Math.round(this.w * dpr);
      c.height = Math.round(this.h * dpr);
      c.style.width = this.w + "px";
      c.style.height = this.h + "px";
      c.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
    }
    this.prev = null;
    this.colour = getComputedStyle(this.trace).color; // from the stylesheet, per kind
    this.drawGrid();
  }

  drawGrid() {
    const g = this.grid.getContext("2d");
    const mm = this.pxPerMm;
    g.clearRect(0, 0, this.w, this.h);
    const line = (x0, y0, x1, y1) => { g.moveTo(x0, y0); g.lineTo(x1, y1); };
    for (const [step, style, width] of [[1, "rgba(255,80,80,0.13)", 1], [5, "rgba(255,80,80,0.32)", 1]]) {
      g.beginPath();
      g.strokeStyle = style;
      g.lineWidth = width;
      for (let x = 0; x <= this.w; x += step * mm) line(Math.round(x) + 0.5, 0, Math.round(x) + 0.5, this.h);
      for (let y = 0; y <= this.h; y += step * mm) line(0, Math.round(y) + 0.5, this.w, Math.round(y) + 0.5);
      g.stroke();
    }
    if (this.kind === "ecg" && this.gain()) {
      // The 1 mV standardisation pulse: 10 mm high, 5 mm wide, at the left edge.
      const base = this.h / 2 + 5 * mm, top = base - mmPerMillivolt * mm;
      g.beginPath();
      g.strokeStyle = "rgba(255,255,255,0.55)";
      g.lineWidth = 1.5;
      g.moveTo(0, base); g.lineTo(2 * mm, base); g.lineTo(2 * mm, top); g.lineTo(7 * mm, top); g.lineTo(7 * mm, base); g.lineTo(9 * mm, base);
      g.stroke();
    }
  }

  // gain is CSS px per unit of the samples for an ECG in mV or µV, else null.
  gain() {
    if (this.kind !== "ecg") return null;
    if (this.unit === "mV") return mmPerMillivolt * this.pxPerMm;
    if (this.unit === "uV") return mmPerMillivolt * this.pxPerMm / 1000;
    return null;
  }

  // push takes one wave message (already decoded); chunks are placed by start.
  push(m) {
    const start = Date.parse(m.start);
    if (Number.isNaN(start) || !(m.rate > 0) || !Array.isArray(m.samples)) return null;
    this.stats.rate = m.rate;
    if (!this.gain() && !this.range) {
      // Scale the first sweep by the first chunk, so its first sample is not drawn
      // from an empty range.
      const vals = m.samples.filter(v => typeof v === "number");
      if (vals.length) this.range = { lo: Math.min(...vals), hi: Math.max(...vals) + 1e-6 };
    }
    const chunk = { start, rate: m.rate, samples: m.samples, gap: !!m.gap, i: 0 };
    chunk.end = start + (m.samples.length * 1000) / m.rate;
    if (this.lastTime !== null && chunk.end <= this.lastTime) {
      this.stats.late++; // its time has been drawn already: drawing it now would lie
      return chunk.end;
    }
    let k = this.pending.length;
    while (k > 0 && this.pending[k - 1].start > start) k--;
    this.pending.splice(k, 0, chunk);
    if (this.pending.length > maxPending) this.pending.shift();
    return chunk.end;
  }

  x(time) {
    const px = (time / 1000) * mmPerSecond * this.pxPerMm;
    return ((px % this.w) + this.w) % this.w;
  }

  y(v) {
    const mid = this.h / 2;
    const g = this.gain();
    if (g) return mid - v * g;
    const r = this.range;
    if (!r || r.hi <= r.lo) return mid;
    return this.h - 4 - ((v - r.lo) / (r.hi - r.lo)) * (this.h - 8);
  }

  // track keeps the range of signals drawn without a standard gain: each sweep is
  // scaled by the one before it, so the trace does not jump within a sweep.
  track(v) {
    const s = this.sweepRange || (this.sweepRange = { lo: v, hi: v });
    s.lo = Math.min(s.lo, v);
    s.hi = Math.max(s.hi, v);
    if (!this.range) this.range = { lo: v - 1e-6, hi: v + 1e-6 };
    this.range.lo = Math.min(this.range.lo, v);
    this.range.hi = Math.max(this.range.hi, v);
  }

  // draw advances the trace to box time now.
  draw(now) {
    if (now === null) return;
    const c = this.trace.getContext("2d");
    if (this.lastTime !== null && now < this.lastTime - 1000) {
      // The box's clock stepped back: start afresh rather than draw over the past.
      this.lastTime = null;
      this.prevEnd = null;
      this.prev = null;
    }
    this.erase(c, now);
    c.lineWidth = this.kind === "ecg" ? 2 : 2.2;
    c.lineJoin = "round";
    c.strokeStyle = this.colour;
    c.beginPath();
    while (this.pending.length) {
      const ch = this.pending[0];
      const period = 1000 / ch.rate;
      let done = false;
      while (ch.i < ch.samples.length) {
        const t = ch.start + ch.i * period;
        if (t > now) { done = true; break; }
        if (!ch.placed) this.place(ch, period);
        const v = ch.samples[ch.i];
        ch.i++;
        if (this.lastTime !== null && t <= this.lastTime) continue;
        this.sweepTo(c, t);
        this.lastTime = t;
        this.stats.lastTime = t;
        this.stats.drawn++;
        if (v === null || v === undefined) { this.prev = null; continue; }
        if (!this.gain()) this.track(v);
        const x = this.x(t), y = this.y(v);
        if (this.prev && x >= this.prev.x) {
          c.moveTo(this.prev.x, this.prev.y);
          c.lineTo(x, y);
        }
        this.prev = { x, y };
      }
      if (done) break;
      this.prevEnd = ch.end;
      this.pending.shift();
    }
    c.stroke();
  }

  // place decides, once per chunk and only when its first sample is due (a chunk
  // that came out of order has taken its place by then), whether the trace goes on
  // from the previous chunk or starts a new segment after a gap.
  place(ch, period) {
    ch.placed = true;
    const broken = ch.gap || this.prevEnd === null || Math.abs(ch.start - this.prevEnd) > 1.5 * period;
    if (broken && this.prevEnd !== null) {
      this.stats.gaps++;
      this.stats.lastGap = { from: this.prevEnd, to: ch.start, fromX: this.x(this.prevEnd), toX: this.x(ch.start), flagged: ch.gap };
    }
    if (broken) this.prev = null;
  }

  // sweepTo notes the wrap to the left edge, where a new sweep's range begins.
  sweepTo(c, t) {
    const x = this.x(t);
    if (this.cursorX !== null && x < this.cursorX - this.w / 2 && this.sweepRange) {
      this.range = this.sweepRange;
      this.sweepRange = null;
    }
    this.cursorX = x;
  }

  // erase wipes, before this frame's samples are drawn, what the cursor passes now and
  // the bar just ahead of it: the old sweep disappears as the new one is written, and
  // where nothing arrives the strip stays blank.
  erase(c, now) {
    const x = this.x(now);
    const w = eraseMm * this.pxPerMm;
    // How far the cursor moved since the last frame; a step back (the clock
    // re-anchored) counts as none rather than as a whole sweep.
    let moved = this.lastX === undefined ? 0 : (x - this.lastX + this.w) % this.w;
    if (moved > this.w / 2) moved = 0;
    if (moved >= 1) this.clearSpan(c, this.lastX + 1, moved - 1 + w);
    else this.clearSpan(c, x + 1, w);
    this.lastX = moved >= 1 || this.lastX === undefined ? x : this.lastX;
  }

  clearSpan(c, x0, width) {
    x0 = ((x0 % this.w) + this.w) % this.w;
    width = Math.min(width, this.w);
    const first = Math.min(width, this.w - x0);
    c.clearRect(x0, 0, first, this.h);
    if (width > first) c.clearRect(0, 0, width - first, this.h);
  }
}
