package appliance

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"lifeline/internal/weblang"
)

// statusWeb is the crew's status page: web/status.html, its ES modules under web/js and
// its styles under web/css. Plain files embedded in the binary, with no build step and
// no external URL, because the ambulance may have no internet.
//
//go:embed web
var statusWeb embed.FS

// statusFiles is the page's files as served: statusWeb's web folder with the shared
// language runtime beside the page's own words (js/strings.js).
var statusFiles = func() fs.FS {
	files, err := fs.Sub(statusWeb, "web")
	if err != nil {
		panic("appliance: the embedded status page: " + err.Error()) // "web" is a constant, valid path
	}
	return weblang.Pages(files, "js")
}()

// statusCSP lets the page run only the box's own scripts and styles (no inline script
// or style, so text a hospital or dispatch sent can never run as code) and talk only
// to the box.
const statusCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// statusHeaders are what the page and each of its files are served with.
func statusHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// A box updated in the field must not run yesterday's scripts against today's API.
	h.Set("Cache-Control", "no-cache")
}

// serveStatusPage serves the crew's status page at "/": the box's state, the
// hospital's messages, the patient card, the 12-lead ECG, the vitals, the mission and
// the images waiting for a retry. Its scripts and styles are at /static/.
func serveStatusPage(w http.ResponseWriter, r *http.Request) {
	statusHeaders(w)
	http.ServeFileFS(w, r, statusFiles, "status.html")
}

// statusStaticPrefix is where the page's scripts and styles are served.
const statusStaticPrefix = "/static/"

// serveStatusAsset serves one of the page's scripts or styles under statusStaticPrefix,
// and nothing else of the binary.
func serveStatusAsset(w http.ResponseWriter, r *http.Request) {
	statusHeaders(w)
	name := strings.TrimPrefix(r.URL.Path, statusStaticPrefix)
	if !isStatusAsset(name) {
		http.NotFound(w, r)
		return
	}
	http.ServeFileFS(w, r, statusFiles, name)
}

// isStatusAsset reports whether name is one of the page's scripts or styles: a clean
// path to a .js or .css file, so that nothing else of the binary can be asked for.
func isStatusAsset(name string) bool {
	if !fs.ValidPath(name) {
		return false
	}
	switch path.Ext(name) {
	case ".js", ".css":
		return true
	}
	return false
}
