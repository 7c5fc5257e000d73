package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/dispatch"
	"lifeline/dispatch/jt808"
	"lifeline/hardware/gnss"
	"lifeline/hardware/modem"
	"lifeline/internal/durable"
	"lifeline/internal/peers"
	"lifeline/internal/service"
	"lifeline/internal/wait"
)

// TestSimulatedAmbulanceReportsToSimulatedDispatch runs the three simulators as the
// operator would (separate processes; GNSS and modem on socat cables at their real
// rates), and the box's libraries against them: the GNSS receiver and modem readers,
// the dispatch reporter on a mission. The platform's JSON log must show the
// ambulance in Guangzhou with the modem's signal, and a text from dispatch must reach
// the crew.
func TestSimulatedAmbulanceReportsToSimulatedDispatch(t *testing.T) {
	gnssCable, modemCable := peers.PlugCable(t), peers.PlugCable(t)
	dir := t.TempDir()
	addr := freePort(t)
	logPath := filepath.Join(dir, "reports.jsonl")

	disp := exec.Command(binary, "sim", "dispatch", "--listen", addr, "--log", logPath)
	stdin, err := disp.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var dispErr strings.Builder
	disp.Stderr = &syncWriter{w: &dispErr}
	if err := disp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); stopSimProcess(disp) })
	start(t, "sim", "gnss", "--port", gnssCable.DeviceEnd, "--baud", "9600", "--interval", "200ms", "--speed", "60")
	start(t, "sim", "modem", "--port", modemCable.DeviceEnd, "--urc-every", "1s")

	store, err := durable.Open(filepath.Join(dir, "edge.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	mission, _ := dispatch.NewMission(store, time.Now())
	mission.Set(dispatch.Dispatched, time.Now())
	mission.Set(dispatch.EnRoute, time.Now())
	md := modem.New(modem.Config{Port: modemCable.BoxEnd, Interval: 200 * time.Millisecond})
	var mu sync.Mutex
	var texts []string
	rep, err := dispatch.NewReporter(dispatch.Config{Server: addr, Edition: jt808.Edition2019, Phone: "13800138000",
		Store: store, Mission: mission, Signal: md.Signal, ResponseTimeout: 3 * time.Second,
		OnText: func(m jt808.TextMessage) { mu.Lock(); texts = append(texts, m.Text); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	rx := gnss.New(gnss.Config{Port: gnssCable.BoxEnd, Baud: 9600, OnFix: func(f gnss.Fix) { rep.Offer(f) }})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context, *service.Health) error{rx.Run, md.Run, rep.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx, &service.Health{}) }()
	}
	defer func() { cancel(); wg.Wait() }()

	wait.For(t, 30*time.Second, "three reports in Guangzhou with the modem's signal in the platform's log", func() bool {
		n := 0
		for _, r := range readReports(logPath) {
			if r.Lat > 23.12 && r.Lat < 23.14 && r.Lon > 113.27 && r.Lon < 113.33 && r.Signal != nil && *r.Signal > 0 {
				n++
			}
		}
		return n >= 3
	})
	if _, err := stdin.Write([]byte("text 00000000013800138000 请到急诊门口\n")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "dispatch's text to reach the crew", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(texts) == 1 && texts[0] == "请到急诊门口"
	})
}

func readReports(path string) []jt808.Report {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []jt808.Report
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r jt808.Report
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// stopSimProcess stops a simulator started with its own stdin (SIGINT, then SIGKILL
// after 5 s).
func stopSimProcess(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func TestDispatchCommandLines(t *testing.T) {
	for _, c := range []struct {
		line string
		id   uint16
		ok   bool
	}{
		{"interval 1 10", jt808.IDSetParams, true},
		{"server 1 10.0.0.1:7808", jt808.IDSetParams, true},
		{"query 1", jt808.IDLocationQuery, true},
		{"params 1", jt808.IDQueryParams, true},
		{"track 1 1 600", jt808.IDTemporaryTracking, true},
		{"text 1 前方拥堵 请绕行", jt808.IDTextMessage, true},
		{"interval 1", 0, false},
		{"server 1 nowhere", 0, false},
		{"text 1", 0, false},
		{"reboot 1", 0, false},
	} {
		id, body, err := dispatchMessage(strings.Fields(c.line), jt808.Edition2019)
		if (err == nil) != c.ok || id != c.id {
			t.Errorf("%q: id 0x%04x, err %v", c.line, id, err)
			continue
		}
		if id == jt808.IDTextMessage {
			if tm, _ := jt808.ParseTextMessage(body, jt808.Edition2019); tm.Text != "前方拥堵 请绕行" {
				t.Errorf("text %q", tm.Text)
			}
		}
		if id == jt808.IDSetParams && strings.HasPrefix(c.line, "server") {
			sp, _ := jt808.ParseSetParams(body)
			if len(sp.Params) != 2 || sp.Params[0].String() != "10.0.0.1" {
				t.Errorf("server params %+v", sp.Params)
			}
		}
	}
}
