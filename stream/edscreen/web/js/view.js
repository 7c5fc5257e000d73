// view: one box's patient view. It loads the box's summary and the vitals since
// pick-up from the hub's history, then joins the live stream over WHEP (video, audio,
// the vitals channels) and keeps everything current: waves every animation frame,
// numerics and alarms every second, trends every two, the card every five.
import { t, has, apply, onLang, toggleButton, useAccount } from "./i18n.js";
import { el, replace } from "./dom.js";
import { syncTo, eta, ago, hubNow } from "./clock.js";
import { patientCard, preAlerts } from "./card.js";
import { beep } from "./alert.js";
import { Feed } from "./feed.js";
import { Waves } from "./waves.js";
import { Viewer } from "./whep.js";
import { renderNumerics, renderAlarms } from "./numerics.js";
import { drawTrends } from "./trends.js";
import { pxPerMm, onCalibration } from "./calibration.js";
import { openSettings } from "./settings.js";
import { modules } from "./modules.js";
import { signedOut } from "./session.js";

const device = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const api = "../api/box/" + encodeURIComponent(device);
const $ = id => document.getElementById(id);

const feed = new Feed();
const waves = new Waves($("waves"), pxPerMm());
let box = null;
let viewer = null;
let historyDone = false;
const early = []; // live reliable messages that came before the history was read
let alerted = null; // the pre-alert shown, null before the first render

// The debug object tests and operators read.
window.edView = {
  device, state: "loading", history: 0, historyError: null, live: { vitals: 0, wave: 0, bad: 0 },
  waves: waves.stats, numerics: {}, feed: feed.counts, trendPoints: 0,
  videoStats: () => (viewer ? viewer.videoStats() : null),
  pickUp: () => feed.firstTime, // the box time of the first message the view holds
  connects: () => (viewer ? viewer.attempts : 0),
};

async function loadBox() {
  const res = await fetch(api, { credentials: "same-origin", cache: "no-store" });
  signedOut(res);
  if (!res.ok) throw new Error((await res.text()).trim() || String(res.status));
  const v = await res.json();
  syncTo(v.server_time);
  return v;
}

// loadMe says who is signed in, their language, and whether they may talk to crews;
// a hub without the crew's desk answers 404, and the view is then watch-only.
async function loadMe() {
  try {
    const res = await fetch("../api/me", { credentials: "same-origin", cache: "no-store" });
    if (res.ok) return await res.json();
  } catch {
    // Watch-only below.
  }
  return { may_talk: false };
}

// loadHistory reads every page of the box's reliable vitals the hub holds.
async function loadHistory(url) {
  let after = "";
  for (let page = 0; page < 1000; page++) {
    const q = new URLSearchParams({ channel: "vitals", limit: "1000" });
    if (after) q.set("after", after);
    const res = await fetch(url + "?" + q, { credentials: "same-origin", cache: "no-store" });
    signedOut(res);
    if (!res.ok) throw new Error("history: " + res.status + " " + (await res.text()).trim());
    const p = await res.json();
    for (const m of p.messages || []) if (feed.take(m)) window.edView.history++;
    after = p.next;
    if (!p.more) return;
  }
}

let lastArrival = 0; // when the last vitals message of either channel arrived

function onMessage(label, data) {
  lastArrival = Date.now();
  let m;
  try {
    m = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
  } catch {
    window.edView.live.bad++;
    return;
  }
  if (label === "vitals-wave") {
    window.edView.live.wave++;
    waves.take(m);
  } else if (label === "vitals") {
    window.edView.live.vitals++;
    if (historyDone) {
      feed.take(m);
      if (m.type === "numeric" || m.type === "alarm") drawSoon(m);
    } else if (early.length < 100000) early.push(m);
  }
}

// drawSoon redraws the numerics and alarms in the next animation frame after a value
// arrives, rather than on the once-a-second tick: an alarm colour must not wait. It
// also notes when each numeric was drawn (by its code and monitor time), which the
// benchmark reads to measure the monitor-to-pixel latency.
const drawnAt = new Map();
const arrived = [];
let drawQueued = false;
function drawSoon(m) {
  arrived.push(m);
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    window.edView.numerics = renderNumerics(feed, $("numerics"));
    renderAlarms(feed, $("alarms"));
    const at = performance.timeOrigin + performance.now();
    for (const x of arrived.splice(0)) {
      if (x.type === "numeric" && x.monitor_time) drawnAt.set(x.mdc + "@" + Date.parse(x.monitor_time), at);
    }
    while (drawnAt.size > 5000) drawnAt.delete(drawnAt.keys().next().value);
  });
}
window.edView.drawnAt = () => Object.fromEntries(drawnAt);

function onTrack(track, streams) {
  const target = track.kind === "video" ? $("video") : $("audio");
  target.srcObject = streams && streams[0] ? streams[0] : new MediaStream([track]);
  if (track.kind === "video") {
    $("no-video").hidden = true;
    // When the first frame was shown (the wall clock, ms): the time from opening a
    // box to its picture, which the multi-hub test measures with and without a
    // hand-over.
    const first = () => (window.edView.firstFrameAt = window.edView.firstFrameAt || Date.now());
    if (target.requestVideoFrameCallback) target.requestVideoFrameCallback(first);
    target.addEventListener("loadeddata", first, { once: true });
  }
  // The crew's sound may only start after a touch where the browser's autoplay
  // policy says so: offer the button then.
  if (track.kind === "audio") target.play().catch(() => ($("sound").hidden = false));
}

