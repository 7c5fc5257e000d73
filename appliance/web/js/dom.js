// dom: building elements node by node, never by parsing markup, so that nothing a
// hospital, dispatch or monitor sent can ever run as markup; and the box's JSON API.

// el makes an element with attributes and children (strings become text).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// raw shows text as the box or the hospital gave it (a device name, a detail, a
// message), marked data-raw: it is not the page's to translate.
export function raw(text, cls) {
  return el("span", { class: cls, "data-raw": true }, text == null ? "" : String(text));
}

// replace swaps an element's children.
export function replace(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

export const $ = (id) => document.getElementById(id);

// getJSON reads one of the box's APIs; it answers null when the API is not there (a box
// without a GNSS receiver has no position) and throws when the box is unreachable.
export async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) return null;
  return r.json();
}

// sendJSON makes a change on the box and returns {ok, status, body}. Every change is a
// JSON request, which the box requires so that no page of another site can make this
// browser ask for one.
export async function sendJSON(method, path, body) {
  const r = await fetch(path, {
    method, cache: "no-store",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
  let answer = {};
  try {
    answer = await r.json();
  } catch {
    // An answer that is not JSON (a proxy's page) is reported by its status alone.
  }
  return { ok: r.ok, status: r.status, body: answer };
}

// errorText is what a failed request says: the box's own words, else the HTTP status.
export function errorText(res) {
  return (res.body && res.body.error) || "HTTP " + res.status;
}

const drawn = new Map();

// unchanged reports whether what slot would draw from inputs is what it drew last, so
// that a refresh every second does not replace a button under the crew's finger.
export function unchanged(slot, ...inputs) {
  const signature = JSON.stringify(inputs);
  if (drawn.get(slot) === signature) return true;
  drawn.set(slot, signature);
  return false;
}
