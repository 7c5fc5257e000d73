//go:build bench

package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"lifeline/dispatch/jt808"
	"lifeline/internal/linkemu"
	"lifeline/internal/peers"
	"lifeline/internal/service"
	"lifeline/internal/wait"
)

// Run: go test -tags bench -run TestBench -v -count=1 ./dispatch

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssKB reads the process's current and peak resident set from /proc.
func rssKB(t testing.TB) (now, peak int) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			now, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			peak, _ = strconv.Atoi(f[1])
		}
	}
	return now, peak
}

// TestBenchDispatchThroughput: location reports encoded, framed, sent over loopback
// TCP to the platform simulator and answered, one at a time (0x0200, each waiting for
// its 0x8001 as the reporter does) and in blind-zone batches of 20 (0x0704).
func TestBenchDispatchThroughput(t *testing.T) {
	p := startPlatform(t)
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jt808.Open(context.Background(), conn, jt808.SessionConfig{Edition: jt808.Edition2019, Phone: "13800138000"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	loc := func(i int) []byte {
		return jt808.Location{Lat: 23.1 + float64(i)*1e-6, Lon: 113.3, SpeedKmh: 50, Status: jt808.StatusFixed,
			Time: t0.Add(time.Duration(i) * time.Second), HasSatellites: true, Satellites: 12, HasSignal: true, Signal: 25}.Marshal()
	}
	const n = 5000
	c0, start := cpuTime(), time.Now()
	for i := 0; i < n; i++ {
		if _, err := s.Call(context.Background(), jt808.IDLocation, loc(i)); err != nil {
			t.Fatal(err)
		}
	}
	live := time.Since(start)
	liveCPU := cpuTime() - c0
	c0, start = cpuTime(), time.Now()
	for i := 0; i < n; i += maxBatchItems {
		b := jt808.BatchLocation{Type: jt808.BatchBlindZone}
		for j := i; j < i+maxBatchItems; j++ {
			b.Items = append(b.Items, loc(j))
		}
		if _, err := s.Call(context.Background(), jt808.IDBatchLocation, b.Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	batched := time.Since(start)
	batchCPU := cpuTime() - c0
	wait.For(t, 10*time.Second, "the platform to log every report", func() bool { return len(p.reports()) == 2*n })
	rss, peak := rssKB(t)
	t.Logf("live 0x0200: %d reports in %v = %.0f/s (round trip each), CPU %v (%.1f µs/report, box and platform together)",
		n, live.Round(time.Millisecond), n/live.Seconds(), liveCPU.Round(time.Millisecond), float64(liveCPU.Microseconds())/n)
	t.Logf("0x0704 batches of %d: %d reports in %v = %.0f/s, CPU %v", maxBatchItems, n, batched.Round(time.Millisecond), n/batched.Seconds(), batchCPU.Round(time.Millisecond))
	t.Logf("RSS %d kB now, %d kB peak (test process: box side, platform and test together)", rss, peak)
}

// TestBenchDispatchBlindZoneDrain4GRural: a 10-minute blind zone at 1 s reports (600
// stored reports) drained to the platform across linkemu's 4g-rural link (3 Mbit/s
// up, 90 ms RTT, 1 % loss), by the Reporter as the box runs it, while the platform sits
// in the hub's namespace. Goal: faster than 20× real time (under 30 s), RSS < 30 MB.
func TestBenchDispatchBlindZoneDrain4GRural(t *testing.T) {
	peers.NeedRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := linkemu.Start(ctx, linkemu.FourGRural(), linkemu.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		peers.Missing(t, "linkemu 4g-rural: %v", err)
	}
	defer l.Close()
	var ln net.Listener
	if err := l.InHub(func() (err error) { ln, err = net.Listen("tcp", l.HubAddr().String()+":7808"); return }); err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	plat := jt808.NewPlatform(jt808.PlatformConfig{OnReport: func(jt808.Report) { got.Add(1) }})
	go plat.Serve(ctx, ln)

	store := openStore(t, t.TempDir())
	mission, _ := NewMission(store, t0)
	mission.Set(Dispatched, t0)
	mission.Set(EnRoute, t0)
	var reachable atomic.Bool
	r, err := NewReporter(Config{Server: ln.Addr().String(), Edition: jt808.Edition2019, Phone: "13800138000", Store: store, Mission: mission,
		Dial: func(ctx context.Context, addr string) (c net.Conn, err error) {
			if !reachable.Load() {
				return nil, errors.New("no coverage")
			}
			err = l.InBox(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr); return })
			return c, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	const deadZone = 600
	for i := 0; i < deadZone; i++ {
		if ok, err := r.Offer(fixAt(i, 90)); !ok || err != nil {
			t.Fatalf("offer %d: %v %v", i, ok, err)
		}
	}
	reachable.Store(true)
	c0, start := cpuTime(), time.Now()
	go r.Run(ctx, &service.Health{})
	wait.For(t, 5*time.Minute, "the blind zone to drain", func() bool { return got.Load() >= deadZone })
	drain := time.Since(start)
	cpu := cpuTime() - c0
	rss, peak := rssKB(t)
	st := r.Stats()
	t.Logf("4g-rural: %d blind-zone reports drained in %v = %.0f× real time (goal > 20×); %d batches, %d live; CPU %v; RSS %d kB now, %d kB peak (goal < 30 MB; includes the link emulator and the platform)",
		deadZone, drain.Round(time.Millisecond), (deadZone*time.Second).Seconds()/drain.Seconds(), st.Batches, st.SentLive, cpu.Round(time.Millisecond), rss, peak)
	if drain > 30*time.Second {
		t.Errorf("drain took %v: slower than 20× real time", drain)
	}
	if peak > 30*1024 {
		t.Errorf("peak RSS %d kB exceeds 30 MB", peak)
	}
}
