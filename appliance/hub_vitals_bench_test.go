package appliance

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lifeline/internal/durable"
	"lifeline/internal/peers"
	"lifeline/stream/vitals"
	"lifeline/stream/vitals/pghistory"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/physio"
)

// Vitals messages per second through the hub's archive: what the hub does with each
// message a box sends on its vitals channels (Archive.Receive: decode, check,
// de-duplicate, queue) and the group commit that makes them durable and acknowledges
// them (Archive.Run every 100 ms, the hub's default), over the hub's own history
// store. The messages are what boxes send: two seconds of `lifeline demo`'s monitor
// (HL7, 12 leads at 500 Hz, pleth, numerics) read by the box's HL7 driver and encoded
// as the box's Outbox does, repeated with new seqs. "decode" is the same messages
// through vitals.Decode alone, in the same run: the ceiling of any archive, and the
// reference each engine's rate is divided by.

// benchVitalsDevices is how many boxes send at once, each from its own goroutine as
// each publisher's data channel does in the hub.
const benchVitalsDevices = 16

// benchVitalsSeconds is how much of each box's stream is prepared: the messages are
// made before the clock starts, so that making them is not measured.
const benchVitalsSeconds = 60

func BenchmarkHubVitals(b *testing.B) {
	span := captureMonitor(b)
	streams := make([][]benchVitalsMsg, benchVitalsDevices)
	for d := range streams {
		streams[d] = encodeBoxStream(b, "BOX-"+strconv.Itoa(d+1), span, benchVitalsSeconds)
	}
	b.Run("decode", func(b *testing.B) {
		benchVitalsRun(b, streams, func(device, label string, data []byte) error {
			_, err := vitals.Decode(data)
			return err
		}, nil)
	})
	b.Run("archive/bolt", func(b *testing.B) {
		store, err := durable.Open(hubVitalsPath(b.TempDir()), 0)
		if err != nil {
			b.Fatal(err)
		}
		defer store.Close()
		benchArchive(b, streams, vitals.NewBoltHistory(store, vitals.HistoryBounds{}))
	})
	dsn := peers.Postgres(b)
	b.Run("archive/postgres", func(b *testing.B) {
		// What a hub on [state] postgres uses: the history on connections of its own.
		cfg, err := pgxpool.ParseConfig(createDatabase(b, dsn, "vitals"+strconv.FormatInt(benchVitalsDBs.Add(1), 10)))
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = vitalsHistoryConns
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		history, err := pghistory.New(context.Background(), pool, vitals.HistoryBounds{})
		if err != nil {
			b.Fatal(err)
		}
		benchArchive(b, streams, history)
	})
}

// benchVitalsDBs numbers the databases the runs make: the cluster outlives a run.
var benchVitalsDBs atomic.Int64

// benchVitalsMsg is one encoded message and the channel it travels on.
type benchVitalsMsg struct {
	label string
	data  []byte
}

