// health: whether the box is ready (the banner), its services, the power-on self-test,
// and the images the hub did not take, each with a Retry button.
import { $, el, raw, replace, getJSON, sendJSON, errorText, unchanged } from "./dom.js";
import { t, has, lang, time, dateTime } from "./i18n.js";

let status = null;
let unreachable = null; // why the last read of the status failed

export async function refreshStatus() {
  try {
    const r = await fetch("/api/v1/status", { cache: "no-store" });
    status = await r.json();
    unreachable = null;
  } catch (e) {
    unreachable = String(e);
  }
  renderStatus();
}

// word translates one of the box's words under prefix, or shows it as the box sent it
// when the page does not know it yet.
function word(prefix, value) {
  return has(prefix + value) ? t(prefix + value) : raw(value);
}

function cell(content, cls) {
  return el("td", { class: cls }, content);
}

export function renderStatus() {
  const banner = $("banner");
  const text = $("banner-text");
  if (unreachable !== null) {
    banner.className = "failed";
    replace(text, t("banner.unavailable", { e: unreachable }));
    return;
  }
  if (!status) {
    replace(text, t("banner.loading"));
    return;
  }
  banner.className = status.overall;
  const device = status.device || t("banner.unenrolled");
  const state = has("overall." + status.overall) ? t("overall." + status.overall) : status.overall;
  replace(text, t("banner.text", { device, state }));
  replace($("services"), (status.services || []).map((s) => el("tr", {},
    cell(raw(s.name)), cell(word("state.", s.state), s.state), cell(raw(s.detail)), cell(raw(s.last_error)))));
  replace($("selftest"), (status.self_test || []).map((c) => el("tr", {},
    cell(word("check.", c.name)), cell(word("result.", c.result), c.result), cell(raw(c.detail)))));
  replace($("footer"), t("footer", { version: status.version, since: dateTime(status.started_at), now: time(new Date()) }));
}

let deadLetters = [];
const retries = new Map(); // SOP Instance UID → [key, vars] of its retry's outcome

export async function refreshDeadLetters() {
  try {
    const list = await getJSON("/api/v1/dead-letters");
    deadLetters = list || [];
  } catch {
    return; // the banner reports an unreachable box
  }
  renderDeadLetters();
}

export function renderDeadLetters() {
  if (unchanged("deadletters", lang(), deadLetters, [...retries])) return;
  $("deadletters-section").hidden = deadLetters.length === 0;
  replace($("deadletters"), deadLetters.map((d) => {
    const outcome = retries.get(d.sop_instance_uid);
    const button = el("button", {
      type: "button", class: "retry", dataset: { sop: d.sop_instance_uid }, disabled: outcome !== undefined,
      onclick: () => retry(d.sop_instance_uid),
    }, outcome ? t(...outcome) : t("dl.retry"));
    return el("tr", {}, cell(raw(d.sop_instance_uid, "uid")), cell(raw(d.study_uid, "uid")),
      cell(raw(dateTime(d.at))), cell(raw(d.reason)), cell(button));
  }));
}

// retry asks the box to send one image again; the list drops it once the box has.
async function retry(sop) {
  retries.set(sop, ["dl.retrying"]);
  renderDeadLetters();
  try {
    const res = await sendJSON("POST", "/api/v1/dead-letters/" + encodeURIComponent(sop) + "/retry", {});
    retries.set(sop, res.ok ? ["dl.sent"] : ["dl.failed", { e: errorText(res) }]);
  } catch (e) {
    retries.set(sop, ["dl.failed", { e: String(e) }]);
  }
  renderDeadLetters();
  setTimeout(() => {
    retries.delete(sop);
    refreshDeadLetters();
  }, 1500);
}
