// crew: the view's conversation with the ambulance crew. Doctors send guidance and ask
// for a 12-lead ECG; everybody signed in sees the messages with their receipts (sent,
// delivered to the box, read by the crew) and the ECGs as they are acquired, sent and
// arrive. The hub keeps the conversation; this module polls it every 2 s.
import { el, replace } from "./dom.js";
import { clockTime } from "./clock.js";

const stats = { polls: 0, failures: 0, sent: 0, ecgRequests: [], ecgShown: {} };

// post sends a state-changing request with the view's anti-CSRF headers.
async function post(ctx, path, body) {
  const res = await fetch(ctx.api + path, {
    method: "POST", credentials: "same-origin", cache: "no-store",
    headers: { ...ctx.headers, "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  });
  if (!res.ok) throw new Error((await res.text()).trim() || String(res.status));
  return res.json();
}

function receipt(t, n) {
  if (n.read) return el("span", { class: "receipt read" }, "✓✓ " + t("crew.read"));
  if (n.delivered) return el("span", { class: "receipt delivered" }, "✓ " + t("crew.delivered"));
  return el("span", { class: "receipt sent" }, t("crew.sent"));
}

function ecgState(t, e, atHub) {
  if (e.state === "failed") return t("ecg.failed", { e: e.detail || "" });
  if (e.state === "acquiring") return t("ecg.acquiring");
  return atHub ? t("ecg.atHub") : t("ecg.queued");
}

export const crew = {
  id: "crew",

  mount(ctx) {
    const { t } = ctx;
    window.edView.crew = stats;
    let record = { notes: [], ecgs: [] };
    const atHub = {}; // sop → true once the hub has the ECG
    const box = el("section", { class: "crew-box", id: "crew" });
    ctx.panel.append(box);
    const status = el("p", { class: "crew-status muted", id: "crew-status" });

    let input = null;
    if (ctx.me.may_talk) {
      input = el("textarea", { id: "crew-text", rows: "2", maxlength: "1000", placeholder: t("crew.placeholder") });
      const send = el("button", { class: "btn primary", id: "crew-send", onclick: async () => {
        const text = input.value.trim();
        if (!text) return;
        send.disabled = true;
        try {
          await post(ctx, "/messages", { text });
          stats.sent++;
          input.value = "";
          status.textContent = "";
          await poll();
        } catch (e) {
          status.textContent = t("crew.failed", { e: e.message });
        }
        send.disabled = false;
      } }, t("crew.send"));
      const ecg = el("button", { class: "btn", id: "ecg12", onclick: async () => {
        ecg.disabled = true;
        stats.ecgRequests.push({ at: Date.now() });
        try {
          const n = await post(ctx, "/ecg12");
          stats.ecgRequests[stats.ecgRequests.length - 1].ref = n.seq;
          await poll();
        } catch (e) {
          status.textContent = t("ecg.failed", { e: e.message });
        }
        ecg.disabled = false;
      } }, t("ecg.request"));
      ctx.toolbar.append(ecg);
      ctx.crewInput = { input, send };
    }

    function render() {
      const notes = (record.notes || []).filter(n => n.type === "text").slice().reverse();
      const msgs = notes.length ? notes.map(n => el("li", { class: "note", dataset: { seq: n.seq } },
        el("span", { class: "when" }, clockTime(n.sent)), " ",
        el("span", { class: "from" }, n.from), "：", el("span", { class: "text" }, n.text), " ", receipt(t, n)))
        : [el("li", { class: "muted" }, t("crew.none"))];
      const ecgs = (record.ecgs || []).slice().reverse();
      const ecgRows = ecgs.length ? ecgs.map(e => el("li", { class: "ecg ecg-" + e.state, dataset: { ref: e.ref || 0, sop: e.sop || "" } },
        el("span", { class: "when" }, clockTime(e.started)), " ",
        e.ref ? t("ecg.requestedBy", { who: noteFrom(e.ref) }) : t("ecg.byCrew"), " · ",
        el("span", { class: "state" }, ecgState(t, e, atHub[e.sop])),
        atHub[e.sop] ? el("a", { class: "btn", href: "../ecg/" + encodeURIComponent(ctx.device) + "/" + encodeURIComponent(e.sop), target: "_blank" }, t("ecg.open")) : null))
        : [el("li", { class: "muted" }, t("ecg.none"))];
      replace(box,
        el("h2", {}, t("crew.title")),
        el("ul", { class: "notes", id: "crew-notes" }, msgs),
        input ? el("div", { class: "crew-compose" }, input, ctx.crewInput.send) : el("p", { class: "muted" }, t("crew.watchOnly")),
        status,
        el("h2", {}, t("ecg.list")),
        el("ul", { class: "ecgs", id: "ecg-list" }, ecgRows));
    }

    function noteFrom(seq) {
      const n = (record.notes || []).find(x => x.seq === seq);
      return n ? n.from : "—";
    }

    // fetchECGs asks the hub for each sent ECG until it has it: the moment it has is
    // when the doctor can read it (the benchmark's end point).
    async function fetchECGs() {
      for (const e of record.ecgs || []) {
        if (e.state !== "queued" || !e.sop || atHub[e.sop]) continue;
        const res = await fetch(ctx.api + "/ecg/" + encodeURIComponent(e.sop), { credentials: "same-origin", cache: "no-store" });
        if (!res.ok) continue;
        const doc = await res.json();
        atHub[e.sop] = true;
        stats.ecgShown[e.sop] = { at: Date.now(), ref: e.ref, leads: doc.labels.length, samples: doc.samples[0].length, rate: doc.rate };
      }
    }

    async function poll() {
      try {
        const res = await fetch(ctx.api + "/crew", { credentials: "same-origin", cache: "no-store" });
        if (!res.ok) throw new Error(String(res.status));
        record = await res.json();
        stats.polls++;
        stats.notes = record.notes;
        stats.ecgs = record.ecgs;
        await fetchECGs();
      } catch {
        stats.failures++;
      }
      render();
    }
    ctx.onLang(render);
    render();
    poll();
    // Faster while an ECG is on its way: the doctor is waiting for it.
    const tick = () => {
      const waiting = (record.ecgs || []).some(e => e.state === "acquiring" || (e.state === "queued" && !atHub[e.sop]));
      setTimeout(() => poll().then(tick), waiting ? 500 : 2000);
    };
    tick();
  },
};
