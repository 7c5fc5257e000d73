package gnss

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.bug.st/serial/enumerator"

	"lifeline/hardware/serialport"
	"lifeline/internal/peers"
	"lifeline/internal/service"
	"lifeline/internal/wait"
)

// TestMain doubles as gpsd for gpsfake: gpsfake starts the "gpsd" it finds in
// GPSD_HOME, which the test points at this binary. In that role it only stays alive
// until gpsfake goes away; the test itself answers gpsfake's control socket and reads
// the pty, as gpsd would. So the tests need gpsfake, not gpsd.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "gpsd" {
		parent := os.Getppid()
		for os.Getppid() == parent {
			time.Sleep(200 * time.Millisecond)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// nmeaLines counts a log's sentences (lines that are not comments).
func nmeaLines(t *testing.T, path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "$") {
			n++
		}
	}
	return n
}

func TestSimulatedEpochParses(t *testing.T) {
	at := time.Date(2026, 12, 2, 8, 30, 15, 0, time.UTC)
	in := NewIntake(nil, nil)
	for _, l := range strings.Split(SimEpoch{Time: at, Lat: 23.129163, Lon: -113.264435, SpeedKmh: 54, Course: 91.5, Fix: true}.Sentences(), "\n") {
		in.Line(l, at)
	}
	in.Flush(at)
	f := in.Latest()
	if !f.Valid || !near(f.Lat, 23.129163, 1e-7) || !near(f.Lon, -113.264435, 1e-7) || !near(f.SpeedKmh, 54, 0.01) || f.CourseDeg != 91.5 {
		t.Fatalf("fix %+v", f)
	}
	if !f.Time.Equal(at) || f.Satellites != 12 || !f.Uses(BeiDou) || !f.Uses(GPS) || f.InView != 14 || in.Stats().Bad != 0 {
		t.Errorf("time %v sats %d systems %v in view %d stats %+v", f.Time, f.Satellites, f.Systems, f.InView, in.Stats())
	}
	in.Line(strings.Split(SimEpoch{Time: at.Add(time.Second)}.Sentences(), "\r\n")[0], at.Add(time.Second))
	in.Flush(at.Add(time.Second))
	if in.Latest().Valid {
		t.Error("a tunnel epoch came out valid")
	}
}

func TestRoutePosition(t *testing.T) {
	r := []Waypoint{{30, 120}, {30.01, 120}, {30.01, 120.01}}
	lat, lon, course := RoutePosition(r, DistanceM(30, 120, 30.01, 120)+10)
	if !near(lat, 30.01, 1e-9) || lon <= 120 || !near(course, 90, 0.01) {
		t.Errorf("(%v, %v) course %v", lat, lon, course)
	}
}

// runReceiver runs a Receiver under a real supervisor, as the box does, and returns it
// with a function that reads the service's status.
func runReceiver(t *testing.T, cfg Config) (*Receiver, func() service.Status) {
	t.Helper()
	r := New(cfg)
	sup := service.NewSupervisor(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), service.DefaultBackoff)
	sup.Add(service.Service{Name: "gnss", Run: r.Run})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("supervisor: %v", err)
		}
	})
	return r, func() service.Status {
		for _, st := range sup.Status() {
			if st.Name == "gnss" {
				return st
			}
		}
		return service.Status{}
	}
}

// startGpsfake has Debian's gpsfake replay log once through a pty at baud and returns
// the pty's path. gpsfake starts this test binary as its "gpsd" (see TestMain) and
// announces the pty on gpsd's control socket, which the test answers.
func startGpsfake(t *testing.T, log string, baud int) string {
	t.Helper()
	gpsfake := peers.Need(t, "gpsfake")[0]
	dir := t.TempDir()
	ln0, _ := net.Listen("tcp", "127.0.0.1:0") // a free port for gpsfake's (absent) daemon
	port := fmt.Sprint(ln0.Addr().(*net.TCPAddr).Port)
	ln0.Close()
	home := filepath.Join(dir, "gpsd-home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(home, "gpsd")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gpsfake, "-1", "-q", "-c", "0.05", "-s", fmt.Sprint(baud), "-P", port, "-W", "60", log)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "GPSD_HOME="+home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// gpsfake's "gpsd" (this binary) shares its stderr; it exits when gpsfake does,
	// but Wait must not hang on the pipe if it lingers.
	cmd.WaitDelay = 5 * time.Second
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		timer := time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
		timer.Stop()
	})
	// gpsfake waits for the daemon's control socket, then announces the pty on it.
	ctl, err := net.Listen("unix", filepath.Join(dir, fmt.Sprintf("gpsfake-%d.sock", cmd.Process.Pid)))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ctl.(*net.UnixListener).SetDeadline(time.Now().Add(20 * time.Second))
	c, err := ctl.Accept()
	if err != nil {
		t.Fatalf("gpsfake did not announce its pty: %v (gpsfake: %s)", err, stderr.String())
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	cmdLine, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(cmdLine, "+/dev/") {
		t.Fatalf("control command %q: %v", cmdLine, err)
	}
	c.Write([]byte("OK\n"))
	c.Close()
	pty := strings.TrimSpace(cmdLine[1:])
	return pty
}

