package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// deviceSerial reads the serial of the box's certificate in its data directory.
func deviceSerial(t *testing.T, edgeData string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(edgeData, "identity", "device.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("device.crt holds no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber.Text(16)
}

// TestEdgeRenewForcesANewCertificate runs a hub and a box as processes: 'lifeline edge
// renew' makes the running box renew now and the box shows the new certificate's
// expiry; with the box stopped it says to use --offline, which renews the data
// directory, and the restarted box connects with that certificate. The hub audited
// both renewals.
func TestEdgeRenewForcesANewCertificate(t *testing.T) {
	dir := t.TempDir()
	hubAddr, hubStatus, edgeHTTP, dicom := freePort(t), freePort(t), freePort(t), freePort(t)
	// The viewer and the media port default to the ports after server.listen, which
	// another test's process may hold.
	hubConf := writeFile(t, dir, "hub.toml", fmt.Sprintf("[server]\nlisten = %q\n[status]\nlisten = %q\n[viewer]\nlisten = %q\n[stream]\nlisten = %q\n",
		hubAddr, hubStatus, freePort(t), freePort(t)))
	edgeConf := writeFile(t, dir, "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = \"https://%s\"\n[dicom]\nlisten = %q\n[stream]\nenabled = false\n", edgeHTTP, hubAddr, dicom))
	hubData, edgeData := filepath.Join(dir, "hub"), filepath.Join(dir, "edge")

	code, out, stderr := lifeline(t, "hub", "enroll", "--data", hubData, "--config", hubConf, "--device", "AMB-0301")
	if code != 0 {
		t.Fatalf("hub enroll: %d %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	start(t, "hub", "--config", hubConf, "--data", hubData)
	wait.For(t, 10*time.Second, "hub serving with its server certificate", func() bool {
		var hs statusBody
		getJSON(t, "http://"+hubStatus+"/api/v1/status", &hs)
		server, _ := hs.service("hub-server")
		certs, detail := hs.service("certificates")
		return server == "ready" && certs == "ready" && strings.Contains(detail, "hub-server certificate valid until")
	})
	if code, _, stderr := lifeline(t, "edge", "enroll", "--config", edgeConf, "--data", edgeData, "--code", lines[len(lines)-1]); code != 0 {
		t.Fatalf("edge enroll: %d %s", code, stderr)
	}
	enrolled := deviceSerial(t, edgeData)

	edge := start(t, "edge", "--config", edgeConf, "--data", edgeData)
	var es statusBody
	wait.For(t, 15*time.Second, "box connected and its renewal service ready", func() bool {
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
		link, _ := es.service("hub-link")
		renewal, _ := es.service("certificate-renewal")
		return link == "ready" && renewal == "ready"
	})
	code, out, stderr = lifeline(t, "edge", "renew", "--config", edgeConf)
	if code != 0 || !strings.Contains(out, "renewed the certificate of AMB-0301") {
		t.Fatalf("edge renew: %d %q %q", code, out, stderr)
	}
	renewed := deviceSerial(t, edgeData)
	if renewed == enrolled || !strings.Contains(out, "serial "+renewed) {
		t.Fatalf("after 'edge renew' the box's certificate is %s (enrolled with %s); the command said %q", renewed, enrolled, out)
	}
	var st struct {
		SelfTest []struct{ Name, Result, Detail string } `json:"self_test"`
	}
	getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &st)
	found := false
	for _, c := range st.SelfTest {
		found = found || c.Name == "certificate" && c.Result == "ok" && strings.Contains(c.Detail, "box certificate valid until")
	}
	if !found {
		t.Fatalf("the box's self-test does not show its certificate's expiry: %+v", st.SelfTest)
	}

	edge.stop(t)
	code, _, stderr = lifeline(t, "edge", "renew", "--config", edgeConf)
	if code != 1 || !strings.Contains(stderr, "--offline") {
		t.Fatalf("edge renew with the box stopped: %d %q", code, stderr)
	}
	code, out, stderr = lifeline(t, "edge", "renew", "--offline", "--config", edgeConf, "--data", edgeData)
	if code != 0 || deviceSerial(t, edgeData) == renewed {
		t.Fatalf("edge renew --offline: %d %q %q", code, out, stderr)
	}
	start(t, "edge", "--config", edgeConf, "--data", edgeData)
	wait.For(t, 15*time.Second, "the box connected with the certificate renewed offline", func() bool {
		var es statusBody // afresh: the stopped box's answer must not count
		if getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es) != 200 {
			return false
		}
		link, _ := es.service("hub-link")
		return link == "ready"
	})

	auditLog, err := os.ReadFile(filepath.Join(hubData, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(auditLog), `"event":"renew.accepted"`); n != 2 {
		t.Fatalf("want 2 renewals in the hub's audit log, got %d:\n%s", n, auditLog)
	}
}
