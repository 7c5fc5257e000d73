// waves: the rows of the sweep display, one per signal shown (the chosen ECG lead,
// pleth, respiration, CO₂, and any other wave the monitor sends), made as the first
// chunk of each arrives, in a fixed order so rows never jump.
import { t } from "./i18n.js";
import { el } from "./dom.js";
import { Sweep } from "./sweep.js";
import { Playout } from "./playout.js";
import { waveKind, waveLabel, leadOrder } from "./labels.js";

const order = { ecg: 0, pleth: 1, resp: 2, co2: 3, other: 4 };

export class Waves {
  constructor(root, pxPerMm) {
    this.root = root;
    this.pxPerMm = pxPerMm;
    this.playout = new Playout();
    this.rows = new Map();   // code → {sweep, row, label}
    this.leads = new Set();  // ECG leads the monitor sends
    this.lead = null;        // the ECG lead shown
    this.stats = {};         // code → the sweep's stats, for the tests
  }

  // take handles one wave message.
  take(m) {
    if (!m || m.v !== 1 || m.type !== "wave" || typeof m.code !== "number") return;
    const kind = waveKind(m.code);
    if (kind === "ecg") {
      if (!this.leads.has(m.code)) {
        this.leads.add(m.code);
        if (this.lead === null || (m.code === leadOrder[0] && !this.rows.has(leadOrder[0]))) this.showLead(m.code);
      }
      if (m.code !== this.lead) return;
    }
    const r = this.rows.get(m.code) || this.add(m.code, m.unit, m.label);
    const end = r.sweep.push(m);
    if (end !== null) this.playout.arrived(end);
  }

  add(code, unit, wireLabel) {
    const kind = waveKind(code);
    const sweep = new Sweep(code, unit);
    const canvasBox = el("div", { class: "sweep" });
    const name = el("span", { class: "wave-name" }, waveLabel(code, wireLabel));
    const side = el("div", { class: "wave-side" }, name,
      kind === "ecg" ? el("button", { class: "btn lead", onclick: () => this.nextLead() }, t("view.lead")) : null,
      kind === "ecg" ? el("span", { class: "wave-scale muted" }, t("view.speed")) : null);
    const row = el("div", { class: "wave-row wave-" + kind, dataset: { code: String(code) } }, side, canvasBox);
    const before = [...this.root.children].find(c => order[waveKind(+c.dataset.code)] > order[kind]);
    this.root.insertBefore(row, before || null);
    sweep.mount(canvasBox, this.pxPerMm);
    const r = { sweep, row, name, wireLabel };
    this.rows.set(code, r);
    sweep.stats.label = waveLabel(code, wireLabel);
    this.stats[code] = sweep.stats;
    return r;
  }

  showLead(code) {
    if (this.lead !== null && this.rows.has(this.lead)) {
      const old = this.rows.get(this.lead);
      old.row.remove();
      this.rows.delete(this.lead);
      delete this.stats[this.lead];
    }
    this.lead = code;
  }

  nextLead() {
    const avail = leadOrder.filter(c => this.leads.has(c));
    if (avail.length < 2) return;
    this.showLead(avail[(avail.indexOf(this.lead) + 1) % avail.length]);
  }

  // draw advances every row to the playout clock's time.
  draw() {
    const now = this.playout.now();
    for (const r of this.rows.values()) r.sweep.draw(now);
  }

  // tick computes each row's samples drawn per second over the last interval.
  tick(seconds) {
    for (const r of this.rows.values()) {
      const s = r.sweep.stats;
      s.drawnPerSec = (s.drawn - (s.prevDrawn || 0)) / seconds;
      s.prevDrawn = s.drawn;
    }
  }

  resize(pxPerMm) {
    this.pxPerMm = pxPerMm;
    for (const r of this.rows.values()) r.sweep.resize(pxPerMm);
  }

  relabel() {
    for (const [code, r] of this.rows) r.name.textContent = waveLabel(code, r.wireLabel);
  }
}
