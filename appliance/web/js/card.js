// card: the crew's patient card, with big toggle buttons a gloved finger can hit in a
// moving ambulance. Nothing is required: an empty field is "not said", never "normal".
// Save keeps the card on the box's disk and queues it for the hospital's board.
import { $, el, replace, sendJSON, errorText, unchanged } from "./dom.js";
import { t, time, lang, onLang } from "./i18n.js";

// The values the box takes (stream/vitals: AgeBands, Sexes, Suspicions).
const ageBands = ["<1", "1-4", "5-12", "13-17", "18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+"];
const sexes = ["female", "male", "unknown"];
const conditions = ["stemi", "stroke", "major_trauma", "sepsis", "cardiac_arrest"];
const triageLevels = [1, 2, 3, 4, 5];
const lkwQuick = [["lkw.now", 0], ["lkw.minus30", 30], ["lkw.minus60", 60], ["lkw.minus120", 120]];

// form is what the crew has entered, saved or not.
const form = { age_band: "", sex: "", suspected: [], triage: 0, complaint: "", lkw: null };
let dirty = false; // entered and not saved: the box's copy must not overwrite it
let saved = null; // the box's card
let answer = null; // [key, vars, cls] of the last save; vars.at is formatted when shown

// showCard takes the card of GET /api/v1/crew: into the form, unless the crew is
// entering one.
export function showCard(card) {
  saved = card || {};
  if (!dirty) load(saved);
  render();
}

function load(card) {
  form.age_band = card.age_band || "";
  form.sex = card.sex || "";
  form.suspected = (card.suspected || []).slice();
  form.triage = card.triage || 0;
  form.complaint = card.complaint || "";
  form.lkw = card.last_known_well ? new Date(card.last_known_well) : null;
  const complaint = $("card-complaint");
  if (complaint.value !== form.complaint) complaint.value = form.complaint;
}

function changed() {
  dirty = true;
  answer = null;
  render();
}

// choice is one toggle button, named by the value it stands for; pressed shows what the
// form holds.
function choice(value, text, pressed, onclick, extra) {
  return el("button", {
    type: "button", class: "choice " + (extra || ""), dataset: { choice: String(value) },
    "aria-pressed": pressed ? "true" : "false", onclick,
  }, text);
}

// single toggles a field that takes one value: a second tap on the chosen one clears it.
function single(field, value) {
  return () => {
    form[field] = form[field] === value ? (typeof value === "number" ? 0 : "") : value;
    changed();
  };
}

function toggleCondition(c) {
  return () => {
    const i = form.suspected.indexOf(c);
    if (i >= 0) form.suspected.splice(i, 1);
    else form.suspected = conditions.filter((x) => x === c || form.suspected.includes(x));
    // The box refuses a last-known-well time without a suspected stroke.
    if (!form.suspected.includes("stroke")) form.lkw = null;
    changed();
  };
}

export function render() {
  const minute = Math.floor(Date.now() / 60000); // the last-known-well's "minutes ago"
  if (unchanged("card", lang(), form, dirty, saved, answer, minute)) return;
  replace($("card-age"), ageBands.map((b) => choice(b, t("age.band", { v: b }), form.age_band === b, single("age_band", b))));
  replace($("card-sex"), sexes.map((s) => choice(s, t("sex." + s), form.sex === s, single("sex", s))));
  replace($("card-suspected"), conditions.map((c) => choice(c, t("cond." + c), form.suspected.includes(c), toggleCondition(c), "cond-" + c)));
  replace($("card-triage"), triageLevels.map((n) => choice(n, t("triage.level", { n }), form.triage === n, single("triage", n), "triage-" + n)));
  renderLKW();
  const [key, vars, cls] = answer || [];
  replace($("card-answer"), answer ? el("span", { class: cls }, t(key, { ...vars, time: time(vars.at) })) : null);
  const status = $("card-status");
  if (dirty) replace(status, el("span", { class: "warn" }, t("card.dirty")));
  else if (saved && saved.updated) replace(status, t("card.lastSaved", { time: time(saved.updated) }));
  else replace(status);
}

function renderLKW() {
  const stroke = form.suspected.includes("stroke");
  $("card-lkw").hidden = !stroke;
  if (!stroke) return;
  const input = $("card-lkw-time");
  const shown = form.lkw ? hhmm(form.lkw) : "";
  if (input.value !== shown && document.activeElement !== input) input.value = shown;
  replace($("card-lkw-quick"), lkwQuick.map(([key, minutes]) =>
    choice("lkw-" + minutes, t(key), false, () => setLKW(new Date(Date.now() - minutes * 60000)))),
  choice("lkw-clear", t("lkw.clear"), false, () => setLKW(null)));
  replace($("card-lkw-ago"), form.lkw ? t("lkw.ago", { n: Math.max(0, Math.round((Date.now() - form.lkw) / 60000)) }) : null);
}

function setLKW(at) {
  form.lkw = at;
  $("card-lkw-time").value = at ? hhmm(at) : "";
  changed();
}

function hhmm(d) {
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}

// lkwFromInput reads the time picker as the latest such time not in the future: a
// patient last seen well at 23:40 when it is now 00:30 was seen yesterday.
function lkwFromInput(value) {
  const m = /^(\d\d):(\d\d)/.exec(value);
  if (!m) return null;
  const now = new Date();
  const at = new Date(now.getFullYear(), now.getMonth(), now.getDate(), Number(m[1]), Number(m[2]));
  if (at - now > 60000) at.setDate(at.getDate() - 1);
  return at;
}

// body is the card as the box takes it: only the fields the crew gave.
function body() {
  const card = {};
  if (form.age_band) card.age_band = form.age_band;
  if (form.sex) card.sex = form.sex;
  if (form.suspected.length) card.suspected = form.suspected;
  if (form.triage) card.triage = form.triage;
  const complaint = form.complaint.trim();
  if (complaint) card.complaint = complaint;
  if (form.lkw && form.suspected.includes("stroke")) card.last_known_well = form.lkw.toISOString();
  return card;
}

async function save(ev) {
  ev.preventDefault();
  const button = $("card-save");
  button.disabled = true;
  answer = ["card.saving", {}, "warn"];
  render();
  try {
    const res = await sendJSON("PUT", "/api/v1/crew/card", body());
    if (res.ok) {
      dirty = false;
      saved = res.body.card || {};
      load(saved);
      const at = { at: saved.updated || new Date().toISOString() };
      answer = res.body.queued_for_hospital ? ["card.savedQueued", at, "ok"] : ["card.savedLocal", at, "warn"];
    } else {
      answer = ["card.refused", { e: errorText(res) }, "fail"];
    }
  } catch (e) {
    answer = ["card.refused", { e: String(e) }, "fail"];
  }
  button.disabled = false;
  render();
}

export function mountCard() {
  $("card").addEventListener("submit", save);
  // The next patient: an empty form, sent to the hospital only when saved.
  $("card-clear").addEventListener("click", () => {
    load({});
    changed();
  });
  $("card-complaint").addEventListener("input", (ev) => {
    form.complaint = ev.target.value;
    dirty = true;
    answer = null;
    // Not a full render: that would redraw the buttons under the crew's keyboard.
    replace($("card-status"), el("span", { class: "warn" }, t("card.dirty")));
    replace($("card-answer"));
  });
  $("card-lkw-time").addEventListener("change", (ev) => {
    form.lkw = lkwFromInput(ev.target.value);
    changed();
  });
  onLang(render);
  render();
}
