// ecg: one 12-lead ECG as a cardiologist reads it on paper: the standard 3 × 4 layout
// (I aVR V1 V4 / II aVL V2 V5 / III aVF V3 V6, 2.5 s each) and a 10 s lead II rhythm
// strip, at 25 mm/s and 10 mm/mV on the 1 mm / 5 mm grid, with a 1 mV calibration
// pulse on every row. Drawn as SVG in millimetres, so printing is true to scale.
import { t, apply, toggleButton, onLang } from "./i18n.js";
import { pxPerMm } from "./calibration.js";

const parts = location.pathname.split("/").filter(Boolean);
const sop = decodeURIComponent(parts.pop());
const device = decodeURIComponent(parts.pop());
// The SVG namespace, from the page's own <svg> element: the HTML parser knows it, and
// no address needs spelling out in a page that must load nothing from outside.
const svgNS = document.getElementById("svg-ns").namespaceURI;
const mmPerS = 25, mmPerMV = 10;
const layout = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]];
const rowH = 30, cellS = 2.5, calW = 5, left = 8, top = 4;

window.edECG = { device, sop, state: "loading" };

function svg(tag, attrs) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// leadIndex finds a lead by its short name in the labels the DICOM object carries
// ("Lead II", "II", "aVR").
function leadIndex(labels, name) {
  return labels.findIndex(l => l.replace(/^lead\s+/i, "").toLowerCase() === name.toLowerCase());
}

function trace(samples, rate, from, seconds, x0, y0) {
  const first = Math.max(0, Math.round(from * rate));
  const last = Math.min(samples.length, Math.round((from + seconds) * rate));
  let d = "";
  for (let i = first; i < last; i++) {
    const v = samples[i];
    if (v === null || Number.isNaN(v)) continue;
    const x = x0 + ((i - first) / rate) * mmPerS, y = y0 - v * mmPerMV;
    d += (d ? "L" : "M") + x.toFixed(2) + " " + y.toFixed(2);
  }
  return svg("path", { class: "trace", d });
}

function calibration(x, y) {
  return svg("path", { class: "trace", d: `M${x} ${y}h1v${-mmPerMV}h${calW - 2}v${mmPerMV}h1` });
}

function draw(doc) {
  const width = left + calW + 4 * cellS * mmPerS + 2, rows = layout.length + 1;
  const height = top + rows * rowH + 2;
  const s = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: width + "mm", height: height + "mm" });
  for (let x = 0; x <= width; x++) s.append(svg("line", { class: x % 5 ? "minor" : "major", x1: x, y1: 0, x2: x, y2: height }));
  for (let y = 0; y <= height; y++) s.append(svg("line", { class: y % 5 ? "minor" : "major", x1: 0, y1: y, x2: width, y2: y }));
  const x0 = left + calW;
  let drawn = 0;
  layout.forEach((row, r) => {
    const base = top + r * rowH + rowH / 2;
    s.append(calibration(left, base));
    row.forEach((name, c) => {
      const i = leadIndex(doc.labels, name);
      const x = x0 + c * cellS * mmPerS;
      const label = svg("text", { class: "label", x: x + 1, y: base - rowH / 2 + 4 });
      label.textContent = name;
      s.append(label);
      if (i >= 0) {
        s.append(trace(doc.samples[i], doc.rate, c * cellS, cellS, x, base));
        drawn++;
      }
    });
  });
  const base = top + layout.length * rowH + rowH / 2, ii = leadIndex(doc.labels, "II");
  s.append(calibration(left, base));
  const label = svg("text", { class: "label", x: x0 + 1, y: base - rowH / 2 + 4 });
  label.textContent = t("ecg.rhythm") + " II";
  s.append(label);
  if (ii >= 0) s.append(trace(doc.samples[ii], doc.rate, 0, 4 * cellS, x0, base));
  // On screen, millimetres follow the calibrated screen; print uses true mm.
  s.style.width = (width * pxPerMm()) + "px";
  s.style.height = (height * pxPerMm()) + "px";
  document.getElementById("ecg").replaceChildren(s);
  window.edECG = { device, sop, state: "drawn", leadsDrawn: drawn, rate: doc.rate, seconds: doc.samples[0].length / doc.rate };
}

// dicomTime shows a DICOM DT (YYYYMMDDHHMMSS.FFFFFF&ZZXX) as a date and time; what it
// cannot read is shown as stored.
function dicomTime(dt) {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?([+-]\d{4})?$/.exec(dt || "");
  if (!m) return dt || "";
  return `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}` + (m[7] ? " " + (m[7] === "+0000" ? "UTC" : m[7]) : "");
}

function head(doc) {
  const when = dicomTime(doc.acquired);
  document.getElementById("ecg-head").textContent =
    [device, doc.institution, doc.patient_id, t("ecg.meta", { rate: doc.rate, when })].filter(Boolean).join(" · ");
}

async function main() {
  apply(document);
  toggleButton(document.getElementById("lang"));
  document.getElementById("print").addEventListener("click", () => print());
  const res = await fetch("../../api/box/" + encodeURIComponent(device) + "/ecg/" + encodeURIComponent(sop), { credentials: "same-origin", cache: "no-store" });
  if (!res.ok) {
    window.edECG.state = "missing";
    document.getElementById("ecg").textContent = t("ecg.notYet") + " (" + (await res.text()).trim() + ")";
    return;
  }
  const doc = await res.json();
  head(doc);
  draw(doc);
  onLang(() => { head(doc); draw(doc); });
}

main();
