package monitor

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/peers"
	"lifeline/internal/service"
	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/nonin"
)

// TestHealthSaysWhatToCheck: a reader that has no monitor to read reports itself
// degraded, naming the port and what an operator should check: a box listening that
// no monitor connects to, a monitor to dial that does not answer, a serial port that
// is not there, one on which no known protocol speaks, and a path that is no serial
// port.
func TestHealthSaysWhatToCheck(t *testing.T) {
	t.Parallel()
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	// A cable with nothing on its other end: no protocol is recognised.
	mute := peers.PlugCable(t).BoxEnd
	// A file is not a serial port at all.
	notTTY := filepath.Join(t.TempDir(), "ttyS9")
	if err := os.WriteFile(notTTY, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		port, protocol string
		want           []string
	}{
		{"tcp://" + free(), "hl7", []string{"HL7 on tcp://", "waiting for the monitor to connect"}},
		{"tcp-connect://" + free(), "hl7", []string{"HL7 on 127.0.0.1:", "check the network"}},
		{filepath.Join(t.TempDir(), "ttyUSB9"), "nonin", []string{"NONIN on ", "ttyUSB9", "check that the cable and its USB adapter are plugged in"}},
		{mute, "auto", []string{"monitor on ", mute, "no known protocol heard", "one of hl7, nonin"}},
		{notTTY, "auto", []string{"monitor on ", "ttyS9", "cannot read the port"}},
	}
	sup := service.NewSupervisor(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), service.DefaultBackoff)
	for _, c := range cases {
		// Two of the protocols keep auto-detection short (every probe window is
		// listened to in full when nothing answers).
		drivers := []telemetry.Driver{hl7.New(hl7.Config{}), nonin.New(nonin.Config{})}
		r, err := New(Config{Port: c.port, Protocol: c.protocol, Bus: telemetry.NewBus(nil), Drivers: drivers, RetryMax: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		sup.Add(r.Service())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, 10*time.Second) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for _, c := range cases {
		var last service.Status
		if wait.Until(20*time.Second, func() bool {
			last = serviceStatus(sup, "monitor "+c.port)
			if last.State != service.Degraded {
				return false
			}
			for _, w := range c.want {
				if !strings.Contains(last.Detail, w) {
					return false
				}
			}
			return true
		}) != nil {
			t.Errorf("%s: service %s %q; want degraded saying %q", c.port, last.State, last.Detail, c.want)
		}
	}
}
