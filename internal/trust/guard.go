package trust

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

type deviceKey struct{}

// Authorize tells which device made r, and refuses requests without a client
// certificate, from unknown devices, and from revoked ones.
func (r *Registry) Authorize(req *http.Request) (string, error) {
	id, serial, ok := DeviceID(req.TLS)
	if !ok {
		return "", errors.New("no client certificate: enrol the box with 'lifeline edge enroll'")
	}
	if err := r.Check(req.Context(), id, serial); err != nil {
		if r.keptAfterRenewal(req.Context(), id, serial, req.RemoteAddr) {
			return id, nil // a connection made before its renewal (renew_conns.go)
		}
		return id, fmt.Errorf("device %s: %w", id, err)
	}
	r.conns.seen(id, serial, req.RemoteAddr, r.now())
	return id, nil
}

// RequireDevice lets through only requests from enrolled, active devices. Refusals go
// to the audit log and the client gets 403 with the reason.
func RequireDevice(reg *Registry, audit Auditor, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := reg.Authorize(r)
		if err != nil {
			audit.Audit("device.refused", map[string]any{"device": id, "remote": r.RemoteAddr, "path": r.URL.Path, "reason": err.Error()})
			// The connection is no use with this certificate (revoked, or replaced and
			// not kept by renew_conns.go): closing it brings the box's next request on a
			// new connection, with its current certificate. HTTP/1.1 and HTTP/2 close
			// on this header; HTTP/3 forbids it (a client rejects the whole answer).
			if r.ProtoMajor < 3 {
				w.Header().Set("Connection", "close")
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), deviceKey{}, id)))
	})
}

// DeviceFrom returns the device that RequireDevice admitted for this request.
func DeviceFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(deviceKey{}).(string)
	return id, ok
}
