package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/dispatch/jt808"
	"lifeline/hardware/gnss"
	"lifeline/internal/service"
	"lifeline/internal/wait"
)

var t0 = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

func fixAt(sec int, course float64) gnss.Fix {
	return gnss.Fix{Valid: true, Time: t0.Add(time.Duration(sec) * time.Second), Lat: 23.1 + float64(sec)*1e-5, Lon: 113.3,
		SpeedKmh: 40, CourseDeg: course, HasCourse: true, Satellites: 12, Systems: []gnss.System{gnss.GPS, gnss.BeiDou}, Received: time.Now()}
}

func TestReportSchedule(t *testing.T) {
	store := openStore(t, t.TempDir())
	mission, _ := NewMission(store, t0)
	r, err := NewReporter(Config{Server: "127.0.0.1:1", Phone: "13800138000", Store: store, Mission: mission})
	if err != nil {
		t.Fatal(err)
	}
	made := func(from, to int, course func(int) float64) (n int) {
		for s := from; s < to; s++ {
			ok, err := r.Offer(fixAt(s, course(s)))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				n++
			}
		}
		return n
	}
	straight := func(int) float64 { return 90 }
	if n := made(0, 60, straight); n != 12 {
		t.Errorf("available, 60 s of 1 Hz fixes: %d reports, want 12 (every 5 s)", n)
	}
	mission.Set(Dispatched, t0)
	if n := made(60, 120, straight); n != 60 {
		t.Errorf("on a mission: %d reports, want 60 (every second)", n)
	}
	mission.Set(Available, t0)
	// A 45° turn at second 122 is reported at once; 20° wiggles are not.
	turn := func(s int) float64 {
		switch {
		case s == 122:
			return 135
		case s >= 123:
			return 135 + float64(s%2)*20
		}
		return 90
	}
	if n := made(120, 125, turn); n != 1 {
		t.Errorf("5 s with one sharp turn: %d reports, want 1 (the turn)", n)
	}
	// Replaying older fixes (a restart) reports nothing twice.
	if n := made(0, 123, straight); n != 0 {
		t.Errorf("old fixes re-reported: %d", n)
	}
	if r.Backlog().Len() != 73 {
		t.Errorf("backlog %d, want 73 reports waiting", r.Backlog().Len())
	}
}

type platform struct {
	*jt808.Platform
	addr string
	mu   sync.Mutex
	got  []jt808.Report
}

func (p *platform) reports() []jt808.Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]jt808.Report(nil), p.got...)
}

