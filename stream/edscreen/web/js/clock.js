// clock: times as the ED reads them, measured against the hub's clock so that a wall
// screen whose own clock is wrong still says the right "4 s ago".
import { t, lang } from "./i18n.js";

let skew = 0; // hub time minus this browser's time, in ms

// syncTo takes the hub's clock from a response's server_time.
export function syncTo(serverTime) {
  const ms = Date.parse(serverTime);
  if (!Number.isNaN(ms)) skew = ms - Date.now();
}

// hubNow is the hub's time now, in ms since the epoch.
export function hubNow() {
  return Date.now() + skew;
}

// ago says how long ago a time was ("12 s ago"), "—" when unknown.
export function ago(time) {
  const ms = typeof time === "number" ? time : Date.parse(time || "");
  if (!time || Number.isNaN(ms)) return "—";
  const s = Math.max(0, Math.round((hubNow() - ms) / 1000));
  if (s < 120) return t("ago.s", { n: s });
  if (s < 7200) return t("ago.m", { n: Math.floor(s / 60) });
  return t("ago.h", { n: Math.floor(s / 3600) });
}

// clockTime is a wall-clock time, hours and minutes (and seconds when asked).
export function clockTime(time, seconds) {
  const ms = typeof time === "number" ? time : Date.parse(time || "");
  if (!time || Number.isNaN(ms)) return "—";
  const opts = { hour: "2-digit", minute: "2-digit", hour12: false };
  if (seconds) opts.second = "2-digit";
  return new Date(ms).toLocaleTimeString(lang(), opts);
}

// eta says when a unit arrives: "14:32 · in 6 min", "—" when dispatch has not said.
export function eta(time) {
  const ms = Date.parse(time || "");
  if (!time || Number.isNaN(ms)) return "—";
  const min = Math.round((ms - hubNow()) / 60000);
  return clockTime(ms) + " · " + (min <= 0 ? t("eta.now") : t("eta.in", { n: min }));
}
