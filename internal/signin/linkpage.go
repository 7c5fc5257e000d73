package signin

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// linkScript redeems the token in the page's #fragment. The token travels in the
// fragment, which browsers never send, so it stays out of server and proxy logs, and
// a link preview that fetches the URL without running scripts cannot use it up.
//
// ?next= names the page to open once signed in (a hand-over from another hub opens
// the patient view of the box it was asked for): a plain path on this hub only, so
// that a link cannot send a freshly signed-in browser elsewhere.
const linkScript = `const token = location.hash.slice(1);
const next = new URLSearchParams(location.search).get("next") || "/";
const to = /^\/(?![\/\\])[A-Za-z0-9._~\/-]*$/.test(next) ? next : "/";
history.replaceState(null, "", location.pathname);
const say = (t) => { document.getElementById("msg").textContent = t; };
fetch("` + LinkRedeemPath + `", {method: "POST", headers: {"Content-Type": "application/json"},
  body: JSON.stringify({token: token})})
  .then((r) => r.json().then((b) => r.ok ? location.replace(to) : say("登录链接无效 / " + b.error)))
  .catch((e) => say("无法登录 / Cannot sign in: " + e));`

const linkPage = `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Lifeline</title></head>
<body><p id="msg">正在登录… / Signing in…</p><script>` + linkScript + `</script></body></html>
`

// linkPageCSP lets the page run its own script and nothing else.
var linkPageCSP = func() string {
	sum := sha256.Sum256([]byte(linkScript))
	return "default-src 'none'; connect-src 'self'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

func serveLinkPage(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", linkPageCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	w.Write([]byte(linkPage))
}