func startPlatform(t *testing.T) *platform {
	t.Helper()
	p := &platform{}
	p.Platform = jt808.NewPlatform(jt808.PlatformConfig{OnReport: func(r jt808.Report) {
		p.mu.Lock()
		p.got = append(p.got, r)
		p.mu.Unlock()
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

func runUnderSupervisor(t *testing.T, name string, run func(context.Context, *service.Health) error) func() service.Status {
	t.Helper()
	sup := service.NewSupervisor(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), service.DefaultBackoff)
	sup.Add(service.Service{Name: name, Run: run})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return func() service.Status {
		for _, st := range sup.Status() {
			if st.Name == name {
				return st
			}
		}
		return service.Status{}
	}
}

func TestReporterLiveAndCommands(t *testing.T) {
	for _, ed := range []jt808.Edition{jt808.Edition2013, jt808.Edition2019} {
		t.Run(ed.String(), func(t *testing.T) {
			p := startPlatform(t)
			store := openStore(t, t.TempDir())
			var texts []string
			var mu sync.Mutex
			r, err := NewReporter(Config{Server: p.addr, Edition: ed, Phone: "13800138000", Store: store, ResponseTimeout: 2 * time.Second,
				Signal: func() (byte, bool) { return 23, true },
				OnText: func(tm jt808.TextMessage) { mu.Lock(); texts = append(texts, tm.Text); mu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			health := runUnderSupervisor(t, "dispatch", r.Run)
			wait.For(t, 10*time.Second, "the reporter to register and authenticate", func() bool { return len(p.Terminals()) == 1 })
			r.Offer(fixAt(0, 90))
			wait.For(t, 5*time.Second, "the live report", func() bool { return len(p.reports()) == 1 })
			got := p.reports()[0]
			if got.Message != "0x0200" || got.Lat != 23.1 || got.Lon != 113.3 || *got.Signal != 23 || *got.Satellites != 12 ||
				got.Status&(jt808.StatusFixed|jt808.StatusBeiDou|jt808.StatusGPS) != jt808.StatusFixed|jt808.StatusBeiDou|jt808.StatusGPS {
				t.Errorf("report %+v", got)
			}
			if st := health(); st.State != service.Ready {
				t.Errorf("health %+v", st)
			}
			phone := p.Terminals()[0]
			// Dispatch sets a 10 s interval, asks where the ambulance is, and writes to the crew.
			p.Send(phone, jt808.IDSetParams, jt808.SetParams{Params: []jt808.Param{jt808.DWORDParam(jt808.ParamReportInterval, 10)}}.Marshal())
			p.Send(phone, jt808.IDLocationQuery, nil)
			p.Send(phone, jt808.IDTextMessage, jt808.TextMessage{Flags: 1, Type: 1, Text: "患者男性，胸痛，请直接送导管室"}.Marshal(ed))
			wait.For(t, 5*time.Second, "the location answer and the crew message", func() bool {
				mu.Lock()
				defer mu.Unlock()
				r := p.reports()
				return len(r) == 2 && r[1].Message == "0x0201" && len(texts) == 1 && texts[0] == "患者男性，胸痛，请直接送导管室"
			})
			wait.For(t, 5*time.Second, "the new interval", func() bool { return r.Status().IntervalS == 10 })
			n := 0
			for s := 1; s <= 30; s++ {
				if ok, _ := r.Offer(fixAt(s, 90)); ok {
					n++
				}
			}
			if n != 3 {
				t.Errorf("30 s at the new 10 s interval: %d reports", n)
			}
			wait.For(t, 5*time.Second, "the three reports", func() bool { return len(p.reports()) == 5 })
		})
	}
}

// TestReporterMovesToNewServer: dispatch moves the box to another platform with
// 0x8103 (main server address and TCP port, the 2013 way); the box goes there and
// keeps the address across a restart.
func TestReporterMovesToNewServer(t *testing.T) {
	p1, p2 := startPlatform(t), startPlatform(t)
	dir := t.TempDir()
	store := openStore(t, dir)
	r, _ := NewReporter(Config{Server: p1.addr, Phone: "13800138000", Store: store, ResponseTimeout: 2 * time.Second})
	runUnderSupervisor(t, "dispatch", r.Run)
	wait.For(t, 10*time.Second, "the first platform", func() bool { return len(p1.Terminals()) == 1 })
	host, port, _ := net.SplitHostPort(p2.addr)
	var pn uint32
	for _, c := range port {
		pn = pn*10 + uint32(c-'0')
	}
	p1.Send(p1.Terminals()[0], jt808.IDSetParams, jt808.SetParams{Params: []jt808.Param{
		jt808.StringParam(jt808.ParamMainServer, host), jt808.DWORDParam(jt808.ParamServerTCPPort, pn)}}.Marshal())
	wait.For(t, 10*time.Second, "the box on the second platform", func() bool { return len(p2.Terminals()) == 1 })
	r.Offer(fixAt(0, 0))
	wait.For(t, 5*time.Second, "a report on the second platform", func() bool { return len(p2.reports()) == 1 })
	again, _ := NewReporter(Config{Server: p1.addr, Phone: "13800138000", Store: store})
	if again.Status().Server != p2.addr {
		t.Errorf("after restart the server is %s, want %s", again.Status().Server, p2.addr)
	}
}

// TestReporterPlatformNeverAnswers: the platform stops answering (it still reads).
// The reporter counts the unanswered report, drops the session, fails to log in
// again, and keeps every report; when the platform answers again all arrive. A
// report the platform received but never acknowledged may arrive twice: delivery is
// at least once, and only such reports repeat.
func TestReporterPlatformNeverAnswers(t *testing.T) {
	p := startPlatform(t)
	store := openStore(t, t.TempDir())
	mission, _ := NewMission(store, t0)
	mission.Set(Dispatched, t0)
	r, _ := NewReporter(Config{Server: p.addr, Phone: "13800138000", Store: store, Mission: mission, ResponseTimeout: 300 * time.Millisecond})
	health := runUnderSupervisor(t, "dispatch", r.Run)
	wait.For(t, 10*time.Second, "the session", func() bool { return len(p.Terminals()) == 1 })
	p.Mute(true)
	for s := 0; s < 10; s++ {
		r.Offer(fixAt(s, 90))
	}
	wait.For(t, 15*time.Second, "a timed-out report and a failed login", func() bool {
		st := r.Stats()
		return st.SendFailed >= 1 && st.ConnectFailed >= 1
	})
	if st := health(); st.State != service.Degraded || st.LastError == "" {
		t.Errorf("health while the platform is mute: %+v", st)
	}
	heardWhileMute := map[int]bool{}
	for _, rep := range p.reports() {
		heardWhileMute[int(rep.Time.Sub(t0)/time.Second)] = true
	}
	p.Mute(false)
	wait.For(t, 30*time.Second, "every report after the platform answers again", func() bool {
		seen := map[int]bool{}
		for _, rep := range p.reports() {
			seen[int(rep.Time.Sub(t0)/time.Second)] = true
		}
		return len(seen) == 10
	})
	count := map[int]int{}
	for _, rep := range p.reports() {
		count[int(rep.Time.Sub(t0)/time.Second)]++
	}
	for s, n := range count {
		if n > 1 && !heardWhileMute[s] {
			t.Errorf("report %d arrived %d times though the platform never heard it while mute", s, n)
		}
	}
	wait.For(t, 5*time.Second, "the backlog to empty", func() bool { return r.Backlog().Len() == 0 })
}

func TestReporterConfigErrors(t *testing.T) {
	store := openStore(t, t.TempDir())
	for _, c := range []Config{
		{Server: "127.0.0.1:1", Phone: "13800138000"},                                             // no store
		{Server: "127.0.0.1:1", Phone: "1234567890123", Edition: jt808.Edition2013, Store: store}, // 13 digits in 2013
		{Server: "127.0.0.1:1", Phone: "13800I38000", Store: store},                               // a letter
		{Server: "dispatch.example", Phone: "13800138000", Store: store},                          // no port
		{Server: "127.0.0.1:1", Phone: "13800138000", Edition: jt808.Edition(2011), Store: store}, // no such edition
	} {
		if _, err := NewReporter(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := NewReporter(Config{Server: "127.0.0.1:1", Phone: "013800138000", Edition: jt808.Edition2013, Store: store}); err != nil {
		t.Errorf("a 2013 terminal: %v", err)
	}
}

// TestBacklogBound: a full backlog drops its oldest reports, counts them, and keeps
// the newest, across a restart.
func TestBacklogBound(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	mission, _ := NewMission(store, t0)
	mission.Set(Dispatched, t0)
	r, _ := NewReporter(Config{Server: "127.0.0.1:1", Phone: "13800138000", Store: store, Mission: mission, MaxBacklog: 5})
	for s := 0; s < 8; s++ {
		r.Offer(fixAt(s, 90))
	}
	b := r.Backlog()
	if b.Len() != 5 || b.Dropped() != 3 {
		t.Fatalf("backlog %d, dropped %d; want 5 and 3", b.Len(), b.Dropped())
	}
	items, _ := b.oldest(0)
	first, err := jt808.ParseLocation(items[0].Value)
	if err != nil || !first.Time.Equal(t0.Add(3*time.Second)) {
		t.Errorf("oldest kept is %v, want second 3: %v", first.Time, err)
	}
	again, _ := NewReporter(Config{Server: "127.0.0.1:1", Phone: "13800138000", Store: store, Mission: mission, MaxBacklog: 5})
	if again.Backlog().Len() != 5 {
		t.Errorf("after restart: %d", again.Backlog().Len())
	}
}

// TestTemporaryTracking: dispatch asks for a report every 2 s for 10 s (0x8202); then
// the box falls back to its 5 s interval.
func TestTemporaryTracking(t *testing.T) {
	p := startPlatform(t)
	store := openStore(t, t.TempDir())
	r, _ := NewReporter(Config{Server: p.addr, Phone: "13800138000", Store: store, ResponseTimeout: 2 * time.Second})
	runUnderSupervisor(t, "dispatch", r.Run)
	wait.For(t, 10*time.Second, "the session", func() bool { return len(p.Terminals()) == 1 })
	r.Offer(fixAt(0, 90))
	wait.For(t, 5*time.Second, "the first report", func() bool { return len(p.reports()) == 1 })
	p.Send(p.Terminals()[0], jt808.IDTemporaryTracking, jt808.TemporaryTracking{Interval: 2, Validity: 10}.Marshal())
	wait.For(t, 5*time.Second, "tracking to start", func() bool { return r.Status().IntervalS == 2 })
	var made []int
	for s := 1; s <= 30; s++ {
		if ok, _ := r.Offer(fixAt(s, 90)); ok {
			made = append(made, s)
		}
	}
	// Tracking covers seconds 0 to 10 (exclusive); the 5 s interval then runs from
	// the last report, at 8.
	want := []int{2, 4, 6, 8, 13, 18, 23, 28}
	if fmt.Sprint(made) != fmt.Sprint(want) {
		t.Errorf("reports at seconds %v, want %v", made, want)
	}
}