function onState(state, detail) {
  window.edView.state = state;
  if (detail) window.edView.lastError = detail;
  const key = { connecting: "view.connecting", connected: "view.connected", reconnecting: "view.reconnecting", failed: "view.reconnecting" }[state];
  $("conn").textContent = t(key);
  $("conn").className = "badge " + (state === "connected" ? "on" : "off");
}

function renderBox() {
  if (!box) return;
  const b = box.box;
  $("unit").textContent = b.name || b.device;
  $("eta").textContent = eta(b.eta);
  $("mission").textContent = b.mission ? (has("mission." + b.mission) ? t("mission." + b.mission) : b.mission) : "—";
  replace($("card"), patientCard(b.patient));
  const alerts = preAlerts(b.patient);
  $("alert").hidden = alerts.length === 0;
  $("alert").textContent = alerts.map(c => t("alert." + c)).join(" · ");
  // Sound when a pre-alert appears or changes while the doctor watches; opening the
  // view of a box the board already announced stays quiet.
  const key = alerts.join(",") + "|" + ((b.patient && b.patient.updated) || "");
  if (alerts.length && alerted !== null && key !== alerted) beep();
  alerted = alerts.length ? key : "";
}

// noData says so in the header when nothing has arrived for 3 s while connected: the
// box's link is down or its monitor silent, and the screen must not look live.
function noData() {
  const silent = lastArrival !== 0 && Date.now() - lastArrival > 3000;
  $("nodata").hidden = !silent;
  if (silent) $("nodata").textContent = t("view.gap") + " · " + ago(lastArrival - Date.now() + hubNow());
  window.edView.noData = silent;
}

function everySecond() {
  noData();
  waves.tick(1);
  window.edView.numerics = renderNumerics(feed, $("numerics"));
  renderAlarms(feed, $("alarms"));
}

function frame() {
  waves.draw();
  requestAnimationFrame(frame);
}

async function refreshBox() {
  try {
    box = await loadBox();
    renderBox();
  } catch (e) {
    window.edView.boxError = String(e.message || e);
  }
}

// handOver takes the doctor to the hub the box publishes to, signed in there with a
// one-time sign-in this hub mints for the same account: the video then comes from
// that hub directly. A hub that offers no hand-over says where the box is watched.
async function handOver(v, headers) {
  const hub = v.box.hub;
  window.edView.state = "handover";
  $("conn").textContent = t("view.handover", { hub });
  const failed = msg => {
    window.edView.state = "handover-failed";
    window.edView.lastError = msg;
    $("conn").textContent = t("view.handoverFailed", { hub, err: msg });
  };
  if (!v.handover) return failed("—");
  try {
    const res = await fetch(v.handover, { method: "POST", headers, credentials: "same-origin", cache: "no-store" });
    if (signedOut(res)) return;
    const body = await res.json();
    if (!res.ok) return failed(body.error || String(res.status));
    location.replace(body.url);
  } catch (e) {
    failed(String(e.message || e));
  }
}

async function main() {
  apply(document);
  toggleButton($("lang"));
  onLang(() => { renderBox(); everySecond(); waves.relabel(); });
  onCalibration(v => waves.resize(v));
  $("settings").addEventListener("click", openSettings);
  $("sound").addEventListener("click", () => $("audio").play().then(() => ($("sound").hidden = true), () => {}));
  try {
    box = await loadBox();
  } catch (e) {
    window.edView.state = "not-live";
    $("conn").textContent = t("view.notLive") + " (" + e.message + ")";
    return;
  }
  renderBox();
  // Modules send these headers with their own state-changing requests too.
  const headers = box.csrf_header && box.csrf_token ? { [box.csrf_header]: box.csrf_token } : {};
  if (box.box.hub) return handOver(box, headers);
  const me = await loadMe();
  useAccount(me.language, headers);
  const ctx = {
    device, t, onLang, headers, me, api, toolbar: $("toolbar"), panel: $("panels"), channels: null, pc: null,
    session: () => (viewer && viewer.location ? viewer.location.split("/").pop() : ""),
  };
  viewer = new Viewer(box.whep, headers, {
    onTrack, onMessage, onState, onResponse: signedOut,
    beforeOffer: (pc, channels) => {
      ctx.pc = pc;
      ctx.channels = channels;
      for (const m of modules) if (m.beforeOffer) m.beforeOffer(ctx);
    },
  });
  viewer.start(); // live channels buffer their reliable messages until the history is in
  requestAnimationFrame(frame);
  for (const m of modules) m.mount(ctx);
  try {
    await loadHistory(box.history);
  } catch (e) {
    window.edView.historyError = String(e.message || e);
  }
  historyDone = true;
  for (const m of early.splice(0)) feed.take(m);
  everySecond();
  setInterval(everySecond, 1000);
  const trends = () => (window.edView.trendPoints = drawTrends($("trends"), feed, hubNow()));
  trends();
  setInterval(trends, 2000);
  setInterval(refreshBox, 5000);
  addEventListener("resize", () => waves.resize(pxPerMm()));
  addEventListener("pagehide", () => viewer.stop());
}

main();
