// dispatch: the mission the crew sets with one tap, dispatch's texts (they ring), and
// where the ambulance is with its ETA and its mobile link. A box without a GNSS
// receiver, modem or dispatch link has none of these, and the section stays hidden.
import { $, el, raw, replace, getJSON, sendJSON, errorText, unchanged } from "./dom.js";
import { t, time, lang } from "./i18n.js";
import { chime, unlock } from "./sound.js";

// The mission states dispatch knows, in the order a mission goes through them.
const missionStates = ["dispatched", "en route", "on scene", "transporting", "at hospital", "available"];
const missionKey = (state) => "mission." + state.replace(/ /g, "_");

let report = null;
let missionAnswer = null; // what the last press got: {state} taken, or {error}

export async function refreshPosition() {
  try {
    report = await getJSON("/api/v1/position");
  } catch {
    return; // the banner reports an unreachable box
  }
  renderPosition();
}

function row(label, value, detail, cls) {
  return el("tr", {}, el("th", {}, label), el("td", { class: cls }, value), el("td", {}, detail));
}

export function renderPosition() {
  $("position-section").hidden = !report;
  if (!report) return;
  const p = report;
  const fixCls = { fixed: "ok", searching: "warn", lost: "warn", silent: "fail", none: "stopped" };
  const rows = [row(t("pos.gnss"), t("fix." + p.fix), null, fixCls[p.fix] || "")];
  if (p.position) {
    const at = p.position;
    rows.push(row(t("pos.position"), raw(at.lat.toFixed(5) + ", " + at.lon.toFixed(5) + " (" + at.datum + ")"),
      t("pos.satellites", { n: at.satellites, time: time(at.time) })));
    rows.push(row(t("pos.speed"), raw(p.speed_kmh.toFixed(0) + " km/h"),
      p.heading_deg != null ? t("pos.heading", { d: p.heading_deg.toFixed(0) }) : null));
  }
  const m = p.mission;
  rows.push(row(t("pos.mission"), t(missionKey(m.state)), t("pos.since", { time: time(m.since) })));
  if (p.destination) rows.push(row(t("pos.destination"), raw(p.destination.name)));
  if (p.eta) {
    rows.push(row(t("pos.eta"), t("pos.etaValue", { time: time(p.eta.arrival), m: Math.round(p.eta.remaining_s / 60) }),
      [t("pos.distance", { km: (p.eta.distance_m / 1000).toFixed(1) }), p.eta.speed_assumed ? [" · ", t("pos.speedAssumed")] : null]));
  }
  rows.push(linkRow(p.link));
  replace($("position"), rows);
  renderMission(m.state);
}

function renderMission(current) {
  if (unchanged("mission", lang(), current, missionAnswer)) return;
  replace($("mission-buttons"), missionStates.map((state) => el("button", {
    type: "button", class: state === current ? "current" : null, dataset: { state },
    onclick: () => setMission(state),
  }, t(missionKey(state)))));
  let answer = null;
  if (missionAnswer && missionAnswer.error !== undefined) answer = t("mission.refused", { e: missionAnswer.error });
  else if (missionAnswer) answer = t("mission.answer", { state: t(missionKey(missionAnswer.state)) });
  replace($("mission-answer"), answer);
}

function linkRow(l) {
  if (!l) return row(t("pos.link"), t("link.unknown"), null, "stopped");
  const bars = "▮".repeat(l.bars) + "▯".repeat(5 - l.bars);
  const dB = (v, u) => (v == null ? "" : v + " " + u);
  const detail = [l.operator, dB(l.rsrp_dbm, "dBm RSRP"), dB(l.rsrq_db, "dB RSRQ"), dB(l.sinr_db, "dB SINR")].filter(Boolean).join(" · ");
  return row(t("pos.link"), [l.technology ? raw(l.technology) : t("link.none"), " ", raw(bars, "bars")], raw(detail), l.bars >= 2 ? "ok" : "warn");
}

// setMission asks the box to change the mission.
async function setMission(state) {
  unlock();
  try {
    const res = await sendJSON("POST", "/api/v1/mission", { state });
    missionAnswer = res.ok ? { state: res.body.state || state } : { error: errorText(res) };
  } catch (e) {
    missionAnswer = { error: String(e) };
  }
  await refreshPosition();
}

let texts = [];
let lastText = null; // the newest text's id, so that only a new one rings

export async function refreshDispatchTexts() {
  let list;
  try {
    list = await getJSON("/api/v1/messages");
  } catch {
    return;
  }
  if (!list) return;
  if (list.length > 0) {
    const newest = list[list.length - 1].id;
    if (lastText !== null && newest > lastText) chime(list.some((m) => m.id > lastText && m.emergency));
    lastText = newest;
  } else if (lastText === null) {
    lastText = 0;
  }
  texts = list;
  renderDispatchTexts();
}

export function renderDispatchTexts() {
  if (unchanged("dispatch", lang(), texts)) return;
  const ul = $("messages");
  if (texts.length === 0) {
    replace(ul, el("li", { class: "empty" }, t("dispatch.none")));
    return;
  }
  replace(ul, texts.slice().reverse().map((m) => el("li", { class: m.emergency ? "emergency" : null },
    raw(time(m.time), "when"), " ", raw(m.text))));
}
