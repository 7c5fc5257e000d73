// Package record keeps the whole pre-hospital record — every waveform sample, numeric,
// alarm and device event from the monitors — in the box's durable store for the handover,
// and exports it as HL7 ORU messages and as a DICOM General ECG waveform object.
//
// Durability: events are batched in memory and written in one store transaction (one
// fsync) every FlushEvery, because 12 leads at 500 Hz must not cost an fsync per sample.
// A power cut therefore loses at most the events of the last FlushEvery (1 s by default)
// plus what is in the bus buffer at that moment; everything older is on disk. If the
// recorder ever falls behind the bus, the bus drops the oldest events and
// lifeline_telemetry_record_dropped_total says how many: nothing is lost silently.
package record

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/durable"
	"lifeline/telemetry"
)

// Bucket is the store bucket holding the record, one value per flushed batch.
const Bucket = "telemetry/record"

// Config configures a Recorder.
type Config struct {
	Store      *durable.Store
	Bus        *telemetry.Bus
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// FlushEvery is the batch interval, and so the most a power cut can lose (default 1 s).
	FlushEvery time.Duration
	// Buffer is the bus subscription size (default 16384 events: over 10 s of a 12-lead
	// ECG in 50-sample blocks).
	Buffer int
}

// Recorder subscribes to the bus and writes everything to the store.
type Recorder struct {
	cfg Config
	log *slog.Logger
	sub *telemetry.Subscription

	mu      sync.Mutex
	pending []entry
	seq     uint64

	mWritten, mBatches, mDropped prometheus.Counter
	lastDropped                  uint64
}

