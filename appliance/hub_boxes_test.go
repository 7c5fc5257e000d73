package appliance

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/trust"
)

// TestHubBoardOfBoxes: an enrolled box's report reaches the board (Hub.Boxes and the
// status listener's /api/v1/boxes) with the hub's time of contact; a report that is
// too large, not WGS-84 or without a fix state is refused and leaves the board alone;
// without a certificate nothing is taken; the viewer side's board wants a sign-in.
func TestHubBoardOfBoxes(t *testing.T) {
	hub, cfg, dir := startHub(t, nil)
	admin := HubAdmin{DataDir: filepath.Join(dir, "hub"), Lifetime: time.Hour, Log: quietLog()}
	code, err := admin.Enrol("AMB-0042")
	if err != nil {
		t.Fatal(err)
	}
	id, err := trust.Enroll(context.Background(), "https://"+cfg.Server.Listen, code.Code, filepath.Join(dir, "box"))
	if err != nil {
		t.Fatal(err)
	}
	box := &http.Client{Transport: &http.Transport{TLSClientConfig: id.ClientTLS()}, Timeout: 5 * time.Second}
	url := "https://" + cfg.Server.Listen + BoxReportPath
	rsrp := -92.0
	good := BoxReport{Time: time.Now().UTC(), Fix: FixFixed, SpeedKmh: 48,
		Position: &BoxPosition{Lat: 23.13, Lon: 113.3, Datum: "WGS-84", Time: time.Now().UTC(), Satellites: 11},
		Mission:  BoxMission{State: "en route", Since: time.Now().UTC()},
		Link:     &BoxLink{Technology: "NR5G-SA", Registered: true, RSRP: &rsrp, Bars: 4}}
	if err := postReport(context.Background(), box, url, good); err != nil {
		t.Fatal(err)
	}
	boxes, err := hub.Boxes(context.Background())
	if err != nil || len(boxes) != 1 {
		t.Fatalf("board %+v, %v", boxes, err)
	}
	b := boxes[0]
	if b.Device != "AMB-0042" || b.Position.Lat != 23.13 || b.Link.Bars != 4 || *b.Link.RSRP != -92 || b.Live ||
		time.Since(b.LastContact) > 5*time.Second || b.Mission.State != "en route" {
		t.Fatalf("board entry %+v", b)
	}

	wrongDatum := good
	wrongDatum.Position = &BoxPosition{Lat: 23.13, Lon: 113.3, Datum: "GCJ-02"}
	noFix := good
	noFix.Fix = ""
	for name, r := range map[string]BoxReport{"GCJ-02": wrongDatum, "no fix state": noFix} {
		if err := postReport(context.Background(), box, url, r); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
	huge := `{"fix":"fixed","mission":{"state":"available"},"pad":"` + strings.Repeat("x", maxBoxReport) + `"}`
	if resp, err := box.Post(url, "application/json", strings.NewReader(huge)); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a report over %d bytes: %v %v", maxBoxReport, resp, err)
	} else {
		resp.Body.Close()
	}
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
	if resp, err := anon.Post(url, "application/json", bytes.NewReader([]byte(`{"fix":"fixed","mission":{"state":"available"}}`))); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a report without a certificate: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if boxes, _ := hub.Boxes(context.Background()); len(boxes) != 1 || boxes[0].Position.Datum != "WGS-84" {
		t.Fatalf("refused reports changed the board: %+v", boxes)
	}

	var listed []BoxSummary
	resp, err := http.Get("http://" + cfg.Status.Listen + "/api/v1/boxes")
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeJSON(resp, &listed); err != nil || len(listed) != 1 || listed[0].Device != "AMB-0042" || listed[0].ETA != nil {
		t.Fatalf("status listener's board: %+v %v", listed, err)
	}
	viewer := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = viewer.Get("https://" + cfg.Viewer.Listen + "/api/v1/boxes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the viewer side's board without a sign-in: %s, want 401", resp.Status)
	}
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