// TestGpsfakeReplaysLogsToReceiver: Debian's gpsfake replays gpsd's regression logs
// through a pty at each receiver's rate; our Receiver reads them through
// go.bug.st/serial as it reads a real receiver.
func TestGpsfakeReplaysLogsToReceiver(t *testing.T) {
	for _, c := range []struct {
		log      string
		baud     int
		lat      float64
		system   System
		bad, unk int64 // expected counts (see below)
	}{
		// SiRF TriG near Shanghai, BeiDou on GB. gpsfake passes the log's "# Date:"
		// comment on as a line of its own and, replaying once (-1), ends with a
		// "# EOF" line: the two lines that are not NMEA, counted as bad. The 5
		// unsupported are SiRF's own PSRFEPE.
		{"beidou-gb.log", 9600, 31 + 14.8789/60, BeiDou, 2, 5},
		// Quectel L76K in Seattle at its 115200 baud, NMEA 4.11 (its GLL and TXT
		// parse, and are not used).
		{"quectel-l76k-nmea.log", 115200, 47 + 39.71890/60, GLONASS, 2, 0},
	} {
		t.Run(c.log, func(t *testing.T) {
			log, _ := filepath.Abs(filepath.Join("testdata", c.log))
			pty := startGpsfake(t, log, c.baud)
			var mu sync.Mutex
			var fixes []Fix
			r, health := runReceiver(t, Config{Port: pty, Baud: c.baud, OnFix: func(f Fix) {
				mu.Lock()
				fixes = append(fixes, f)
				mu.Unlock()
			}})
			wait.For(t, 30*time.Second, "the log's fix from gpsfake", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, f := range fixes {
					if f.Valid && near(f.Lat, c.lat, 1e-6) && f.Uses(c.system) {
						return true
					}
				}
				return false
			})
			wait.For(t, 5*time.Second, "the service to be ready with a 3D fix", func() bool {
				st := health()
				return r.Status().State == Fixed && st.State == service.Ready && strings.Contains(st.Detail, "3D")
			})
			lines := nmeaLines(t, log) + 2 // and "# Date:" and "# EOF"
			wait.For(t, 10*time.Second, "every line of the log", func() bool {
				st := r.Stats()
				return st.Sentences+st.Unsupported+st.Bad >= lines
			})
			if st := r.Stats(); st.Bad != c.bad || st.Unsupported != c.unk {
				t.Errorf("counts through gpsfake: %+v, want %d bad, %d unsupported", st, c.bad, c.unk)
			}
		})
	}
}

// TestSimulatorThroughSocatCableAndReplug: our simulator drives a route onto one end
// of a socat cable at 9600 baud, the Receiver reads the other through go.bug.st/serial.
// The cable is pulled (the receiver goes silent and the port away) and a new one comes
// back under another name; the Receiver finds it by its USB identity.
func TestSimulatorThroughSocatCableAndReplug(t *testing.T) {
	first := peers.PlugCable(t)
	var mu sync.Mutex
	current := first.BoxEnd
	usb := serialport.USBID{VID: "1546", PID: "01a8", Serial: "GNSS-1"} // a u-blox receiver
	lister := func() ([]*enumerator.PortDetails, error) {
		mu.Lock()
		defer mu.Unlock()
		return []*enumerator.PortDetails{{Name: current, IsUSB: true, VID: usb.VID, PID: usb.PID, SerialNumber: usb.Serial}}, nil
	}
	drive := func(c *peers.Cable, start time.Time) context.CancelFunc {
		dev, err := serialport.Open(c.DeviceEnd, serialport.Mode{Baud: 9600})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Simulate(ctx, dev, SimConfig{Route: []Waypoint{{22.5431, 114.0579}, {22.5531, 114.0679}}, SpeedKmh: 60, Loop: true, Start: start, Interval: 100 * time.Millisecond})
		}()
		return func() { cancel(); <-done; dev.Close() }
	}
	stop1 := drive(first, time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC))
	r, health := runReceiver(t, Config{Port: first.BoxEnd, Baud: 9600, USB: usb, Lister: lister})
	wait.For(t, 10*time.Second, "a fix in Shenzhen through the cable", func() bool {
		st := r.Status()
		return st.State == Fixed && st.Fix != nil && math.Abs(st.Fix.Lat-22.54) < 0.02
	})
	stop1()
	first.Pull()
	wait.For(t, 10*time.Second, "the receiver to go silent after the unplug", func() bool { return r.Status().State == Silent })
	if st := health(); st.State != service.Degraded {
		t.Errorf("service after the unplug: %+v", st)
	}

	second := peers.PlugCable(t)
	mu.Lock()
	current = second.BoxEnd
	mu.Unlock()
	stop2 := drive(second, time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC))
	defer stop2()
	wait.For(t, 15*time.Second, "a fix again after the receiver came back under another name", func() bool {
		st := r.Status()
		return st.State == Fixed && st.Fix.Time.Hour() == 2
	})
}