// benchArchive sends every stream through an archive over history, as fast as the
// archive takes them, and stops the clock once the last message is committed.
func benchArchive(b *testing.B, streams [][]benchVitalsMsg, history vitals.HistoryStore) {
	var acks sync.Map
	a, err := vitals.NewArchive(vitals.ArchiveConfig{History: history,
		SendAck: func(device string, ack []byte) { acks.Store(device, ack) }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	receive := func(device, label string, data []byte) error {
		_, err := a.Receive(device, label, data)
		return err
	}
	per := benchVitalsRun(b, streams, receive, func() {
		go func() { done <- a.Run(ctx) }()
	})
	cancel()
	if err := <-done; err != nil { // Run's last Flush commits what is left
		b.Fatal(err)
	}
	b.StopTimer()
	// Every reliable message sent must be durable and acknowledged.
	for d, msgs := range streams {
		var want uint64
		for _, m := range msgs[:per] {
			if m.label == vitals.LabelReliable {
				want++
			}
		}
		var got uint64
		if raw, ok := acks.Load("BOX-" + strconv.Itoa(d+1)); ok {
			m, err := vitals.Decode(raw.([]byte))
			if err != nil {
				b.Fatal(err)
			}
			got = m.Seq
		}
		if got != want {
			b.Errorf("BOX-%d: acknowledged up to seq %d, sent %d", d+1, got, want)
		}
	}
}

// benchVitalsRun hands b.N messages, taken in turn from each device's stream, to
// receive from one goroutine per device. A message the archive refuses as busy is
// offered again after a millisecond, as a box replays it; waves are counted as lost.
func benchVitalsRun(b *testing.B, streams [][]benchVitalsMsg, receive func(device, label string, data []byte) error, start func()) (per int) {
	per = b.N / len(streams)
	if per > len(streams[0]) {
		b.Fatalf("%d messages per box asked for; %d prepared (use -benchtime %dx at most)", per, len(streams[0]), len(streams[0])*len(streams))
	}
	var lost sync.Map
	b.ResetTimer()
	if start != nil {
		start()
	}
	var wg sync.WaitGroup
	for d, msgs := range streams {
		device := "BOX-" + strconv.Itoa(d+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for _, m := range msgs[:per] {
				for {
					err := receive(device, m.label, m.data)
					if errors.Is(err, vitals.ErrBusy) {
						if m.label == vitals.LabelWave {
							n++
							break
						}
						time.Sleep(time.Millisecond)
						continue
					}
					if err != nil {
						b.Error(err)
						return
					}
					break
				}
			}
			lost.Store(device, n)
		}()
	}
	wg.Wait()
	elapsed := b.Elapsed()
	total := 0
	lost.Range(func(_, v any) bool { total += v.(int); return true })
	rate := float64(per*len(streams)) / elapsed.Seconds()
	b.ReportMetric(rate, "msgs/s")
	// One box's stream is len(msgs)/benchVitalsSeconds messages a second.
	b.ReportMetric(rate/(float64(len(streams[0]))/benchVitalsSeconds), "box-streams")
	b.ReportMetric(float64(total), "waves-lost")
	return per
}

// captureSpan is how much monitor traffic captureMonitor keeps: whole 500 ms blocks
// and whole seconds of numerics.
const captureSpan = 2 * time.Second

// captureMonitor returns captureSpan of what the box's HL7 driver publishes from
// `lifeline demo`'s monitor, captured from the simulator and the driver over loopback
// TCP. The simulator sends a tick's wave blocks and then, every second, its numerics:
// the span starts just before the tick of the first numerics, so it holds four ticks'
// blocks and two seconds' numerics.
func captureMonitor(b *testing.B) []telemetry.Event {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	monitorEnd, driverEnd, err := monitorCable()
	if err != nil {
		b.Fatal(err)
	}
	defer monitorEnd.Close()
	defer driverEnd.Close()
	sim := hl7.NewSimulator(hl7.SimConfig{Scenario: &physio.Scenario{HR: 84, NIBPEvery: time.Minute},
		Leads: telemetry.ECG12, ECGRate: 500})
	go sim.Run(ctx, hl7.ConnPort(monitorEnd))
	type arrival struct {
		at time.Time
		ev telemetry.Event
	}
	var mu sync.Mutex
	var got []arrival
	tl := &telemetry.Timeline{} // as the box's monitor session places every wave
	go hl7.New(hl7.Config{}).Run(ctx, hl7.ConnPort(driverEnd), telemetry.SinkFunc(func(ev telemetry.Event) {
		mu.Lock()
		defer mu.Unlock()
		if w, ok := ev.(*telemetry.Wave); ok {
			tl.Place(w)
		}
		got = append(got, arrival{time.Now(), ev})
	}))
	time.Sleep(captureSpan + 2*time.Second)
	mu.Lock()
	defer mu.Unlock()
	i := slices.IndexFunc(got, func(a arrival) bool { return a.ev.Kind() == telemetry.KindNumeric })
	if i < 0 {
		b.Fatal("the simulated monitor sent no numerics the driver read")
	}
	from := got[i].at.Add(-100 * time.Millisecond)
	var evs []telemetry.Event
	for _, a := range got {
		if !a.at.Before(from) && a.at.Before(from.Add(captureSpan)) {
			evs = append(evs, a.ev)
		}
	}
	return evs
}

// monitorCable is a network monitor's connection to the box (HL7 over MLLP on TCP, as
// `[[monitor]] port = "tcp://…"`), on loopback. Not net.Pipe: a pipe has no buffer,
// and a monitor writing its next message while the box writes an ACK would wait for
// each other.
func monitorCable() (monitorEnd, boxEnd net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	monitorEnd, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	boxEnd, err = ln.Accept()
	if err != nil {
		monitorEnd.Close()
		return nil, nil, err
	}
	return monitorEnd, boxEnd, nil
}

// encodeBoxStream encodes seconds seconds of device's stream from captureSpan of
// events repeated, numbered as the box's Outbox numbers them (one seq for reliable
// messages, one for wave chunks) and stamped captureSpan apart.
func encodeBoxStream(b *testing.B, device string, span []telemetry.Event, seconds int) []benchVitalsMsg {
	var out []benchVitalsMsg
	var seq, waveSeq uint64
	epoch := "bench" + device
	for s := range seconds / int(captureSpan/time.Second) {
		shift := time.Duration(s) * captureSpan
		for _, ev := range span {
			for _, m := range vitals.FromEvent(device, telemetry.Message{Source: "monitor0", Event: ev}) {
				m.Epoch = epoch
				label := vitals.LabelReliable
				if m.Type == vitals.TypeWave {
					waveSeq++
					m.Seq, label = waveSeq, vitals.LabelWave
				} else {
					seq++
					m.Seq = seq
				}
				m.BoxTime = m.BoxTime.Add(shift)
				if !m.Start.IsZero() {
					m.Start = m.Start.Add(shift)
				}
				data, err := vitals.Marshal(&m)
				if err != nil {
					b.Fatal(err)
				}
				out = append(out, benchVitalsMsg{label, data})
			}
		}
	}
	return out
}
