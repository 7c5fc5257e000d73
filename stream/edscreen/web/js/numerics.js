// numerics: the tiles of the view (HR, SpO₂, NIBP 130/82 (98), EtCO₂, RR, Temp) with
// units and the monitor's alarm colours, and the alarm list. A value the monitor did
// not give shows "—"; one it flagged shows greyed with "?"; one that stopped coming
// shows its age, so the doctor never takes an old number for a current one.
import { t } from "./i18n.js";
import { el, replace } from "./dom.js";
import { tiles, unitText, format } from "./labels.js";
import { ago, clockTime, hubNow } from "./clock.js";

const staleAfter = 10000; // ms: continuous numerics come every second or so

function latest(feed, codes) {
  let best = null;
  for (const c of codes) {
    const n = feed.numerics.get(c);
    if (n && (best === null || n.at > best.at)) best = n;
  }
  return best;
}

// tileView computes what one tile shows.
function tileView(feed, tile) {
  if (tile.sys) {
    const s = feed.numerics.get(tile.sys), d = feed.numerics.get(tile.dia), m = feed.numerics.get(tile.mean);
    const any = s || d || m;
    if (!any) return null;
    const v = x => (x && typeof x.value === "number" ? format(x.value, x.unit) : "—");
    return {
      text: v(s) + "/" + v(d), sub: m ? "(" + v(m) + ")" : "", unit: unitText(any.unit),
      invalid: [s, d, m].some(x => x && x.invalid), at: any.at, measured: any.measured,
      alarm: feed.alarmFor([tile.sys, tile.dia, tile.mean]),
    };
  }
  const n = latest(feed, tile.codes);
  if (!n) return null;
  return {
    text: typeof n.value === "number" ? format(n.value, n.unit) : "—", sub: "", unit: unitText(n.unit),
    invalid: !!n.invalid, at: n.at, alarm: feed.alarmFor(tile.codes), others: otherChannels(feed, n),
  };
}

// otherChannels names the values of the tile's code on the monitor's other channels
// ("T2 37.1", "RR imp 30"): a second probe or source is shown, never merged.
function otherChannels(feed, shown) {
  const per = feed.channels.get(shown.code);
  if (!per || per.size < 2) return "";
  return [...per.values()].filter(x => x !== shown && typeof x.value === "number")
    .map(x => (x.channel_label || x.channel || "") + " " + format(x.value, x.unit) + (x.invalid ? "?" : "")).join(" · ");
}

// renderNumerics redraws the tiles; it returns what each shows, for the tests.
export function renderNumerics(feed, root) {
  const shown = {};
  const now = hubNow();
  const els = [];
  for (const tile of tiles) {
    const v = tileView(feed, tile);
    if (!v && tile.hideEmpty) continue;
    const stale = v && !v.measured && now - v.at > staleAfter;
    const cls = ["tile", "c-" + tile.colour];
    if (v && v.alarm) cls.push("alarm-" + v.alarm);
    if (v && v.invalid) cls.push("invalid");
    if (stale) cls.push("stale");
    let note = "";
    if (v && v.invalid) note = t("view.invalid");
    else if (v && v.measured) note = t("view.measured", { t: clockTime(v.measured) });
    else if (stale) note = ago(v.at);
    shown[tile.id] = v ? v.text + (v.sub ? " " + v.sub : "") : "—";
    els.push(el("div", { class: cls.join(" "), dataset: { tile: tile.id, value: shown[tile.id] } },
      el("div", { class: "tile-head" }, el("span", { class: "tile-label" }, tile.label), el("span", { class: "tile-unit" }, v ? v.unit : "")),
      el("div", { class: "tile-value" }, v ? v.text : "—", v && v.invalid ? "?" : "", v && v.sub ? el("span", { class: "tile-sub" }, " " + v.sub) : null),
      el("div", { class: "tile-note" }, note),
      v && v.others ? el("div", { class: "tile-others" }, v.others) : null));
  }
  replace(root, els);
  return shown;
}

// renderAlarms lists the monitor's alarms (raised first, by priority) and the device
// events that mean a signal cannot be trusted (lead off, sensor off, monitor gone).
export function renderAlarms(feed, root) {
  const items = feed.alarmList(hubNow()).map(a =>
    el("li", { class: "alarm p-" + (a.priority || "none") + (a.state === "cleared" ? " cleared" : "") },
      el("span", { class: "prio" }, t("alarm." + (a.priority || "none"))),
      el("span", { class: "text" }, a.text || ""),
      a.label ? el("span", { class: "muted" }, " " + a.label) : null,
      el("span", { class: "when muted" }, clockTime(a.at, true) + (a.state === "cleared" ? " · " + t("alarm.cleared") : ""))));
  for (const d of feed.devices.values()) {
    if (d.state === "connected" || d.state === "sensor-on") continue;
    items.push(el("li", { class: "alarm p-device" },
      el("span", { class: "prio" }, t("view.device")),
      el("span", { class: "text" }, t("dev." + d.state) + (d.label ? " · " + d.label : "")),
      el("span", { class: "when muted" }, clockTime(d.at, true))));
  }
  if (!items.length) items.push(el("li", { class: "alarm none muted" }, t("view.noAlarms")));
  replace(root, items);
}
