// ecg: the crew's 12-lead ECG button and the acquisitions, the crew's and the ones a
// doctor asked for, with their state: acquiring, sent to the hospital, or failed and why.
import { $, el, raw, replace, sendJSON, errorText, unchanged } from "./dom.js";
import { t, time, lang } from "./i18n.js";

let ecgs = [];
let answer = null; // [key, vars] of what the last press got, until the list shows it

export function showECGs(list) {
  ecgs = list || [];
  render();
}

export function render() {
  if (unchanged("ecg", lang(), ecgs, answer)) return;
  replace($("ecg-answer"), answer ? t(...answer) : null);
  const list = $("ecgs");
  if (ecgs.length === 0) {
    replace(list, el("li", { class: "empty" }, t("ecg.none")));
    return;
  }
  replace(list, ecgs.slice().reverse().map(row));
}

function row(e) {
  const who = e.ref ? t("ecg.byHospital", { from: e.from || "?", time: time(e.requested) })
    : t("ecg.byCrew", { time: time(e.requested) });
  let state;
  switch (e.state) {
    case "acquiring": state = el("span", { class: "warn" }, t("ecg.acquiring")); break;
    case "queued": state = el("span", { class: "ok" }, t("ecg.queued")); break;
    case "failed": state = el("span", { class: "fail" }, t("ecg.failed", { e: e.detail || "?" })); break;
    default: state = raw(e.state);
  }
  return el("li", { class: "ecg " + e.state, dataset: { state: e.state, ref: String(e.ref || 0) } },
    el("div", { class: "ecg-state" }, state), el("div", { class: "ecg-who" }, who));
}

// mountECG wires the button: the box starts the acquisition at once and the list shows
// it from the next refresh on.
export function mountECG(refresh) {
  const button = $("ecg-button");
  button.addEventListener("click", async () => {
    button.disabled = true;
    answer = ["ecg.requesting"];
    render();
    try {
      const res = await sendJSON("POST", "/api/v1/crew/ecg", {});
      answer = res.ok ? null : ["ecg.requestFailed", { e: errorText(res) }];
    } catch (e) {
      answer = ["ecg.requestFailed", { e: String(e) }];
    }
    button.disabled = false;
    await refresh();
    render();
  });
}
