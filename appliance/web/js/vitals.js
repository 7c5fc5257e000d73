// vitals: the monitors' latest values as clinicians read them: HR, SpO₂, NIBP as
// "130/82 (98)", EtCO₂, RR, Temp, never an MDC identifier; units as on a monitor
// (mmHg, °C, bpm). Two channels of one quantity (two temperature probes) show as two
// rows named by the monitor's channel label; a value the monitor flagged is greyed.
import { $, el, raw, replace } from "./dom.js";
import { t, time } from "./i18n.js";

// pressures are the blood pressures a monitor sends as _SYS, _DIA and _MEAN, shown
// combined on one row.
const pressures = {
  MDC_PRESS_BLD_NONINV: "NIBP",
  MDC_PRESS_BLD_ART: "ART",
  MDC_PRESS_BLD_ART_ABP: "ABP",
  MDC_PRESS_BLD_ART_PULM: "PAP",
  MDC_PRESS_BLD_VEN_CENT: "CVP",
  MDC_PRESS_BLD_ATR_LEFT: "LAP",
  MDC_PRESS_BLD_ATR_RIGHT: "RAP",
  MDC_PRESS_BLD_ART_UMB: "UAP",
  MDC_PRESS_BLD_VEN_UMB: "UVP",
  MDC_PRESS_INTRA_CRAN: "ICP",
  MDC_PRESS_BLD: "P",
};

// names label a value that comes without one, by its MDC reference id. Their order
// is the order rows are shown in, as a monitor lays out its numerics.
const names = {
  MDC_ECG_HEART_RATE: "HR",
  MDC_PULS_OXIM_SAT_O2: "SpO₂",
  MDC_PULS_OXIM_PULS_RATE: "PR",
  MDC_PULS_RATE: "PR",
  MDC_BLD_PULS_RATE_INV: "PR(IBP)",
  MDC_PRESS_BLD_NONINV: "NIBP",
  MDC_PRESS_BLD_ART: "ART",
  MDC_PRESS_BLD_ART_ABP: "ABP",
  MDC_AWAY_CO2_ET: "EtCO₂",
  MDC_CONC_AWAY_CO2_EXP: "EtCO₂",
  MDC_AWAY_CO2_INSP_MIN: "FiCO₂",
  MDC_RESP_RATE: "RR",
  MDC_TTHOR_RESP_RATE: "RR",
  MDC_AWAY_RESP_RATE: "awRR",
  MDC_PULS_OXIM_PLETH_RESP_RATE: "RR(pleth)",
  MDC_TEMP: "Temp",
  MDC_TEMP_BODY: "Tcore",
  MDC_TEMP_CORE: "Tcore",
  MDC_TEMP_SKIN: "Tskin",
  MDC_TEMP_ESOPH: "Teso",
  MDC_TEMP_TYMP: "Ttymp",
  MDC_PULS_OXIM_PERF_REL: "PI",
  MDC_BLD_PERF_INDEX: "PI",
  MDC_ECG_V_P_C_RATE: "PVC",
  MDC_CONC_AWAY_O2_INSP: "FiO₂",
  MDC_OUTPUT_CARD: "CO",
};
const order = Object.keys(names);

// heartRates are shown in bpm; other rates per minute.
const heartRates = new Set(["HR", "PR", "PR(IBP)", "PVC"]);

// labelOf names a value: the label the box gives, in the form clinicians read (SpO₂
// with its subscript, Temp for a plain temperature), else the name the page knows for
// the code, else the code itself when it is the monitor's own name rather than an MDC
// identifier.
function labelOf(v) {
  if (v.label) return v.label === "T" ? "Temp" : v.label.replace(/(O|N)2/g, "$1₂");
  if (names[v.code]) return names[v.code];
  return v.code && !v.code.startsWith("MDC_") ? v.code : null;
}

// unitText shows a UCUM unit as a monitor does.
function unitText(ucum, label) {
  switch (ucum) {
    case "mm[Hg]": return "mmHg";
    case "Cel": return "°C";
    case "[degF]": return "°F";
    case "/min": return heartRates.has(label) ? "bpm" : null; // null: "/min", in words
    case "1": return "";
    case "uV": return "µV";
    case "Ohm": return "Ω";
    case "L/min": return "L/min";
    default: return ucum || "";
  }
}

