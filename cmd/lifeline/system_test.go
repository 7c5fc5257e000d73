package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// testSystem is a hub and a box run as the real binary on loopback ports of their own,
// with a one-time enrolment code for the box already issued: the setting of the
// end-to-end tests of the box's imaging path.
type testSystem struct {
	dir                            string
	hubConf, edgeConf              string
	hubData, edgeData              string
	hubStatus, edgeHTTP, dicomAddr string // loopback addresses: hub status, box HTTP, box DICOM SCP
	enrolCode                      string
}

// newTestSystem writes hub.toml (with hubExtra appended, e.g. a [pacs] section) and
// edge.toml (with dicomExtra appended to its [dicom] section) and issues an enrolment
// code for device. Nothing runs yet.
func newTestSystem(t *testing.T, device, hubExtra, dicomExtra string) *testSystem {
	t.Helper()
	dir := t.TempDir()
	hubAddr := freePort(t)
	s := &testSystem{dir: dir, hubStatus: freePort(t), edgeHTTP: freePort(t), dicomAddr: freePort(t),
		hubData: filepath.Join(dir, "hub"), edgeData: filepath.Join(dir, "edge")}
	s.hubConf = writeFile(t, dir, "hub.toml", fmt.Sprintf("[server]\nlisten = %q\n[status]\nlisten = %q\n%s", hubAddr, s.hubStatus, hubExtra))
	s.edgeConf = writeFile(t, dir, "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = \"https://%s\"\n[dicom]\nlisten = %q\n%s",
		s.edgeHTTP, hubAddr, s.dicomAddr, dicomExtra))
	code, out, stderr := lifeline(t, "hub", "enroll", "--data", s.hubData, "--config", s.hubConf, "--device", device)
	if code != 0 {
		t.Fatalf("hub enroll: status %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	s.enrolCode = lines[len(lines)-1]
	return s
}

func (s *testSystem) startHub(t *testing.T) *proc {
	return start(t, "hub", "--config", s.hubConf, "--data", s.hubData)
}

func (s *testSystem) startBox(t *testing.T) *proc {
	return start(t, "edge", "--config", s.edgeConf, "--data", s.edgeData)
}

// enrolBox runs `lifeline edge enroll` with the system's code, as the crew would.
func (s *testSystem) enrolBox(t *testing.T) {
	t.Helper()
	if code, _, stderr := lifeline(t, "edge", "enroll", "--config", s.edgeConf, "--data", s.edgeData, "--code", s.enrolCode); code != 0 {
		t.Fatalf("edge enroll: status %d: %s", code, stderr)
	}
}

// boxStatus reads the box's /api/v1/status.
func (s *testSystem) boxStatus(t *testing.T) statusBody {
	t.Helper()
	var st statusBody
	getJSON(t, "http://"+s.edgeHTTP+"/api/v1/status", &st)
	return st
}

// hubReports reports whether the hub's /api/v1/status mentions every one of words.
func (s *testSystem) hubReports(t *testing.T, words ...string) bool {
	t.Helper()
	var raw map[string]any
	getJSON(t, "http://"+s.hubStatus+"/api/v1/status", &raw)
	text := fmt.Sprint(raw)
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}
