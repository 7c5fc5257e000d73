package appliance

import (
	_ "embed"
	"net/http"
)

//go:embed web/status.html
var statusPage []byte

// serveStatusPage serves the crew's status page: one banner that says whether the box
// is ready, the services and the power-on self-test, refreshed every two seconds.
func serveStatusPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'")
	w.Write(statusPage)
}
