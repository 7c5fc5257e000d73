// session: what the pages do when the hub says the sign-in has ended (401, e.g. the
// idle timeout): load the page again, which the hub's sign-in answers with its sign-in
// page, instead of showing a board that silently stopped updating. At most once in 30 s,
// so that a hub that answers 401 to the data but not to the page cannot make a loop.

const key = "lifeline.ed.reloadedAt";

// signedOut reports whether res says the session ended, and if so reloads the page.
export function signedOut(res) {
  if (res.status !== 401) return false;
  const last = parseInt(sessionStorage.getItem(key) || "0", 10);
  if (Date.now() - last > 30000) {
    sessionStorage.setItem(key, String(Date.now()));
    location.reload();
  }
  return true;
}
