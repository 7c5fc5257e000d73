package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
)

// TestStrangerCannotReplaceTheMonitor reproduces issue 16 item 2 against the real
// processes: `lifeline edge` listens for HL7 on loopback with allow = ["127.0.0.1"],
// and `lifeline sim monitor` connects as the real monitor (HR 72, SpO2 97 %). A
// stranger (from 127.0.0.2) and then a second client from the allowed address send
// HR 180 and SpO2 62 % with ACKs asked for. Both are cut off unanswered, the box's
// vitals stay the real monitor's throughout, the real monitor keeps its connection,
// and the box's status and metrics say connections were refused.
func TestStrangerCannotReplaceTheMonitor(t *testing.T) {
	dir := t.TempDir()
	edgeHTTP, dicomAddr, monitorAddr := freePort(t), freePort(t), freePort(t)
	port := "tcp://" + monitorAddr
	conf := writeFile(t, dir, "edge.toml", fmt.Sprintf(
		"[http]\nlisten = %q\n[dicom]\nlisten = %q\n[[monitor]]\nport = %q\nprotocol = \"hl7\"\nallow = [\"127.0.0.1\"]\n", edgeHTTP, dicomAddr, port))
	start(t, "edge", "--config", conf, "--data", filepath.Join(dir, "edge"))
	real := start(t, "sim", "monitor", "--protocol", "hl7", "--connect", monitorAddr, "--hr", "72")

	vitals := func() (hr, spo2 float64) {
		var vs []vital
		getJSON(t, "http://"+edgeHTTP+"/api/v1/vitals", &vs)
		for _, v := range vs {
			switch v.Code {
			case "MDC_ECG_HEART_RATE":
				hr = v.Value
			case "MDC_PULS_OXIM_SAT_O2":
				spo2 = v.Value
			}
		}
		return hr, spo2
	}
	wait.For(t, 30*time.Second, "the real monitor's HR 72 and SpO2 97 in /api/v1/vitals", func() bool {
		hr, spo2 := vitals()
		return hr == 72 && spo2 == 97
	})

	for _, from := range []string{"127.0.0.2", "127.0.0.1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		answer, err := impersonate(ctx, from, monitorAddr)
		cancel()
		if err != nil {
			t.Fatalf("impersonating the monitor from %s: %v", from, err)
		}
		if len(answer) != 0 {
			t.Errorf("the box answered the impostor from %s: %q", from, answer)
		}
		if hr, spo2 := vitals(); hr != 72 || spo2 != 97 {
			t.Fatalf("after the impostor from %s: HR %v SpO2 %v; want the real monitor's 72 and 97", from, hr, spo2)
		}
	}
	if err := real.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the real monitor's simulator is gone (its connection broke?): %v\n%s", err, real.stderr)
	}

	wait.For(t, 10*time.Second, "refusals in /metrics", func() bool {
		return refusedCount(t, edgeHTTP, "not_allowed") >= 1 && refusedCount(t, edgeHTTP, "busy") >= 1
	})
	var es statusBody
	getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
	if st, detail := es.service("monitor " + port); st != "ready" || !strings.Contains(detail, "refused") || !strings.Contains(detail, "127.0.0.") {
		t.Errorf("monitor service %s %q: want ready, naming the refused connection", st, detail)
	}
}

