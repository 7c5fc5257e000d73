package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/linkemu"
	"lifeline/internal/wait"
	"lifeline/stream/vitals"
)

// doctorClient is a doctor's browser session at the hub's viewer, as plain HTTP from
// the hub's side of the link: the session cookie from a one-time sign-in link, and the
// anti-CSRF token the pages send.
type doctorClient struct {
	c    *http.Client
	csrf string
}

func (s *nsSystem) signInDoctor(t *testing.T) *doctorClient {
	t.Helper()
	add := s.link.Command(linkemu.Hub, binary, "hub", "user", "add", "--user", "dr.li", "--name", "Dr Li", "--role", "doctor", "--config", s.hubConf, "--data", s.hubData)
	add.Stdin = strings.NewReader("correct horse battery\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("hub user add: %v: %s", err, out)
	}
	out, err := s.link.Command(linkemu.Hub, binary, "hub", "user", "link", "--user", "dr.li", "--config", s.hubConf, "--data", s.hubData).Output()
	if err != nil {
		t.Fatalf("hub user link: %v", err)
	}
	link := strings.TrimSpace(string(out))
	token := link[strings.LastIndex(link, "#")+1:]
	caPEM, err := os.ReadFile(filepath.Join(s.hubData, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c := s.link.HTTPClient(linkemu.Hub, 10*time.Second)
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}
	c.Jar, _ = cookiejar.New(nil)
	d := &doctorClient{c: c}
	var who struct {
		User string
		CSRF string
	}
	if code := d.do(t, http.MethodPost, "/api/v1/signin/link", `{"token":"`+token+`"}`, nil); code != 200 {
		t.Fatalf("the sign-in link: %d", code)
	}
	if code := d.do(t, http.MethodGet, "/api/v1/whoami", "", &who); code != 200 || who.User != "dr.li" {
		t.Fatalf("whoami: %d %+v", code, who)
	}
	d.csrf = who.CSRF
	return d
}

// do sends a request to the viewer listener as the signed-in browser would and decodes
// a JSON answer into v.
func (d *doctorClient) do(t *testing.T, method, path, body string, v any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "https://"+nsHubViewer+path, rd)
	req.Header.Set("Origin", "https://"+nsHubViewer)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if d.csrf != "" {
		req.Header.Set("X-CSRF-Token", d.csrf)
	}
	res, err := d.c.Do(req)
	if err != nil {
		t.Logf("%s %s: %v", method, path, err)
		return 0
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if v != nil && res.StatusCode == 200 {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return res.StatusCode
}

// TestTwelveLeadOverRuralLink is the 12-lead round trip across the emulated 4g-rural
// uplink, through the binary: a doctor at the hub asks for a 12-lead ECG; the box, with
// a 12-lead HL7 monitor on for longer than 10 s, makes the DICOM ECG of the 10 s just
// before the request (not the next 10 s: the doctor would wait for them) and forwards it
// STAT over the link; the hub serves it to the doctor with all twelve leads, 10 s at the
// monitor's rate, and it is in the hub's archive.
func TestTwelveLeadOverRuralLink(t *testing.T) {
	s := newNSSystem(t, linkemu.FourGRural(), "AMB-ECG", "[[monitor]]\nport = \"tcp://127.0.0.1:2575\"\nprotocol = \"hl7\"\n")
	monitorOn := time.Now()
	s.start(t, linkemu.Box, "sim", "monitor", "--protocol", "hl7", "--connect", "127.0.0.1:2575", "--12-lead")
	wait.For(t, 90*time.Second, "the box's live stream across the link", func() bool {
		_, ok := s.publisher()
		return ok
	})
	// The box holds the last seconds of every lead once the monitor has sent them.
	time.Sleep(time.Until(monitorOn.Add(vitals.ECGSeconds*time.Second + 3*time.Second)))
	doctor := s.signInDoctor(t)
	api := "/ed/api/box/AMB-ECG"
	var note struct{ Seq uint64 }
	requested := time.Now()
	if code := doctor.do(t, http.MethodPost, api+"/ecg12", "{}", &note); code != 200 || note.Seq == 0 {
		t.Fatalf("the 12-lead request: %d %+v", code, note)
	}
	var crew struct {
		ECGs []struct {
			Ref    uint64
			State  string
			Detail string
			SOP    string
		}
	}
	var ecg struct {
		Acquired string
		Rate     float64
		Labels   []string
		Samples  [][]float64
	}
	var sop string
	wait.For(t, 60*time.Second, "the ECG at the hub", func() bool {
		if doctor.do(t, http.MethodGet, api+"/crew", "", &crew) != 200 {
			return false
		}
		for _, e := range crew.ECGs {
			if e.Ref != note.Seq {
				continue
			}
			if e.State == "failed" {
				t.Fatalf("the box could not acquire the ECG: %s", e.Detail)
			}
			if e.SOP != "" {
				sop = e.SOP
				return doctor.do(t, http.MethodGet, api+"/ecg/"+e.SOP, "", &ecg) == 200
			}
		}
		return false
	})
	took := time.Since(requested)
	t.Logf("12-lead request to ECG at the hub over 4g-rural: %s", took.Round(100*time.Millisecond))
	acquired, err := time.Parse("20060102150405.000000-0700", ecg.Acquired)
	if err != nil {
		t.Fatalf("the ECG's acquisition time %q: %v", ecg.Acquired, err)
	}
	if lead := requested.Sub(acquired); lead < 9*time.Second || lead > 13*time.Second {
		t.Errorf("the ECG starts %v before the request; want the 10 s just before it (%s, request %s)",
			lead.Round(time.Millisecond), acquired.Format(time.TimeOnly), requested.Format(time.TimeOnly))
	}
	if len(ecg.Labels) != 12 || ecg.Rate != 500 || len(ecg.Samples[0]) < 4900 {
		t.Fatalf("the hub served %d leads at %g Hz, %d samples; want 12 leads of 10 s at 500 Hz", len(ecg.Labels), ecg.Rate, len(ecg.Samples[0]))
	}
	var lead2 []float64
	for i, l := range ecg.Labels {
		if l == "Lead II" {
			lead2 = ecg.Samples[i]
		}
	}
	peak := 0.0
	for _, v := range lead2 {
		peak = max(peak, v)
	}
	if peak < 0.5 || peak > 4 {
		t.Fatalf("lead II peaks at %.2f mV: not the monitor's ECG", peak)
	}
	audit, _ := os.ReadFile(filepath.Join(s.hubData, "audit.log"))
	for _, event := range []string{`"ecg.requested"`, `"ecg.viewed"`} {
		if !bytes.Contains(audit, []byte(event)) {
			t.Errorf("audit log lacks %s", event)
		}
	}
	if _, err := os.Stat(filepath.Join(s.hubData, "archive")); err != nil {
		t.Fatalf("hub archive: %v", err)
	}
	found := false
	filepath.Walk(filepath.Join(s.hubData, "archive"), func(path string, info os.FileInfo, err error) error {
		found = found || (err == nil && strings.HasPrefix(filepath.Base(path), sop))
		return nil
	})
	if !found {
		t.Fatalf("ECG %s is not in the hub's archive", sop)
	}
}