// New subscribes to the bus; call Run to start writing.
func New(cfg Config) (*Recorder, error) {
	if cfg.Store == nil || cfg.Bus == nil {
		return nil, errors.New("record: store and bus are required")
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Second
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 16384
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{cfg: cfg, log: log.With("service", "recorder")}
	r.mWritten = prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_telemetry_record_events_total", Help: "Events written durably to the patient record."})
	r.mBatches = prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_telemetry_record_flushes_total", Help: "Batches committed (one fsync each)."})
	r.mDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_telemetry_record_dropped_total", Help: "Events the recorder lost because it fell behind the bus."})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.mWritten, r.mBatches, r.mDropped} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("record: register metrics: %w", err)
			}
		}
	}
	// Continue numbering after what is already stored.
	err := cfg.Store.ForEach(Bucket, func(k, _ []byte) error {
		if len(k) == 8 {
			r.seq = max(r.seq, binary.BigEndian.Uint64(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record: read existing record: %w", err)
	}
	r.sub = cfg.Bus.Subscribe("recorder", cfg.Buffer)
	return r, nil
}

// Run writes events until ctx ends, then flushes what it holds and unsubscribes.
func (r *Recorder) Run(ctx context.Context) error {
	defer r.sub.Unsubscribe()
	tick := time.NewTicker(r.cfg.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.drain()
			return r.Flush()
		case m := <-r.sub.C():
			r.add(m)
		case <-tick.C:
			if err := r.Flush(); err != nil {
				// Keep the batch in memory and try again next tick: the store may be
				// momentarily unwritable (disk full is logged every time).
				r.log.Error("patient record not written; will retry", "err", err)
			}
		}
	}
}

func (r *Recorder) drain() {
	for {
		select {
		case m, ok := <-r.sub.C():
			if !ok {
				return
			}
			r.add(m)
		default:
			return
		}
	}
}

func (r *Recorder) add(m telemetry.Message) {
	e, ok := toEntry(m)
	if !ok {
		return
	}
	r.mu.Lock()
	r.pending = append(r.pending, e)
	r.mu.Unlock()
}

// Flush writes the pending events in one transaction.
func (r *Recorder) Flush() error {
	if d := r.sub.Dropped(); d > r.lastDropped {
		r.mDropped.Add(float64(d - r.lastDropped))
		r.log.Error("recorder fell behind; events were dropped from the patient record", "dropped", d-r.lastDropped)
		r.lastDropped = d
	}
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	data, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("record: encode batch: %w", err)
	}
	key := make([]byte, 8)
	binary.BigEndian.PutUint64(key, r.seq+1)
	if err := r.cfg.Store.Put(Bucket, key, data); err != nil {
		r.mu.Lock()
		r.pending = append(batch, r.pending...)
		r.mu.Unlock()
		return fmt.Errorf("record: write batch: %w", err)
	}
	r.seq++
	r.mWritten.Add(float64(len(batch)))
	r.mBatches.Inc()
	return nil
}

// entry is the stored form of one event. Samples are float32 little-endian bytes, which
// JSON carries as base64: exact, and a third the size of decimal text.
type entry struct {
	Source   string    `json:"src,omitempty"`
	Kind     string    `json:"k"`
	Code     uint32    `json:"c,omitempty"`
	Value    float64   `json:"v,omitempty"`
	Unit     string    `json:"u,omitempty"`
	Monitor  time.Time `json:"mt,omitzero"`
	Received time.Time `json:"rt,omitzero"`
	Measured time.Time `json:"ms,omitzero"`
	Invalid  bool      `json:"x,omitempty"`
	Rate     float64   `json:"hz,omitempty"`
	Start    time.Time `json:"st,omitzero"`
	Samples  []byte    `json:"s,omitempty"`
	Gap      bool      `json:"gap,omitempty"`
	Priority int       `json:"p,omitempty"`
	Text     string    `json:"t,omitempty"`
	On       bool      `json:"on,omitempty"`
	State    int       `json:"ds,omitempty"`
	// The channel of the monitor and the monitor's own name for a code mdc.go lacks:
	// two temperature probes stay two series in the record and its exports.
	Channel      string `json:"ch,omitempty"`
	ChannelLabel string `json:"chl,omitempty"`
	Primary      bool   `json:"chp,omitempty"`
	Ref          string `json:"ref,omitempty"`
}

func toEntry(m telemetry.Message) (entry, bool) {
	e := entry{Source: m.Source, Received: m.Event.Received()}
	switch v := m.Event.(type) {
	case *telemetry.Numeric:
		e.Kind, e.Code, e.Value, e.Unit, e.Monitor, e.Measured, e.Invalid = "n", uint32(v.Code), v.Value, v.Unit, v.MonitorTime, v.Measured, v.Invalid
		e.setChannel(v.Channel, v.Ref)
		if math.IsNaN(v.Value) || math.IsInf(v.Value, 0) {
			e.Value, e.Invalid = 0, true // JSON has no NaN; the flag keeps the meaning
		}
	case *telemetry.Wave:
		e.Kind, e.Code, e.Unit, e.Rate, e.Start, e.Monitor, e.Invalid, e.Gap = "w", uint32(v.Code), v.Unit, v.Rate, v.Start, v.MonitorStart, v.Invalid, v.Gap
		e.setChannel(v.Channel, v.Ref)
		e.Samples = make([]byte, 4*len(v.Samples))
		for i, s := range v.Samples {
			binary.LittleEndian.PutUint32(e.Samples[4*i:], math.Float32bits(s))
		}
	case *telemetry.Alarm:
		e.Kind, e.Code, e.Priority, e.Text, e.On, e.Monitor = "a", uint32(v.Code), int(v.Priority), v.Text, v.On, v.MonitorTime
		e.setChannel(v.Channel, "")
	case *telemetry.DeviceEvent:
		e.Kind, e.Code, e.State, e.Text = "d", uint32(v.Code), int(v.State), v.Detail
		e.setChannel(v.Channel, "")
	default:
		return entry{}, false
	}
	return e, true
}

func (e *entry) setChannel(ch telemetry.Channel, ref string) {
	e.Channel, e.ChannelLabel, e.Primary, e.Ref = ch.ID, ch.Label, ch.Primary, ref
}

func (e entry) channel() telemetry.Channel {
	return telemetry.Channel{ID: e.Channel, Label: e.ChannelLabel, Primary: e.Primary}
}

func (e entry) event() telemetry.Event {
	switch e.Kind {
	case "n":
		return &telemetry.Numeric{Code: telemetry.Code(e.Code), Value: e.Value, Unit: e.Unit, Channel: e.channel(), Ref: e.Ref,
			MonitorTime: e.Monitor, ReceiveTime: e.Received, Measured: e.Measured, Invalid: e.Invalid}
	case "w":
		w := &telemetry.Wave{Code: telemetry.Code(e.Code), Unit: e.Unit, Rate: e.Rate, Channel: e.channel(), Ref: e.Ref,
			Start: e.Start, MonitorStart: e.Monitor, ReceiveTime: e.Received, Invalid: e.Invalid, Gap: e.Gap}
		w.Samples = make([]float32, len(e.Samples)/4)
		for i := range w.Samples {
			w.Samples[i] = math.Float32frombits(binary.LittleEndian.Uint32(e.Samples[4*i:]))
		}
		return w
	case "a":
		return &telemetry.Alarm{Code: telemetry.Code(e.Code), Channel: e.channel(), Priority: telemetry.Priority(e.Priority), Text: e.Text, On: e.On, MonitorTime: e.Monitor, ReceiveTime: e.Received}
	case "d":
		return &telemetry.DeviceEvent{State: telemetry.DeviceState(e.State), Code: telemetry.Code(e.Code), Channel: e.channel(), Detail: e.Text, ReceiveTime: e.Received}
	}
	return nil
}

// Load returns every recorded event, in the order it was recorded.
func Load(store *durable.Store) ([]telemetry.Message, error) {
	var out []telemetry.Message
	err := store.ForEach(Bucket, func(k, v []byte) error {
		var batch []entry
		if err := json.Unmarshal(v, &batch); err != nil {
			return fmt.Errorf("record: batch %x: %w", k, err)
		}
		for _, e := range batch {
			if ev := e.event(); ev != nil {
				out = append(out, telemetry.Message{Source: e.Source, Event: ev})
			}
		}
		return nil
	})
	return out, err
}

// Waves returns the recorded blocks of code sorted by start time, from one channel: a
// lead recorded on two channels (or from two monitors) would otherwise interleave two
// signals into one. The channel kept is the first in the monitor's order
// (telemetry.CompareChannelIDs) of the first source recorded.
func Waves(msgs []telemetry.Message, code telemetry.Code) []*telemetry.Wave {
	var out []*telemetry.Wave
	source, channel, found := "", "", false
	for _, m := range msgs {
		w, ok := m.Event.(*telemetry.Wave)
		if !ok || w.Code != code {
			continue
		}
		if !found || (m.Source == source && telemetry.CompareChannelIDs(w.Channel.ID, channel) < 0) {
			source, channel, found = m.Source, w.Channel.ID, true
		}
	}
	for _, m := range msgs {
		if w, ok := m.Event.(*telemetry.Wave); ok && w.Code == code && m.Source == source && w.Channel.ID == channel {
			out = append(out, w)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}
