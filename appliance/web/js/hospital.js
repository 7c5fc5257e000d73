// hospital: the doctors' messages to the crew, newest first and large. A new one rings
// and stays highlighted until the crew taps "Read", which sends the hospital a read
// receipt: the doctor then knows the crew saw it.
import { $, el, raw, replace, sendJSON, errorText, unchanged } from "./dom.js";
import { t, time, lang } from "./i18n.js";
import { chime } from "./sound.js";

let messages = [];
let seen = null; // seqs already shown, so that only a new message rings
const answers = new Map(); // seq → what the last tap on Read got: [key, vars] of its words
const sending = new Set();

// showMessages takes the messages of GET /api/v1/crew (oldest first) and whether the
// box streams to a hospital at all.
export function showMessages(list, streaming) {
  messages = list || [];
  $("not-streaming").hidden = streaming !== false;
  const fresh = messages.filter((m) => !m.read && (seen === null || !seen.has(m.seq)));
  seen = new Set(messages.map((m) => m.seq));
  if (fresh.length > 0) chime(false);
  render();
}

export function render() {
  if (unchanged("hospital", lang(), messages, [...answers], [...sending])) return;
  const list = $("hospital-messages");
  if (messages.length === 0) {
    replace(list, el("li", { class: "empty" }, t("hospital.none")));
    return;
  }
  replace(list, messages.slice().reverse().map(row));
}

function row(m) {
  const answer = answers.get(m.seq);
  let action;
  if (m.read) {
    action = el("span", { class: "was-read" }, t("hospital.wasRead"));
  } else {
    action = el("button", {
      class: "read", type: "button", dataset: { seq: String(m.seq) },
      disabled: sending.has(m.seq), onclick: () => confirmRead(m.seq),
    }, t("hospital.read"));
  }
  return el("li", { class: m.read ? "message" : "message unread", dataset: { seq: String(m.seq) } },
    el("div", { class: "message-head" },
      m.read ? null : el("span", { class: "badge" }, t("hospital.new")),
      el("span", { class: "from" }, t("hospital.from", { from: m.from || "?", time: time(m.hub_time) })),
      action),
    el("p", { class: "message-text" }, raw(m.text)),
    answer ? el("p", { class: "answer fail" }, t(...answer)) : null);
}

// confirmRead sends the read receipt. Without a live stream the box cannot, and says so
// (503); the crew sees that in words, and the message stays highlighted.
async function confirmRead(seq) {
  sending.add(seq);
  answers.delete(seq);
  render();
  try {
    const res = await sendJSON("POST", "/api/v1/crew/messages/" + encodeURIComponent(seq) + "/read", {});
    if (res.ok) {
      const m = messages.find((x) => x.seq === seq);
      if (m) m.read = true;
    } else if (res.status === 503) {
      answers.set(seq, ["hospital.readNoStream"]);
    } else {
      answers.set(seq, ["hospital.readFailed", { e: errorText(res) }]);
    }
  } catch (e) {
    answers.set(seq, ["hospital.readFailed", { e: String(e) }]);
  }
  sending.delete(seq);
  render();
}
