// trends: the numerics since pick-up, one small chart per quantity on one canvas,
// from the hub's durable history and then the live values. Times are the box's.
import { t } from "./i18n.js";
import { clockTime } from "./clock.js";

// rows are the charts, top to bottom; a row with no data is left out.
const rows = [
  { label: "HR", codes: [147842], colour: "#3ee07a", min: 40, max: 160 },
  { label: "SpO₂", codes: [150456], colour: "#4cc9f0", min: 85, max: 100 },
  { label: "NIBP", codes: [150021, 150022], colour: "#f4f4f4", min: 50, max: 180 },
  { label: "RR", codes: [151562, 151578, 151594, 151658], colour: "#ffd166", min: 5, max: 35 },
  { label: "EtCO₂", codes: [151708], colour: "#ffd166", min: 20, max: 50 },
];

export function drawTrends(canvas, feed, now) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const c = canvas.getContext("2d");
  c.setTransform(dpr, 0, 0, dpr, 0, 0);
  c.clearRect(0, 0, w, h);
  const shown = rows.map(r => ({ ...r, series: r.codes.map(code => feed.trends.get(code) || []).filter(s => s.length) }))
    .filter(r => r.series.length);
  const style = getComputedStyle(canvas);
  c.font = "16px " + style.fontFamily;
  if (!shown.length || feed.firstTime === null) {
    c.fillStyle = "#9aa4b2";
    c.fillText(t("view.noTrends"), 12, 28);
    return 0;
  }
  const left = 96, right = 8, bottom = 22;
  const t0 = feed.firstTime, t1 = Math.max(now, t0 + 60000);
  const rowH = (h - bottom) / shown.length;
  const x = tt => left + ((tt - t0) / (t1 - t0)) * (w - left - right);
  let points = 0;
  shown.forEach((r, i) => {
    const top = i * rowH + 4, bot = (i + 1) * rowH - 4;
    let lo = r.min, hi = r.max;
    for (const s of r.series) for (const p of s) { lo = Math.min(lo, p.v); hi = Math.max(hi, p.v); }
    const y = v => bot - ((v - lo) / (hi - lo || 1)) * (bot - top);
    c.strokeStyle = "rgba(255,255,255,0.12)";
    c.beginPath(); c.moveTo(left, bot + 0.5); c.lineTo(w - right, bot + 0.5); c.stroke();
    c.font = "bold 18px " + style.fontFamily;
    c.fillStyle = r.colour;
    c.fillText(r.label, 6, (top + bot) / 2 + 6);
    c.font = "13px " + style.fontFamily;
    c.fillStyle = "#9aa4b2";
    c.textAlign = "right";
    c.fillText(String(Math.round(hi)), left - 6, top + 11);
    c.fillText(String(Math.round(lo)), left - 6, bot - 1);
    c.textAlign = "left";
    c.strokeStyle = r.colour;
    c.lineWidth = 2;
    for (const s of r.series) {
      c.beginPath();
      let prevT = null;
      for (const p of s) {
        // A hole of more than a minute (link down, monitor off) is not bridged.
        if (prevT === null || p.t - prevT > 60000) c.moveTo(x(p.t), y(p.v));
        else c.lineTo(x(p.t), y(p.v));
        prevT = p.t;
        points++;
      }
      c.stroke();
    }
  });
  c.font = "16px " + style.fontFamily;
  c.fillStyle = "#9aa4b2";
  c.fillText(clockTime(t0), left, h - 4);
  const end = clockTime(t1);
  c.fillText(end, w - right - c.measureText(end).width, h - 4);
  return points;
}
