// card: the crew's patient card (age band, sex, complaint, suspected conditions with
// the stroke's last-known-well time, triage level), as the board and the view show it.
import { t } from "./i18n.js";
import { el } from "./dom.js";
import { ago, clockTime } from "./clock.js";

const known = ["stemi", "stroke", "major_trauma", "sepsis", "cardiac_arrest"];

// conditionLabel names a suspected condition; one the screen does not know is shown
// as the crew's box sent it.
export function conditionLabel(c) {
  return known.includes(c) ? t("cond." + c) : c;
}

// preAlerts lists the pre-alert conditions (STEMI, stroke) a card suspects.
export function preAlerts(p) {
  return ((p && p.suspected) || []).filter(c => c === "stemi" || c === "stroke");
}

// patientCard renders the card; "—" where the crew gave nothing.
export function patientCard(p) {
  if (!p) return el("div", { class: "card empty" }, t("patient.none"));
  const conds = (p.suspected || []).map(c =>
    el("span", { class: "cond cond-" + (known.includes(c) ? c : "other") }, conditionLabel(c)));
  const sex = p.sex ? t("patient.sex." + (["male", "female"].includes(p.sex) ? p.sex : "unknown")) : "—";
  const lines = [
    el("div", { class: "card-who" },
      el("span", { class: "age" }, t("patient.age", { v: p.age_band || "—" })),
      el("span", { class: "sex" }, sex),
      p.triage ? el("span", { class: "triage triage-" + p.triage }, t("triage") + " " + t("triage.level", { n: p.triage })) : null),
    el("div", { class: "card-complaint" }, el("span", { class: "k" }, t("patient.complaint") + "："), p.complaint || "—"),
    conds.length ? el("div", { class: "card-conds" }, conds) : null,
  ];
  if ((p.suspected || []).includes("stroke") && p.last_known_well) {
    lines.push(el("div", { class: "card-lkw" },
      t("patient.lkw", { t: clockTime(p.last_known_well), ago: ago(p.last_known_well) })));
  }
  return el("div", { class: "card" }, lines);
}
