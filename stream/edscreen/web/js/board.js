// board: every box that is live or on its way, refreshed from the hub every 1.5 s
// without a reload, with a sound and a red banner for each STEMI or stroke pre-alert
// until someone acknowledges it.
import { t, has, apply, onLang, toggleButton, useAccount } from "./i18n.js";
import { el, replace } from "./dom.js";
import { syncTo, ago, eta, clockTime } from "./clock.js";
import { patientCard, preAlerts } from "./card.js";
import { beep, soundBlocked, unlock, stats as soundStats } from "./alert.js";
import { signedOut } from "./session.js";

const refreshEvery = 1500; // ms between board requests
const requestTimeout = 5000; // a request that takes longer counts as lost contact
const lostAfter = 5000; // no fresh board for this long: say the board may be out of date
const repeatAlertEvery = 30000; // an unacknowledged pre-alert sounds again

let last = null; // the last board the hub sent
let lastOK = 0;
const ackKey = "lifeline.ed.acked";
const acked = new Set(JSON.parse(localStorage.getItem(ackKey) || "[]"));
const sounded = new Map(); // alert key → when it last sounded

// Debug state the tests and operators read: what the board shows and what it did.
window.edBoard = { polls: 0, failures: 0, alerts: [], beeps: () => soundStats.beeps };

function alertKey(box, cond) {
  const p = box.patient || {};
  return box.device + "|" + cond + "|" + (p.updated || "");
}

async function poll() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), requestTimeout);
  try {
    const res = await fetch("api/boxes", { signal: ctl.signal, credentials: "same-origin", cache: "no-store" });
    if (signedOut(res) || !res.ok) throw new Error("board: " + res.status);
    last = await res.json();
    syncTo(last.server_time);
    lastOK = Date.now();
    window.edBoard.polls++;
  } catch (e) {
    window.edBoard.failures++;
  } finally {
    clearTimeout(timer);
  }
  render();
  setTimeout(poll, refreshEvery);
}

function render() {
  const lost = lastOK ? Date.now() - lastOK > lostAfter : window.edBoard.failures > 0;
  document.getElementById("hub-lost").hidden = !lost;
  if (!last) return;
  document.getElementById("updated").textContent = t("board.updated", { t: clockTime(lastOK, true) });
  const boxes = last.boxes || [];
  replace(document.getElementById("boxes"), boxes.map(row));
  document.getElementById("empty").hidden = boxes.length > 0;
  renderAlerts(boxes);
}

function row(b) {
  const link = b.link && b.link.quality;
  const mission = b.mission ? (has("mission." + b.mission) ? t("mission." + b.mission) : b.mission) : "—";
  return el("li", { class: "box" + (b.alert ? " alerting" : "") + (b.live ? " live" : ""), dataset: { device: b.device } },
    el("a", { href: "box/" + encodeURIComponent(b.device), class: "box-link" },
      el("div", { class: "unit" },
        el("span", { class: "unit-name" }, b.name || b.device),
        b.name ? el("span", { class: "unit-device muted" }, b.device) : null,
        el("span", { class: "badge " + (b.live ? "on" : "off") }, t(b.live ? "live.on" : "live.off")),
        b.hub ? el("span", { class: "unit-hub muted small" }, t("live.at", { hub: b.hub })) : null),
      el("div", { class: "link q-" + (link || "unknown"), dataset: { label: t("col.link") } }, link ? (has("link." + link) ? t("link." + link) : link) : "—",
        b.link && b.link.rtt_ms ? el("span", { class: "muted small" }, " " + Math.round(b.link.rtt_ms) + " ms") : null),
      el("div", { class: "contact", dataset: { label: t("col.contact") } }, ago(b.last_contact)),
      el("div", { class: "eta", dataset: { label: t("col.eta") } }, eta(b.eta)),
      el("div", { class: "mission", dataset: { label: t("col.mission") } }, mission),
      el("div", { class: "patient" }, patientCard(b.patient))));
}

function renderAlerts(boxes) {
  const active = [];
  for (const b of boxes) {
    for (const c of preAlerts(b.patient)) {
      const key = alertKey(b, c);
      if (!acked.has(key)) active.push({ key, box: b, cond: c });
    }
  }
  window.edBoard.alerts = active.map(a => ({ device: a.box.device, condition: a.cond }));
  replace(document.getElementById("alerts"), active.map(a =>
    el("div", { class: "banner alert alert-" + a.cond, role: "alert" },
      el("span", { class: "alert-text" }, (a.box.name || a.box.device) + " · " + t("alert." + a.cond)),
      el("span", { class: "alert-eta" }, eta(a.box.eta)),
      el("button", { class: "btn ack", onclick: () => acknowledge(a.key) }, t("board.ack")))));
  const now = Date.now();
  let sound = false;
  for (const a of active) {
    if (now - (sounded.get(a.key) || 0) >= repeatAlertEvery) {
      sounded.set(a.key, now);
      sound = true;
    }
  }
  if (sound) beep();
  document.getElementById("sound").hidden = !(active.length && soundBlocked());
}

function acknowledge(key) {
  acked.add(key);
  // Bounded: a wall screen runs for months.
  const list = [...acked].slice(-500);
  localStorage.setItem(ackKey, JSON.stringify(list));
  render();
}

apply(document);
toggleButton(document.getElementById("lang"));
// The signed-in account's language, and the anti-CSRF header to change it with.
fetch("api/me", { credentials: "same-origin", cache: "no-store" })
  .then(res => (res.ok ? res.json() : null))
  .then(me => me && useAccount(me.language, me.csrf_header ? { [me.csrf_header]: me.csrf_token } : {}))
  .catch(() => {});
onLang(render);
document.getElementById("sound").addEventListener("click", async () => {
  await unlock();
  render();
});
poll();
