package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
	"lifeline/telemetry/protocols"
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
	for _, protocol := range protocols.Names() {
		t.Run(protocol, func(t *testing.T) {
			dir := t.TempDir()
			cable := peers.PlugCable(t)
			monitorEnd, boxEnd := cable.DeviceEnd, cable.BoxEnd

			edgeHTTP, dicomAddr := freePort(t), freePort(t)
			conf := writeFile(t, dir, "edge.toml", fmt.Sprintf(
				"[http]\nlisten = %q\n[dicom]\nlisten = %q\n[[monitor]]\nport = %q\nprotocol = \"auto\"\n", edgeHTTP, dicomAddr, boxEnd))
			start(t, "sim", "monitor", "--protocol", protocol, "--port", monitorEnd)
			start(t, "edge", "--config", conf, "--data", filepath.Join(dir, "edge"))

			var vitals []vital
			wait.For(t, 30*time.Second, "SpO2 and heart or pulse rate in /api/v1/vitals", func() bool {
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
			// The reader reports its own health: ready, naming the detected protocol.
			wait.For(t, 10*time.Second, "monitor service ready with the detected protocol", func() bool {
				var es statusBody
				getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
				st, detail := es.service("monitor " + boxEnd)
				return st == "ready" && strings.Contains(detail, strings.ToUpper(protocol)+" on "+boxEnd)
			})
		})
	}
}
