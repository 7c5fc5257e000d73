// i18n: the two languages of Lifeline's pages, Simplified Chinese (the default) and
// English. This runtime is shared by the box's status page and the ED screen; each page
// gives its own words in strings.js beside it (dict, and the localStorage key under
// which this browser remembers the choice). Text a box, a crew or a hospital gave
// (device names, details, messages) is never translated.

import { dict, storageKey } from "./strings.js";

export { dict };

let current = pick(localStorage.getItem(storageKey));
const listeners = [];

function pick(l) {
  return dict[l] ? l : "zh-CN";
}

// lang is the language in use, as a BCP 47 tag.
export function lang() {
  return current;
}

// has reports whether key has a translation, for values (a service state, a check)
// the server may one day send without the page knowing them.
export function has(key) {
  return key in dict[current];
}

// t translates key, filling {name} placeholders from vars. A missing key shows itself,
// so that a forgotten string is visible in review rather than blank.
export function t(key, vars) {
  const s = dict[current][key] ?? dict["zh-CN"][key] ?? key;
  return vars ? s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : s;
}

// time shows a moment as a clock time in the page's language.
export function time(at) {
  const d = at instanceof Date ? at : new Date(at);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString(current, { hour12: false });
}

// dateTime shows a moment with its date, for what may be days old.
export function dateTime(at) {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleString(current, { hour12: false });
}

// setLang switches the language, remembers it in this browser and redraws.
export function setLang(l) {
  current = pick(l);
  localStorage.setItem(storageKey, current);
  apply(document);
  for (const fn of listeners) fn(current);
}

// account is the signed-in user's language setting on the hub: when set, the page
// follows the account (so a doctor's choice follows them to every screen) and the
// toggle changes the account. The box's page has no accounts and never sets it.
let account = null;

// useAccount takes the language of the signed-in account (from the hub's /api/me) and
// the headers (anti-CSRF) to change it with.
export function useAccount(language, headers) {
  account = { headers: headers || {} };
  if (language && language !== current) setLang(language);
}

async function saveToAccount(l) {
  if (!account) return;
  try {
    await fetch("/api/v1/me", {
      method: "PATCH", credentials: "same-origin",
      headers: { ...account.headers, "Content-Type": "application/json" },
      body: JSON.stringify({ language: l }),
    });
  } catch {
    // The choice still holds in this browser; the account keeps the old one.
  }
}

// onLang calls fn after every switch of language, to redraw what fn drew.
export function onLang(fn) {
  listeners.push(fn);
}

// apply fills every element marked data-i18n (text), data-i18n-title (tooltip) or
// data-i18n-placeholder, and the document's title.
export function apply(root) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  document.title = t("app.title");
}

// toggleButton wires the button that switches between the two languages. It names the
// other language in that language ("English", "中文"), and says so in its lang.
export function toggleButton(btn) {
  const other = () => (current === "zh-CN" ? "en" : "zh-CN");
  const show = () => {
    btn.textContent = t("lang.toggle");
    btn.lang = other();
  };
  btn.addEventListener("click", () => {
    setLang(other());
    saveToAccount(current);
  });
  onLang(show);
  show();
}
