package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"

	"lifeline/internal/audit"
	"lifeline/internal/hubstate"
	"lifeline/internal/signin"
	"lifeline/internal/trust"
)

// The hub's administration commands (enrol, revoke, list devices) work whether or not
// the hub runs. A running hub holds its store, so then they go through the admin socket
// in the data directory; its file permissions (0600) are its access control.

// listenAdmin binds the admin socket, replacing a stale one left by a killed hub.
func listenAdmin(path string) (net.Listener, error) {
	if conn, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		conn.Close()
		return nil, fmt.Errorf("admin socket %s: another hub is serving it", path)
	}
	os.Remove(path)
	// Created owner-only from the start: a socket made with the usual umask and
	// chmodded afterwards is open to anyone on the machine in between. The umask is
	// the process's, so for this instant other files the process creates are
	// owner-only too, which is never less safe.
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return ln, nil
}

// EnrolCode is a one-time code as `lifeline hub enroll` prints it.
type EnrolCode struct {
	Device  string    `json:"device"`
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

func (h *Hub) adminMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /enroll", func(w http.ResponseWriter, r *http.Request) {
		code, err := issueCode(r.Context(), h.devices, h.audit, r.FormValue("device"), h.cfg.Enrol.CodeLifetime.Duration, askedBy(r))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, code)
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		if err := revokeDevice(r.Context(), h.devices, h.audit, r.FormValue("device"), askedBy(r)); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		// The box's requests are refused from now on; its live session, which
		// carries media without further requests, ends now too.
		h.fanout.Revoke(r.FormValue("device"))
		writeJSON(w, http.StatusOK, map[string]string{"revoked": r.FormValue("device")})
	})
	mux.HandleFunc("POST /viewer-token", func(w http.ResponseWriter, r *http.Request) {
		ttl, _ := time.ParseDuration(r.FormValue("ttl"))
		tok, err := issueViewerToken(r.Context(), h.devices, h.audit, h.tokens, r.FormValue("device"), r.FormValue("for"), ttl, askedBy(r))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, tok)
	})
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		devs, err := h.devices.Devices(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, devs)
	})
	h.addAccountRoutes(mux)
	return mux
}

// issueCode audits the code before it exists, so that no code works that the audit
// trail does not show (fail closed); a code that then could not be stored is audited
// as such.
func issueCode(ctx context.Context, reg *trust.Registry, a trust.Auditor, device string, lifetime time.Duration, by string) (EnrolCode, error) {
	if err := trust.ValidDeviceID(device); err != nil {
		return EnrolCode{}, err
	}
	expires := time.Now().Add(lifetime).UTC().Truncate(time.Second)
	if err := a.Record("enrol.code_issued", map[string]any{"device": device, "expires": expires, "by": by}); err != nil {
		return EnrolCode{}, fmt.Errorf("no code issued for %s: %w", device, err)
	}
	code, err := reg.NewCode(ctx, device, lifetime)
	if err != nil {
		a.Audit("enrol.code_not_stored", map[string]any{"device": device, "reason": err.Error()})
		return EnrolCode{}, err
	}
	return EnrolCode{Device: device, Code: code, Expires: expires}, nil
}

// revokeDevice audits the revocation before making it, like issueCode.
func revokeDevice(ctx context.Context, reg *trust.Registry, a trust.Auditor, device, by string) error {
	if err := a.Record("device.revoked", map[string]any{"device": device, "by": by}); err != nil {
		return fmt.Errorf("%s not revoked: %w", device, err)
	}
	if err := reg.Revoke(ctx, device); err != nil {
		a.Audit("device.revoke_failed", map[string]any{"device": device, "reason": err.Error()})
		return err
	}
	return nil
}

// HubAdmin runs one administration command against the hub whose state is in
// dataDir: directly on the store when no hub runs, through the admin socket when one
// does.
type HubAdmin struct {
	DataDir  string
	Lifetime time.Duration
	Viewer   ViewerSection // sign-in policy for commands run on the store; zero: defaults
	State    StateSection  // where the hub's state is; zero: the embedded engine in DataDir
	Log      *slog.Logger
}

// hubLocal is what a command run on the store (no hub running) works with.
type hubLocal struct {
	devices *trust.Registry
	audit   *audit.Log
	gate    *signin.Gate
}

// byLocal names, for the audit, who ran a command on the store.
func byLocal() string { return fmt.Sprintf("lifeline hub command on the store, uid %d", os.Getuid()) }

// Enrol issues a one-time enrolment code for device.
func (a HubAdmin) Enrol(device string) (EnrolCode, error) {
	var out EnrolCode
	err := a.do("enroll", url.Values{"device": {device}}, &out, func(l hubLocal) error {
		var err error
		out, err = issueCode(context.Background(), l.devices, l.audit, device, a.Lifetime, byLocal())
		return err
	})
	return out, err
}

// Revoke refuses device from now on.
func (a HubAdmin) Revoke(device string) error {
	return a.do("revoke", url.Values{"device": {device}}, nil, func(l hubLocal) error {
		return revokeDevice(context.Background(), l.devices, l.audit, device, byLocal())
	})
}

// Devices lists the hub's devices.
func (a HubAdmin) Devices() ([]trust.Device, error) {
	var out []trust.Device
	err := a.do("devices", nil, &out, func(l hubLocal) error {
		var err error
		out, err = l.devices.Devices(context.Background())
		return err
	})
	return out, err
}

func (a HubAdmin) do(op string, form url.Values, out any, local func(hubLocal) error) error {
	store, err := openHubState(a.DataDir, a.State, 300*time.Millisecond)
	if errors.Is(err, hubstate.ErrHeld) {
		return a.viaSocket(op, form, out)
	}
	if err != nil {
		return err
	}
	defer store.Close()
	auth, err := trust.OpenAuthority(hubCADir(a.DataDir))
	if err != nil {
		return err
	}
	au, err := audit.Open(hubAuditPath(a.DataDir), a.Log)
	if err != nil {
		return err
	}
	defer au.Close()
	if err := joinShared(store, auth, au, a.DataDir); err != nil {
		return err
	}
	gate := signin.New(signinConfig(a.Viewer), store, au, a.Log)
	return local(hubLocal{devices: trust.NewRegistry(store, auth), audit: au, gate: gate})
}

func (a HubAdmin) viaSocket(op string, form url.Values, out any) error {
	sock := adminSocket(a.DataDir)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	var resp *http.Response
	var err error
	if form == nil {
		resp, err = client.Get("http://hub/" + op)
	} else {
		resp, err = client.PostForm("http://hub/"+op, form)
	}
	if err != nil {
		return fmt.Errorf("the hub holds %s but does not answer on %s: %w", a.DataDir, sock, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		return errors.New(e.Error)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}