// impersonate connects to the monitor port from the local address from and sends,
// for up to two seconds, an impostor's vitals (HR 180, SpO2 62 %) asking for ACKs. It
// returns whatever the box sent back before closing the connection.
func impersonate(ctx context.Context, from, addr string) ([]byte, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	got := make(chan []byte, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	now := time.Now()
	nums := []*telemetry.Numeric{
		{Code: telemetry.MDC_ECG_HEART_RATE, Value: 180, Unit: "/min", Measured: now},
		{Code: telemetry.MDC_PULS_OXIM_SAT_O2, Value: 62, Unit: "%", Measured: now},
	}
	for i := range 20 {
		msg := hl7.EncodeORU(hl7.Header{SendingApp: "IMPOSTOR", ControlID: strconv.Itoa(i), Time: time.Now(), AckType: "AL"}, nums, nil)
		if _, err := c.Write(hl7.Frame(nil, msg)); err != nil {
			break // cut off: what the box should do
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // a monitor's pace
		}
	}
	return <-got, nil
}

var refusedLine = regexp.MustCompile(`(?m)^lifeline_telemetry_refused_connections_total\{[^}]*reason="(\w+)"[^}]*\} (\d+)`)

// refusedCount reads the box's refused-connection counter for reason from /metrics.
func refusedCount(t *testing.T, edgeHTTP, reason string) int {
	t.Helper()
	resp, err := http.Get("http://" + edgeHTTP + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, m := range refusedLine.FindAllStringSubmatch(string(body), -1) {
		if m[1] == reason {
			n, _ := strconv.Atoi(m[2])
			return n
		}
	}
	return 0
}

// TestHostileMonitorMessagesKeepTheBoxSmall measures the box's peak RSS while a
// client on the monitor port sends what cost the most before the limits: 1 MiB
// frames (each once parsed into 234 MiB of allocations) and frames of 128 KiB made of
// separators. The box must stay within 64 MiB of its peak before (the race-enabled
// test binary needs several times a production build's memory).
func TestHostileMonitorMessagesKeepTheBoxSmall(t *testing.T) {
	dir := t.TempDir()
	edgeHTTP, dicomAddr, monitorAddr := freePort(t), freePort(t), freePort(t)
	conf := writeFile(t, dir, "edge.toml", fmt.Sprintf(
		"[http]\nlisten = %q\n[dicom]\nlisten = %q\n[[monitor]]\nport = %q\nprotocol = \"hl7\"\n", edgeHTTP, dicomAddr, "tcp://"+monitorAddr))
	edge := start(t, "edge", "--config", conf, "--data", filepath.Join(dir, "edge"))
	wait.For(t, 20*time.Second, "the box serving", func() bool { return getJSON(t, "http://"+edgeHTTP+"/healthz", nil) == 200 })
	var c net.Conn
	wait.For(t, 10*time.Second, "the monitor port listening", func() bool {
		c, _ = net.Dial("tcp", monitorAddr)
		return c != nil
	})
	defer c.Close()
	go io.Copy(io.Discard, c) // ACKs
	before := peakRSS(t, edge.cmd.Process.Pid)

	header := "MSH|^~\\&|X|Y|||2026||ORU^R01|1|P|2.6|||AL\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|"
	huge := hl7.Frame(nil, []byte(header+strings.Repeat("|", 1<<20)))
	separators := hl7.Frame(nil, []byte(header+strings.Repeat("|", hl7.MaxMessage-len(header))))
	began := time.Now()
	for range 20 {
		for _, m := range [][]byte{huge, separators} {
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write(m); err != nil {
				t.Fatalf("the box stopped reading the monitor port: %v", err)
			}
		}
	}
	sent := 20 * (len(huge) + len(separators))
	// Every byte is skipped but the frames' start bytes.
	wait.For(t, 30*time.Second, "the box to have skipped every frame", func() bool {
		var st struct {
			Services []struct {
				Details struct {
					BadBytes int `json:"bad_bytes"`
				} `json:"details"`
			} `json:"services"`
		}
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &st)
		for _, s := range st.Services {
			if s.Details.BadBytes >= sent-40 {
				return true
			}
		}
		return false
	})
	after := peakRSS(t, edge.cmd.Process.Pid)
	t.Logf("peak RSS %d MiB before, %d MiB after 20 frames of 1 MiB and 20 of 128 KiB of separators (%v)", before>>20, after>>20, time.Since(began).Round(time.Millisecond))
	if after-before > 64<<20 {
		t.Errorf("peak RSS grew by %d MiB", (after-before)>>20)
	}
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
