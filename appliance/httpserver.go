package appliance

import (
	"net/http"
	"time"
)

// Timeouts of the HTTP servers the box and the hub run. Without them one client
// trickling a request body, reading an answer a byte a minute or holding keep-alive
// connections open keeps a goroutine and a socket as long as it likes: a body
// trickled at 5 bytes per 75 s held its connection on the hub. The hub's port for
// boxes has its own, longer bounds for uploads (dicom/transfer's server).
const (
	// httpReadHeaderTimeout: request headers are small.
	httpReadHeaderTimeout = 10 * time.Second
	// httpReadTimeout bounds reading one request, body included: API, status,
	// sign-in and administration requests are a few kilobytes.
	httpReadTimeout = 30 * time.Second
	// httpWriteTimeout bounds handling a request and writing its answer, counted
	// from the end of its headers.
	httpWriteTimeout = time.Minute
	// httpIdleTimeout closes a keep-alive connection unused this long.
	httpIdleTimeout = 2 * time.Minute
)

// boundServer gives srv each of the timeouts above that it has not set, and returns
// it.
func boundServer(srv *http.Server) *http.Server {
	if srv.ReadHeaderTimeout <= 0 {
		srv.ReadHeaderTimeout = httpReadHeaderTimeout
	}
	if srv.ReadTimeout <= 0 {
		srv.ReadTimeout = httpReadTimeout
	}
	if srv.WriteTimeout <= 0 {
		srv.WriteTimeout = httpWriteTimeout
	}
	if srv.IdleTimeout <= 0 {
		srv.IdleTimeout = httpIdleTimeout
	}
	return srv
}

// boundRequests gives each request to next read to arrive whole and write to be
// answered (httpReadTimeout and httpWriteTimeout on the box's and the hub's status
// servers, whose http.Server is built without them in httpService). A handler that
// streams lifts the bounds for its request with
// http.NewResponseController(w).SetReadDeadline(time.Time{}) and SetWriteDeadline.
func boundRequests(next http.Handler, read, write time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		// An error means the connection cannot take deadlines (a test recorder); the
		// request is served all the same.
		_ = rc.SetReadDeadline(now.Add(read))
		_ = rc.SetWriteDeadline(now.Add(write))
		next.ServeHTTP(w, r)
	})
}
