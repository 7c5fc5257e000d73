package trust

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/audit/audittest"
	"lifeline/internal/hubstate/boltstate"
)

type testHub struct {
	auth  *Authority
	reg   *Registry
	audit *audittest.Recorder
	url   string
}

// startHub runs an enrolment endpoint and a device-only endpoint over real TLS on
// loopback, as the hub does.
func startHub(t *testing.T) *testHub {
	t.Helper()
	dir := t.TempDir()
	auth, err := OpenAuthority(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := boltstate.Open(filepath.Join(dir, "hub.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := &testHub{auth: auth, reg: NewRegistry(store, auth), audit: &audittest.Recorder{}}
	mux := http.NewServeMux()
	mux.Handle(EnrollPath, EnrollHandler(auth, h.reg, h.audit))
	mux.Handle(RenewPath, RenewHandler(auth, h.reg, h.audit))
	mux.Handle("/whoami", RequireDevice(h.reg, h.audit, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := DeviceFrom(r.Context())
		w.Write([]byte(id))
	})))
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS, err = auth.ServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func whoami(t *testing.T, h *testHub, id *Identity) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: id.ClientTLS()}}
	resp, err := client.Get(h.url + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

func TestEnrolConnectRevoke(t *testing.T) {
	h := startHub(t)
	code, err := h.reg.NewCode(context.Background(), "AMB-0001", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	boxDir := t.TempDir()
	id, err := Enroll(context.Background(), h.url, strings.ToLower(code), boxDir)
	if err != nil {
		t.Fatalf("enrol: %v", err)
	}
	if id.DeviceID != "AMB-0001" {
		t.Fatalf("device ID = %q", id.DeviceID)
	}
	loaded, err := LoadIdentity(boxDir)
	if err != nil || loaded.DeviceID != "AMB-0001" {
		t.Fatalf("reload identity: %v %v", loaded, err)
	}
	if status, body := whoami(t, h, loaded); status != 200 || body != "AMB-0001" {
		t.Fatalf("enrolled box: %d %q", status, body)
	}

	// The same code works once.
	if _, err := Enroll(context.Background(), h.url, code, t.TempDir()); err == nil || !strings.Contains(err.Error(), ErrCodeUsed.Error()) {
		t.Fatalf("second use of code: %v", err)
	}

	if err := h.reg.Revoke(context.Background(), "AMB-0001"); err != nil {
		t.Fatal(err)
	}
	if status, body := whoami(t, h, loaded); status != http.StatusForbidden || !strings.Contains(body, "revoked") {
		t.Fatalf("revoked box: %d %q", status, body)
	}
	if h.audit.Count("device.refused") != 1 || h.audit.Count("enrol.refused") != 1 || h.audit.Count("enrol.accepted") != 1 {
		t.Fatalf("audit events: %v", h.audit.Events())
	}
	if _, err := h.reg.NewCode(context.Background(), "AMB-0001", time.Hour); !errors.Is(err, ErrRevoked) {
		t.Fatalf("new code for revoked device: %v", err)
	}
}

// TestEnrolmentFailsClosedWithoutAudit checks that a box is not enrolled when the
// acceptance cannot be audited, and that its code still works once it can.
func TestEnrolmentFailsClosedWithoutAudit(t *testing.T) {
	h := startHub(t)
	code, err := h.reg.NewCode(context.Background(), "AMB-0003", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.audit.FailWith(errors.New("disk full"))
	if _, err := Enroll(context.Background(), h.url, code, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not audited") {
		t.Fatalf("enrolment with a failing audit log: %v", err)
	}
	devs, _ := h.reg.Devices(context.Background())
	if len(devs) != 1 || devs[0].State != StatePending {
		t.Fatalf("devices after an unaudited enrolment: %+v", devs)
	}
	h.audit.FailWith(nil)
	if _, err := Enroll(context.Background(), h.url, code, t.TempDir()); err != nil {
		t.Fatalf("the code after the audit log recovered: %v", err)
	}
	if h.audit.Count("enrol.accepted") != 1 {
		t.Fatalf("audit events: %v", h.audit.Events())
	}
}

func TestExpiredCodeRefused(t *testing.T) {
	h := startHub(t)
	code, err := h.reg.NewCode(context.Background(), "AMB-0002", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h.reg.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	_, err = Enroll(context.Background(), h.url, code, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired code: %v", err)
	}
}

func TestWrongHubRefusedByPin(t *testing.T) {
	genuine := startHub(t)
	impostor := startHub(t)
	code, err := genuine.reg.NewCode(context.Background(), "AMB-0003", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Enroll(context.Background(), impostor.url, code, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "does not match the enrolment code") {
		t.Fatalf("enrol at impostor: %v", err)
	}
}

func TestUnknownAuthorityRefusedAtHandshake(t *testing.T) {
	h := startHub(t)
	other := startHub(t)
	code, _ := other.reg.NewCode(context.Background(), "AMB-0004", time.Hour)
	id, err := Enroll(context.Background(), other.url, code, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A box of another hub trusts only its own hub's authority, and our hub does not
	// accept its certificate either.
	conf := id.ClientTLS()
	conf.RootCAs = h.auth.Pool()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
	if resp, err := client.Get(h.url + "/whoami"); err == nil {
		resp.Body.Close()
		t.Fatalf("box of another hub got %s", resp.Status)
	}
}

func TestLoadIdentityNotEnrolled(t *testing.T) {
	if _, err := LoadIdentity(t.TempDir()); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("got %v", err)
	}
}

func TestParseCode(t *testing.T) {
	for _, bad := range []string{"", "ABCD", strings.Repeat("A", 31), strings.Repeat("1", 32)} {
		if _, _, err := ParseCode(bad); err == nil {
			t.Errorf("ParseCode(%q) accepted", bad)
		}
	}
	s, p, err := ParseCode(" abcd-efgh ijkl-mnop-qrst-uvwx-yz23-4567 ")
	if err != nil || s != "ABCDEFGHIJKLMNOP" || p != "QRSTUVWXYZ234567" {
		t.Fatalf("ParseCode = %q %q %v", s, p, err)
	}
}

func TestServerCertificateReusedAndReissued(t *testing.T) {
	auth, err := OpenAuthority(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := auth.ServerCertificate([]string{"127.0.0.1", "localhost"})
	b, _ := auth.ServerCertificate([]string{"127.0.0.1"})
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) != 0 {
		t.Fatal("certificate reissued although it covers the hosts")
	}
	c, _ := auth.ServerCertificate([]string{"hub.example", "127.0.0.1"})
	if c.Leaf.VerifyHostname("hub.example") != nil {
		t.Fatal("new host not covered")
	}
}