function number(value, ucum) {
  if (ucum === "Cel" || ucum === "[degF]") return value.toFixed(1);
  return String(Math.round(value * 100) / 100);
}

// rows turns the API's values into what the table shows: pressures combined, the rest
// one row each, sorted as a monitor lays them out.
function rows(list) {
  const out = [];
  const bp = new Map();
  for (const v of list) {
    const m = /^(MDC_\w+)_(SYS|DIA|MEAN)$/.exec(v.code);
    if (m && pressures[m[1]]) {
      // The parts of one measurement share source and channel label, not channel ID:
      // HL7 gives each metric its own containment path.
      const key = [m[1], v.source, v.channel_label || ""].join("|");
      let r = bp.get(key);
      if (!r) {
        r = { code: m[1], label: pressures[m[1]], source: v.source, channel: v.channel_label || v.channel, parts: {}, unit: v.unit, time: v.time, invalid: false };
        bp.set(key, r);
        out.push(r);
      }
      r.parts[m[2]] = v.value;
      r.invalid = r.invalid || Boolean(v.invalid);
      if (Date.parse(v.time) > Date.parse(r.time)) r.time = v.time;
      continue;
    }
    out.push({ code: v.code, label: labelOf(v), source: v.source, channel: v.channel_label || v.channel, value: v.value, unit: v.unit, time: v.time, invalid: Boolean(v.invalid) });
  }
  const rank = (r) => (order.includes(r.code) ? order.indexOf(r.code) : order.length);
  out.sort((a, b) => rank(a) - rank(b) || String(a.label).localeCompare(String(b.label)) || String(a.channel).localeCompare(String(b.channel)));
  return out;
}

function valueText(r) {
  if (!r.parts) return number(r.value, r.unit);
  const { SYS: sys, DIA: dia, MEAN: mean } = r.parts;
  const n = (x) => number(x, r.unit);
  if (sys !== undefined && dia !== undefined) return n(sys) + "/" + n(dia) + (mean !== undefined ? " (" + n(mean) + ")" : "");
  if (mean !== undefined) return n(mean);
  return n(sys ?? dia);
}

// staleAfter is how much older than the newest value of its monitor a value may be
// before it shows as one that stopped coming (a probe taken off that the monitor no
// longer reports). Measured on the monitor's own clock, so that a monitor whose clock
// is wrong does not make every value look old.
const staleAfter = 30000;

function ageText(ms) {
  return ms < 120000 ? t("vitals.ageS", { n: Math.round(ms / 1000) }) : t("vitals.ageM", { n: Math.round(ms / 60000) });
}

let latest = [];

export function showVitals(list) {
  latest = list || [];
  render();
}

export function render() {
  const tbody = $("vitals");
  if (latest.length === 0) {
    replace(tbody, el("tr", {}, el("td", { class: "empty" }, t("vitals.none"))));
    return;
  }
  const all = rows(latest);
  // Name the channel (and the monitor) only where one name would stand for two rows.
  const count = new Map();
  for (const r of all) count.set(r.label, (count.get(r.label) || 0) + 1);
  const sources = new Set(all.map((r) => r.source));
  const newest = new Map();
  for (const r of all) newest.set(r.source, Math.max(newest.get(r.source) || 0, Date.parse(r.time)));
  replace(tbody, all.map((r) => {
    const twice = count.get(r.label) > 1;
    const unit = unitText(r.unit, r.label);
    const age = newest.get(r.source) - Date.parse(r.time);
    const cls = ["vital", r.invalid && "questionable", age > staleAfter && "stale"].filter(Boolean).join(" ");
    return el("tr", { class: cls, dataset: { code: r.code } },
      el("th", { class: "vital-label" },
        r.label ? raw(r.label) : t("vitals.other"),
        twice && r.channel ? raw(" " + r.channel, "channel") : null,
        sources.size > 1 && r.source ? el("small", {}, raw(r.source)) : null),
      el("td", { class: "vital-value" }, raw(valueText(r), "value"), " ",
        unit === null ? el("span", { class: "unit" }, t("unit.perMin")) : raw(unit, "unit"),
        r.invalid ? el("span", { class: "questionable-note" }, t("vitals.questionable")) : null,
        age > staleAfter ? el("span", { class: "age-note" }, ageText(age)) : null),
      el("td", { class: "vital-time" }, raw(time(r.time))));
  }));
}
