package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/peers"
)

type vital struct {
	Code  string  `json:"code"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Time  string  `json:"time"`
}

// TestVitalsFromSimulatedMonitorOverPty cables `lifeline sim monitor` to `lifeline edge`
// through a socat pty pair, the box auto-detects each protocol, and the numerics come
// out of GET /api/v1/vitals in the form DESIGN.md promises.
func TestVitalsFromSimulatedMonitorOverPty(t *testing.T) {
	socat := peers.Need(t, "socat")[0]
	for _, protocol := range []string{"nonin", "hl7", "datex", "intellivue"} {
		t.Run(protocol, func(t *testing.T) {
			dir := t.TempDir()
			monitorEnd, boxEnd := filepath.Join(dir, "monitor"), filepath.Join(dir, "box")
			cable := exec.Command(socat, "pty,raw,echo=0,link="+monitorEnd, "pty,raw,echo=0,link="+boxEnd)
			if err := cable.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cable.Process.Kill(); cable.Wait() })
			eventually(t, "pty pair", 5*time.Second, func() bool {
				_, e1 := os.Stat(monitorEnd)
				_, e2 := os.Stat(boxEnd)
				return e1 == nil && e2 == nil
			})

			edgeHTTP, dicomAddr := freePort(t), freePort(t)
			conf := writeFile(t, dir, "edge.toml", fmt.Sprintf(
				"[http]\nlisten = %q\n[dicom]\nlisten = %q\n[[monitor]]\nport = %q\nprotocol = \"auto\"\n", edgeHTTP, dicomAddr, boxEnd))
			start(t, "sim", "monitor", "--protocol", protocol, "--port", monitorEnd)
			start(t, "edge", "--config", conf, "--data", filepath.Join(dir, "edge"))

			var vitals []vital
			eventually(t, "SpO2 and heart or pulse rate in /api/v1/vitals", 30*time.Second, func() bool {
				vitals = nil
				getJSON(t, "http://"+edgeHTTP+"/api/v1/vitals", &vitals)
				var spo2, rate bool
				for _, v := range vitals {
					switch v.Code {
					case "MDC_PULS_OXIM_SAT_O2":
						spo2 = v.Unit == "%" && v.Value > 50 && v.Value <= 100
					case "MDC_ECG_HEART_RATE", "MDC_PULS_OXIM_PULS_RATE":
						rate = rate || (v.Unit == "/min" && v.Value > 20 && v.Value < 250)
					}
				}
				return spo2 && rate
			})
			for _, v := range vitals {
				if !strings.HasPrefix(v.Code, "MDC_") || v.Unit == "" {
					t.Errorf("vital %+v: want an MDC code and a UCUM unit", v)
				}
				if ts, err := time.Parse(time.RFC3339, v.Time); err != nil || time.Since(ts) > time.Minute {
					t.Errorf("vital %+v: time is not a recent RFC 3339 time", v)
				}
			}
			// The service mirrors the reader's state every half second.
			eventually(t, "monitor service ready with the detected protocol", 5*time.Second, func() bool {
				var es statusBody
				getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
				st, detail := es.service("monitor " + boxEnd)
				return st == "ready" && strings.Contains(detail, protocol)
			})
		})
	}
}
