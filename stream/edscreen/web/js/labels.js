// labels: how clinicians read the vitals. Numerics are named HR, SpO₂, NIBP, EtCO₂,
// RR, Temp, never by their MDC identifiers; units as on a monitor (mmHg, °C, /min).
// The codes are IEEE 11073-10101 context-free codes as stream/VITALS.md carries them.
import { t } from "./i18n.js";

// tiles are the numeric tiles of the view, in reading order. Each takes its value from
// the first of its codes that has one; "nibp" and "abp" combine systolic, diastolic and
// mean as "130/82 (98)".
export const tiles = [
  { id: "hr", label: "HR", codes: [147842], colour: "ecg" },
  { id: "spo2", label: "SpO₂", codes: [150456], colour: "spo2" },
  { id: "pr", label: "PR", codes: [149530], colour: "spo2" },
  { id: "nibp", label: "NIBP", sys: 150021, dia: 150022, mean: 150023, colour: "bp" },
  { id: "abp", label: "ART", sys: 150033, dia: 150034, mean: 150035, colour: "art", hideEmpty: true },
  { id: "etco2", label: "EtCO₂", codes: [151708, 151712], colour: "co2" },
  { id: "rr", label: "RR", codes: [151562, 151578, 151594, 151658], colour: "resp" },
  { id: "temp", label: "Temp", codes: [150364, 150344, 150376, 150388, 150368, 150372, 150380, 150392, 150356], colour: "temp" },
  { id: "pi", label: "PI", codes: [150488, 150448], colour: "spo2", hideEmpty: true },
];

// tileOf finds the tile a numeric's code belongs to.
export function tileOf(code) {
  return tiles.find(tl => (tl.codes || []).includes(code) || tl.sys === code || tl.dia === code || tl.mean === code);
}

// unitText shows a UCUM unit as a clinician reads it.
export function unitText(ucum) {
  switch (ucum) {
    case "mm[Hg]": return "mmHg";
    case "Cel": return "°C";
    case "[degF]": return "°F";
    case "/min": return t("unit./min");
    case "1": return "";
    case "uV": return "µV";
    case "Ohm": return "Ω";
    default: return ucum || "";
  }
}

// decimals is how many decimals a value is shown with.
export function format(value, ucum) {
  if (value === undefined || value === null || Number.isNaN(value)) return "—";
  if (ucum === "Cel" || ucum === "[degF]" || ucum === "kPa") return value.toFixed(1);
  if (Math.abs(value) < 10 && !Number.isInteger(value)) return value.toFixed(1);
  return String(Math.round(value));
}

const ecgLeads = {
  131329: "I", 131330: "II", 131389: "III", 131390: "aVR", 131391: "aVL", 131392: "aVF",
  131331: "V1", 131332: "V2", 131333: "V3", 131334: "V4", 131335: "V5", 131336: "V6",
};

// waveKind sorts a wave into a display row: "ecg", "pleth", "resp", "co2" or "other".
export function waveKind(code) {
  if (ecgLeads[code]) return "ecg";
  switch (code) {
    case 150452: return "pleth";
    case 151780: return "resp";
    case 151724: return "co2";
    default: return "other";
  }
}

// waveLabel names a wave: the ECG lead, or what the row shows.
export function waveLabel(code, wireLabel) {
  if (ecgLeads[code]) return ecgLeads[code];
  switch (code) {
    case 150452: return t("wave.Pleth");
    case 151780: return t("wave.Resp");
    case 151724: return t("wave.CO2");
    default: return wireLabel || "";
  }
}

// leadOrder is the order ECG leads are offered in (the 12-lead report's).
export const leadOrder = [131330, 131329, 131389, 131390, 131391, 131392, 131331, 131332, 131333, 131334, 131335, 131336];
