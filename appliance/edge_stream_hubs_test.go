package appliance

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lifeline/internal/durable"
	"lifeline/internal/peers"
	"lifeline/internal/service"
	"lifeline/internal/trust"
	"lifeline/internal/wait"
	"lifeline/stream/vitals"
	"lifeline/stream/vitals/pghistory"
	"lifeline/stream/whip"
	"lifeline/telemetry"
)

// startHubStoppable is startHubIn with a function that stops the hub, for a test that
// loses it while a box uses it; the hub is stopped when the test ends in any case.
func startHubStoppable(t testing.TB, dataDir string, configure func(*HubConfig)) (*Hub, HubConfig, func()) {
	t.Helper()
	// The ports are found free and then given to the hub, so another test may take one
	// in between; the hub then ends at once, and is started again on other ports.
	for attempt := 1; ; attempt++ {
		hub, cfg, stop, err := tryStartHub(t, dataDir, configure)
		if err == nil {
			return hub, cfg, stop
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("a port was taken before the hub could listen (%v); trying others", err)
	}
}

// tryStartHub starts a hub on free loopback ports and waits until it serves boxes and
// viewers. When it does not, it is stopped and its error returned.
func tryStartHub(t testing.TB, dataDir string, configure func(*HubConfig)) (*Hub, HubConfig, func(), error) {
	d := &demo{hub: DefaultHubConfig(), edge: DefaultEdgeConfig()}
	if err := d.pickPorts(); err != nil {
		t.Fatal(err)
	}
	cfg := d.hub
	viewer, err := freeLoopbackPort(false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Viewer.Listen = viewer
	if configure != nil {
		configure(&cfg)
	}
	hub, err := OpenHub(cfg, dataDir, "test", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- hub.Run(ctx) }()
	ready := func() bool {
		st := hub.Status()
		return serviceState(st, "hub-server") == service.Ready && serviceState(st, "viewer-https") == service.Ready
	}
	if err := waitReady(ctx, errc, ready); err != nil {
		cancel()
		<-errc
		return nil, cfg, nil, err
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return hub, cfg, stop, nil
}

// TestLiveStreamMovesToTheNextHub runs two hubs on one PostgreSQL database and a box
// whose route names both: the box publishes its vitals to hub A, hub A stops, and the
// box's publisher opens its session at hub B, which continues the box's stream from
// the shared history: every reliable message the box sent is held once, without a
// gap, and acknowledged.
func TestLiveStreamMovesToTheNextHub(t *testing.T) {
	st := StateSection{Postgres: peers.Postgres(t)}
	dir := t.TempDir()
	hubA, cfgA, stopA := startHubStoppable(t, filepath.Join(dir, "a"), func(c *HubConfig) { c.State = st })
	copyAuthority(t, filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	_, cfgB := startHubIn(t, filepath.Join(dir, "b"), func(c *HubConfig) { c.State = st })
	urlA, urlB := "https://"+cfgA.Server.Listen, "https://"+cfgB.Server.Listen

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code, err := hubA.devices.NewCode(ctx, "AMB-MOVE", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := trust.Enroll(ctx, urlA, code, filepath.Join(dir, "box"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := durable.Open(filepath.Join(dir, "box.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	bus := telemetry.NewBus(nil)
	outbox, err := vitals.NewOutbox(vitals.OutboxConfig{Store: store, Bus: bus, Device: id.DeviceID})
	if err != nil {
		t.Fatal(err)
	}
	ls := &liveStream{outbox: outbox}
	route := &hubRoute{urls: []string{urlA, urlB}}
	pub, err := whip.New(whip.Config{Route: whipRoute{hubs: route, tls: id.ClientTLS()}, TLS: id.ClientTLS(),
		DataChannels: ls.dataChannels(), Loopback: true, RetryInitial: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = outbox.Run(ctx) })
	wg.Go(func() { _ = pub.Run(ctx, new(service.Health)) })
	// A numeric every 50 ms, as a monitor's several parameters each second.
	sending, stopSending := context.WithCancel(ctx)
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for v := 60.0; ; v++ {
			select {
			case <-sending.Done():
				return
			case <-tick.C:
				bus.Publish("monitor0", &telemetry.Numeric{Code: telemetry.MDC_PULS_RATE, Value: v, Unit: "/min", ReceiveTime: time.Now()})
			}
		}
	})

	connectedAt := func(url string) func() bool {
		return func() bool {
			s := pub.Status()
			return s.State == whip.StateConnected && s.Endpoint == url+hubWHIPPath
		}
	}
	wait.For(t, 30*time.Second, "the box to publish to hub A", connectedAt(urlA))
	wait.For(t, 10*time.Second, "hub A to acknowledge vitals", func() bool { return outbox.Stats().Acked > 10 })

	ackedAtStop := outbox.Stats().Acked
	stopped := time.Now() // the hub's shutdown ends its sessions first: the box may move before it returns
	stopA()
	wait.For(t, 60*time.Second, "the box to publish to hub B", connectedAt(urlB))
	resumed := time.Since(stopped)
	wait.For(t, 20*time.Second, "hub B to acknowledge vitals sent after the move", func() bool {
		return outbox.Stats().Acked > outbox.Stats().LastSeq-5 && outbox.Stats().Acked > ackedAtStop+10
	})
	acked := time.Since(stopped)
	t.Logf("hub A stopped: session at hub B after %s, its first acks of new vitals after %s", resumed.Round(time.Millisecond), acked.Round(time.Millisecond))
	// The bound: the box notices the loss within 1.5 s (ICE), restarts at 0.5 s and
	// every 2 s after; its route moves on the first failed restart, and the next
	// opens the session at B. On a loaded machine, twice that.
	if resumed > 15*time.Second {
		t.Errorf("the session resumed at hub B only %s after hub A stopped, want within 15 s", resumed)
	}
	if route.Current() != urlB {
		t.Errorf("the box's route is at %s, want hub B: the publisher did not tell it", route.Current())
	}

	stopSending()
	wait.For(t, 20*time.Second, "every vitals message acknowledged", func() bool {
		s := outbox.Stats()
		return s.Acked == s.LastSeq
	})
	last := outbox.Stats().LastSeq

	pool, err := pgxpool.New(ctx, st.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	history, err := pghistory.New(ctx, pool, vitals.HistoryBounds{})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	if err := history.Read(vitals.HistoryQuery{Device: id.DeviceID, Channel: vitals.LabelReliable}, func(r vitals.Record) bool {
		seqs = append(seqs, r.Cursor.Seq)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if uint64(len(seqs)) != last {
		t.Fatalf("the shared history holds %d of the box's %d reliable messages", len(seqs), last)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("message %d of the shared history is seq %d: a gap or a duplicate", i, s)
		}
	}
	t.Logf("%d reliable messages, %d before hub A stopped, each held once", last, ackedAtStop)
}
