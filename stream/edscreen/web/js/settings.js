// settings: the view's settings dialog, for now the screen calibration: a bar that
// should measure 50 mm, and a slider to make it so.
import { t } from "./i18n.js";
import { pxPerMm, setPxPerMm, defaultPxPerMm } from "./calibration.js";

const $ = id => document.getElementById(id);

function show(v) {
  $("cal-bar").style.width = (50 * v).toFixed(1) + "px";
  $("cal-range").value = String(v);
  $("cal-value").textContent = t("view.calValue", { v: v.toFixed(2) });
}

function set(v) {
  setPxPerMm(Math.min(10, Math.max(1.5, v)));
  show(pxPerMm());
}

let wired = false;

export function openSettings() {
  if (!wired) {
    wired = true;
    $("cal-range").addEventListener("input", e => set(parseFloat(e.target.value)));
    $("cal-down").addEventListener("click", () => set(pxPerMm() - 0.02));
    $("cal-up").addEventListener("click", () => set(pxPerMm() + 0.02));
    $("cal-reset").addEventListener("click", () => set(defaultPxPerMm));
    $("cal-close").addEventListener("click", () => $("settings-dialog").close());
  }
  show(pxPerMm());
  $("settings-dialog").showModal();
}
