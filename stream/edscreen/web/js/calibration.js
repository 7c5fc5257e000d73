// calibration: CSS pixels per millimetre of this screen, so that 25 mm/s and 10 mm/mV
// are true millimetres. The default is CSS's nominal 96 px per inch; a doctor measures
// the 50 mm bar with a ruler and adjusts. Kept per browser in localStorage.

const key = "lifeline.ed.pxPerMm";
export const defaultPxPerMm = 96 / 25.4;
const listeners = [];

export function pxPerMm() {
  const v = parseFloat(localStorage.getItem(key));
  return v >= 1 && v <= 20 ? v : defaultPxPerMm;
}

export function setPxPerMm(v) {
  if (!(v >= 1 && v <= 20)) v = defaultPxPerMm;
  localStorage.setItem(key, String(v));
  for (const fn of listeners) fn(v);
}

export function onCalibration(fn) {
  listeners.push(fn);
}
