package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/internal/linkemu"
	"lifeline/internal/proclog"
	"lifeline/internal/wait"
	"lifeline/stream/bench/whepviewer"
	"lifeline/telemetry"
	"lifeline/telemetry/protocols"
)

// system is the hub and a box run as the real binary: on loopback, or each in its
// end of an emulated link (then every address is fixed, as each link has namespaces
// of its own).
type system struct {
	bin, dir                        string
	device                          string
	link                            *linkemu.Link // nil on loopback
	hubConf, edgeConf               string
	hubData, edgeData               string
	hubServer, hubViewer, hubStatus string
	boxHTTP                         string
	hubClient, boxClient            *http.Client
	hub, box                        *exec.Cmd
	hubLog, boxLog                  *proclog.Buffer
	monitorStop                     func()
	closeOnce                       sync.Once
}

// systemConfig says what runs.
type systemConfig struct {
	bin     string
	profile *linkemu.Profile // nil: loopback
	device  string
	camera  string // the box's [[camera]] url; empty: none
	// monitor runs the HL7 simulator on a socat cable to the box, calling sent with
	// the time of every numeric it writes; twelveLead sends all twelve ECG leads.
	monitor    bool
	twelveLead bool
	sent       func(key string, at time.Time)
	// noBox starts the hub alone (the bench publishes itself).
	noBox bool
}

func freeLoopback() (string, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		udp, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			udp.Close()
			return addr, nil
		}
	}
	return "", errors.New("no free port")
}

