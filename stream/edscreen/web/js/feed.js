// feed: the patient's vitals as the view knows them, from the hub's history first and
// then the live channels, following stream/VITALS.md: version 1 only, reliable
// messages de-duplicated by (epoch, seq) (a box replays after every reconnect and the
// history overlaps the live channel), numerics by code, alarms by their text and
// quantity, device events, and every numeric kept for the trends.

export const maxTrendPoints = 20000; // per code: hours of 1 s values

export class Feed {
  constructor() {
    this.seen = new Map();     // epoch → highest reliable seq taken
    this.numerics = new Map(); // code → the latest numeric of its primary channel
    this.channels = new Map(); // code → channel → latest numeric message
    this.alarms = new Map();   // key → alarm message (raised or recently cleared)
    this.devices = new Map();  // source|code → latest device message
    this.trends = new Map();   // code → [{t, v}]
    this.firstTime = null;     // box time of the first message: pick-up, as far as the hub knows
    this.counts = { numeric: 0, alarm: 0, device: 0, duplicate: 0, refused: 0 };
  }

  // take handles one reliable message (an object already parsed). It reports whether
  // it was new.
  take(m) {
    if (!m || m.v !== 1 || typeof m.type !== "string") {
      this.counts.refused++;
      return false;
    }
    if (m.epoch && Number.isInteger(m.seq)) {
      const high = this.seen.get(m.epoch) || 0;
      if (m.seq <= high) {
        this.counts.duplicate++;
        return false;
      }
      this.seen.set(m.epoch, m.seq);
    }
    const t = Date.parse(m.box_time || "");
    if (!Number.isNaN(t) && (this.firstTime === null || t < this.firstTime)) this.firstTime = t;
    switch (m.type) {
      case "numeric":
        this.numeric(m, t);
        break;
      case "alarm":
        this.alarm(m, t);
        break;
      case "device":
        this.counts.device++;
        this.devices.set((m.source || "") + "|" + (m.code || ""), { ...m, at: t });
        break;
      default:
        return false; // receipts and types of later versions: nothing to show
    }
    return true;
  }

  // numeric keeps the latest value of every channel of a code (two temperature
  // probes, the capnograph's and the ECG's respiration rate) and shows the one a
  // reader of "the" value takes (stream/VITALS.md): a valid value the monitor marks
  // primary, else the first channel in the monitor's order. Trends follow that one.
  numeric(m, t) {
    this.counts.numeric++;
    let per = this.channels.get(m.code);
    if (!per) this.channels.set(m.code, (per = new Map()));
    const prev = per.get(m.channel || "");
    if (prev && prev.at > t) return; // an older value replayed late
    per.set(m.channel || "", { ...m, at: t });
    const shown = primaryOf(per);
    this.numerics.set(m.code, shown);
    if (shown.channel !== m.channel) return;
    if (typeof m.value === "number" && !m.invalid && !Number.isNaN(t)) {
      const series = this.trends.get(m.code) || [];
      const when = m.measured ? Date.parse(m.measured) : t;
      // Episodic values (NIBP) are re-reported every second: one point per measurement.
      if (!(m.measured && series.length && series[series.length - 1].t === when)) {
        series.push({ t: when, v: m.value });
        if (series.length > maxTrendPoints) series.splice(0, series.length - maxTrendPoints);
      }
      this.trends.set(m.code, series);
    }
  }

  alarm(m, t) {
    this.counts.alarm++;
    const key = (m.source || "") + "|" + (m.code || "") + "|" + (m.text || "");
    this.alarms.set(key, { ...m, at: t });
  }

  // alarmList lists raised alarms, highest priority first, then the ones cleared in
  // the last minute (now is the box's time axis, in ms): the list shows what matters
  // now.
  alarmList(now) {
    for (const [k, a] of this.alarms) {
      if (a.state === "cleared" && now - a.at > 60000) this.alarms.delete(k);
    }
    const rank = { high: 0, medium: 1, low: 2, none: 3 };
    return [...this.alarms.values()].sort((a, b) =>
      (a.state === "cleared") - (b.state === "cleared") || (rank[a.priority] ?? 4) - (rank[b.priority] ?? 4) || b.at - a.at);
  }

  // alarmFor is the highest priority of the raised alarms about code, or null.
  alarmFor(codes) {
    let best = null;
    const rank = { high: 3, medium: 2, low: 1, none: 0 };
    for (const a of this.alarms.values()) {
      if (a.state === "raised" && codes.includes(a.code) && (best === null || rank[a.priority] > rank[best])) best = a.priority;
    }
    return best;
  }
}

// primaryOf picks the value shown for a code among its channels' latest values.
function primaryOf(per) {
  const all = [...per.values()];
  const valid = all.filter(n => typeof n.value === "number" && !n.invalid);
  const pool = valid.length ? valid : all;
  return pool.find(n => n.primary) || pool.sort((a, b) => String(a.channel || "").localeCompare(String(b.channel || ""), undefined, { numeric: true }))[0];
}