func startSystem(cfg systemConfig) (*system, error) {
	dir, err := os.MkdirTemp("", "bench-stream-")
	if err != nil {
		return nil, err
	}
	s := &system{bin: cfg.bin, dir: dir, device: cfg.device, hubData: filepath.Join(dir, "hub"), edgeData: filepath.Join(dir, "edge"),
		hubLog: &proclog.Buffer{}, boxLog: &proclog.Buffer{}}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	var hubStream, dicom string
	if cfg.profile != nil {
		s.link, err = linkemu.Start(context.Background(), *cfg.profile, linkemu.Options{Logger: slog.New(slog.DiscardHandler), Seed: 12})
		if err != nil {
			return nil, err
		}
		h := s.link.HubAddr().String()
		s.hubServer, s.hubViewer, hubStream = h+":8443", h+":8444", h+":8445"
		s.hubStatus, s.boxHTTP, dicom = "127.0.0.1:8781", "127.0.0.1:8780", "127.0.0.1:11112"
	} else {
		addrs := make([]string, 6)
		for i := range addrs {
			if addrs[i], err = freeLoopback(); err != nil {
				return nil, err
			}
		}
		s.hubServer, s.hubViewer, hubStream, s.hubStatus, s.boxHTTP, dicom = addrs[0], addrs[1], addrs[2], addrs[3], addrs[4], addrs[5]
	}
	s.hubClient, s.boxClient = s.httpClient(linkemu.Hub), s.httpClient(linkemu.Box)
	host, _, _ := net.SplitHostPort(s.hubServer)
	s.hubConf = filepath.Join(dir, "hub.toml")
	if err := os.WriteFile(s.hubConf, fmt.Appendf(nil, "[server]\nlisten = %q\nnames = [%q]\n[status]\nlisten = %q\n[viewer]\nlisten = %q\n[stream]\nlisten = %q\n",
		s.hubServer, host, s.hubStatus, s.hubViewer, hubStream), 0o600); err != nil {
		return nil, err
	}
	edge := fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = \"https://%s\"\n[dicom]\nlisten = %q\n", s.boxHTTP, s.hubServer, dicom)
	if cfg.camera != "" {
		edge += fmt.Sprintf("[[camera]]\nurl = %q\n", cfg.camera)
	}
	if cfg.monitor {
		boxEnd, stop, err := startMonitor(dir, cfg.twelveLead, cfg.sent)
		if err != nil {
			return nil, err
		}
		s.monitorStop = stop
		edge += fmt.Sprintf("[[monitor]]\nport = %q\nprotocol = \"hl7\"\n", boxEnd)
	}
	s.edgeConf = filepath.Join(dir, "edge.toml")
	if err := os.WriteFile(s.edgeConf, []byte(edge), 0o600); err != nil {
		return nil, err
	}
	out, err := exec.Command(s.bin, "hub", "enroll", "--data", s.hubData, "--config", s.hubConf, "--device", cfg.device).Output()
	if err != nil {
		return nil, fmt.Errorf("hub enroll: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	code := lines[len(lines)-1]
	if s.hub, err = s.startProc(linkemu.Hub, s.hubLog, "hub", "--config", s.hubConf, "--data", s.hubData); err != nil {
		return nil, err
	}
	if err := waitFor(20*time.Second, "hub serving", func() bool { return s.hubReady() }); err != nil {
		return nil, err
	}
	if cfg.noBox {
		ok = true
		return s, nil
	}
	if out, err := s.command(linkemu.Box, "edge", "enroll", "--config", s.edgeConf, "--data", s.edgeData, "--code", code).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("edge enroll: %v: %s", err, out)
	}
	if s.box, err = s.startProc(linkemu.Box, s.boxLog, "edge", "--config", s.edgeConf, "--data", s.edgeData); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// in runs fn where side's sockets live.
func (s *system) in(side linkemu.Side) func(fn func() error) error {
	if s.link == nil {
		return func(fn func() error) error { return fn() }
	}
	return func(fn func() error) error { return s.link.In(side, fn) }
}

func (s *system) command(side linkemu.Side, args ...string) *exec.Cmd {
	if s.link == nil {
		return exec.Command(s.bin, args...)
	}
	return s.link.Command(side, s.bin, args...)
}

func (s *system) startProc(side linkemu.Side, log *proclog.Buffer, args ...string) (*exec.Cmd, error) {
	cmd := s.command(side, args...)
	cmd.Stderr = log
	return cmd, cmd.Start()
}

func (s *system) httpClient(side linkemu.Side) *http.Client {
	if s.link == nil {
		return &http.Client{Timeout: 5 * time.Second}
	}
	return s.link.HTTPClient(side, 5*time.Second)
}

func getJSON(c *http.Client, url string, v any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return json.Unmarshal(body, v)
}

func (s *system) hubReady() bool {
	var raw map[string]any
	if getJSON(s.hubClient, "http://"+s.hubStatus+"/api/v1/status", &raw) != nil {
		return false
	}
	return strings.Contains(fmt.Sprint(raw), "hub-server")
}

type publisherStatus struct {
	State       string `json:"state"`
	ICERestarts int    `json:"ice_restarts"`
	NewSessions int    `json:"new_sessions"`
	LastError   string `json:"last_error"`
	FramesSent  uint64 `json:"frames_sent"`
	Dropped     uint64 `json:"frames_dropped"`
	OverBudget  uint64 `json:"frames_over_budget"`
	Target      int    `json:"target_bitrate_bps"`
}

func (s *system) publisher() publisherStatus {
	var st struct {
		Services []struct {
			Name    string `json:"name"`
			Details struct {
				Publisher publisherStatus `json:"publisher"`
			} `json:"details"`
		} `json:"services"`
	}
	if getJSON(s.boxClient, "http://"+s.boxHTTP+"/api/v1/status", &st) != nil {
		return publisherStatus{}
	}
	for _, svc := range st.Services {
		if svc.Name == "live-stream" {
			return svc.Details.Publisher
		}
	}
	return publisherStatus{}
}

func (s *system) waitConnected(d time.Duration) error {
	return waitFor(d, "the box's live stream connected", func() bool { return s.publisher().State == "connected" })
}

// watch opens a pion WHEP viewer on the hub's side with a fresh viewer token.
func (s *system) watch(hooks whepviewer.Hooks) (*whepviewer.Viewer, error) {
	out, err := exec.Command(s.bin, "hub", "viewer-token", "--device", s.device, "--for", "bench", "--config", s.hubConf, "--data", s.hubData).Output()
	if err != nil {
		return nil, fmt.Errorf("hub viewer-token: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	host, _, _ := net.SplitHostPort(s.hubViewer)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return whepviewer.Watch(ctx, "https://"+s.hubViewer+"/whep/"+s.device, lines[len(lines)-1],
		whepviewer.Config{Socket: s.in(linkemu.Hub), UDPAddr: host + ":0"}, hooks)
}

// rss returns the box process's resident set in bytes (ip netns exec execs in place,
// so the command's process is the box).
func (s *system) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.box.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &kb); err == nil {
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS")
}

func stopProc(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(6 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (s *system) close() {
	s.closeOnce.Do(func() {
		stopProc(s.box)
		stopProc(s.hub)
		if verbose {
			for _, l := range []struct {
				name string
				log  *proclog.Buffer
			}{{"box", s.boxLog}, {"hub", s.hubLog}} {
				for _, line := range strings.Split(l.log.String(), "\n") {
					if strings.Contains(line, "whip") || strings.Contains(line, "sfu") {
						fmt.Fprintf(os.Stderr, "%s: %s\n", l.name, line)
					}
				}
			}
		}
		if s.monitorStop != nil {
			s.monitorStop()
		}
		if s.link != nil {
			s.link.Close()
		}
		os.RemoveAll(s.dir)
	})
}

// startMonitor plugs a socat cable into dir and runs the HL7 simulator on its device
// end in this process; sent gets "MDC_NAME@unix-ms" of every numeric as it is
// written. It returns the box's end.
func startMonitor(dir string, twelveLead bool, sent func(string, time.Time)) (string, func(), error) {
	boxEnd, devEnd := filepath.Join(dir, "box-pty"), filepath.Join(dir, "monitor-pty")
	socat := exec.Command("socat", "pty,raw,echo=0,link="+boxEnd, "pty,raw,echo=0,link="+devEnd)
	if err := socat.Start(); err != nil {
		return "", nil, fmt.Errorf("socat: %w", err)
	}
	stopSocat := func() { socat.Process.Kill(); socat.Wait() }
	if err := waitFor(5*time.Second, "the cable's ptys", func() bool {
		_, e1 := os.Stat(boxEnd)
		_, e2 := os.Stat(devEnd)
		return e1 == nil && e2 == nil
	}); err != nil {
		stopSocat()
		return "", nil, err
	}
	p, _ := protocols.Lookup("hl7")
	mode := p.NewDriver(telemetry.DriverConfig{}).Serial()
	port, err := serialport.Open(devEnd, serialport.Mode{Baud: mode.Baud, DataBits: mode.DataBits, Parity: mode.Parity.String()[0], StopBits: mode.StopBits})
	if err != nil {
		stopSocat()
		return "", nil, err
	}
	var hook func(telemetry.Event)
	if sent != nil {
		hook = func(e telemetry.Event) {
			if n, ok := e.(*telemetry.Numeric); ok {
				sent(numericKey(n.Code.Name(), n.MonitorTime), time.Now())
			}
		}
	}
	sim := p.NewSimulator(telemetry.SimConfig{TwelveLead: twelveLead, Sent: hook})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sim.Run(ctx, port) }()
	return boxEnd, func() { cancel(); port.Close(); <-done; stopSocat() }, nil
}

func numericKey(mdc string, monitorTime time.Time) string {
	return fmt.Sprintf("%s@%d", mdc, monitorTime.UnixMilli())
}

// waitFor waits until cond holds or d passes, naming what it waited for.
func waitFor(d time.Duration, what string, cond func() bool) error {
	if wait.Until(d, cond) != nil {
		return fmt.Errorf("timed out after %v waiting for %s", d, what)
	}
	return nil
}
