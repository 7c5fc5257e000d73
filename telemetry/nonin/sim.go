package nonin

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/physio"
)

// SimConfig configures the simulated oximeter. The zero value sends data format 7 on a
// clean line with the probe on the finger.
type SimConfig struct {
	Logger   *slog.Logger     // nil: discard
	Scenario *physio.Scenario // nil: a stable adult
	// Faults of the line: Noise puts 1..4 random bytes before a frame, Drop loses it,
	// Corrupt spoils its checksum, and a pulled cable loses every frame meanwhile.
	Faults telemetry.LineFaults
	Format int // Format7 (default) or Format2
	// SensorOffAt and SensorOffFor take the probe off the finger for a while (SNSD set,
	// no pulse rate or SpO2).
	SensorOffAt, SensorOffFor time.Duration
	// Sent, if set, is called with what a faithful driver must produce from the frames
	// that went out intact: a one-sample pleth wave per frame, and the pulse rate and
	// SpO2 of each packet whose 25 frames and the next packet's first frame (which
	// tells the packet is complete) went out intact.
	Sent func(telemetry.Event)
}

// Simulator plays a Nonin oximeter: 75 frames a second, paced in real time.
type Simulator struct {
	cfg SimConfig
	log *slog.Logger
}

// NewSimulator returns a simulated Nonin oximeter.
func NewSimulator(cfg SimConfig) *Simulator {
	if cfg.Scenario == nil {
		cfg.Scenario = &physio.Scenario{}
	}
	if cfg.Format != Format2 {
		cfg.Format = Format7
	}
	return &Simulator{cfg: cfg, log: telemetry.DiscardLogger(cfg.Logger).With("sim", "nonin")}
}

// simPacket is the packet being sent: its values and whether it can still be decoded.
type simPacket struct {
	floats       [FramesPerPacket]uint8
	hr, spo2     int
	intact       bool // every frame so far went out intact
	questionable bool // a frame carried a sensor alarm: the driver marks the values invalid
}

// values returns the numerics a driver decodes from the packet once it is complete.
func (pk *simPacket) values(at time.Time) []telemetry.Event {
	var evs []telemetry.Event
	if pk.hr != MissingHR {
		evs = append(evs, &telemetry.Numeric{Code: telemetry.MDC_PULS_OXIM_PULS_RATE, Value: float64(pk.hr), Unit: telemetry.UnitPerMinute, ReceiveTime: at, Invalid: pk.questionable})
	}
	if pk.spo2 != MissingSpO2 {
		evs = append(evs, &telemetry.Numeric{Code: telemetry.MDC_PULS_OXIM_SAT_O2, Value: float64(pk.spo2), Unit: telemetry.UnitPercent, ReceiveTime: at, Invalid: pk.questionable})
	}
	return evs
}

// simRun is one run's state: the packet being sent and the line's random faults.
type simRun struct {
	s     *Simulator
	rng   *rand.Rand
	pleth *physio.Pleth
	start time.Time
	pk    simPacket
	// complete holds the values of the last packet if all its frames went out intact;
	// the driver decodes them when the next packet's first frame arrives.
	complete []telemetry.Event
}

// Run writes frames to port until ctx ends or a write fails.
func (s *Simulator) Run(ctx context.Context, port telemetry.Port) error {
	r := &simRun{s: s, rng: rand.New(rand.NewPCG(s.cfg.Faults.Seed, 0x9e3779b97f4a7c15)),
		pleth: physio.NewPleth(s.cfg.Scenario, FrameRate), start: time.Now()}
	var (
		n   int64
		out []byte
	)
	tick := time.NewTicker(time.Second / FrameRate)
	defer tick.Stop()
	for {
		// Write every frame that is due, so a slow writer catches up instead of drifting.
		due := int64(time.Since(r.start) * FrameRate / time.Second)
		out = out[:0]
		for ; n <= due; n++ {
			out = r.frame(n, out)
		}
		if len(out) > 0 {
			if _, err := port.Write(out); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("nonin simulator: write: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// frame appends frame n, as the faulty line delivers it, to out and reports what went
// out intact through Sent.
func (r *simRun) frame(n int64, out []byte) []byte {
	cfg := &r.s.cfg
	t := time.Duration(n) * time.Second / FrameRate
	at := r.start.Add(t)
	k := int(n % FramesPerPacket)
	off := cfg.SensorOffFor > 0 && t >= cfg.SensorOffAt && t < cfg.SensorOffAt+cfg.SensorOffFor
	if k == 0 {
		r.complete = nil
		if n > 0 && r.pk.intact {
			r.complete = r.pk.values(at)
		}
		st := cfg.Scenario.At(t)
		hr, spo2 := int(math.Round(st.PR)), int(st.SpO2)
		if off {
			hr, spo2 = MissingHR, MissingSpO2
		}
		r.pk = simPacket{floats: EncodePacket(hr, spo2, 0x30), hr: hr, spo2: spo2, intact: true}
	}
	f := Frame{Status: StatusBit7 | StatusGPRF, Float: r.pk.floats[k]}
	if k == 0 {
		f.Status |= StatusSync
	}
	v := r.pleth.Next()
	if off {
		f.Status = f.Status&^StatusGPRF | StatusSNSD
		r.pk.questionable = true
		v = 0
	}
	if cfg.Format == Format2 {
		f.Pleth = uint16(math.Round(v * 255))
	} else {
		f.Pleth = uint16(math.Round(v * 65535))
	}
	out, intact := r.line(f, t, out)
	if !intact {
		r.pk.intact = false
		return out
	}
	if cfg.Sent != nil {
		if k == 0 {
			for _, e := range r.complete {
				cfg.Sent(e)
			}
		}
		cfg.Sent(&telemetry.Wave{Code: telemetry.MDC_PULS_OXIM_PLETH, Unit: telemetry.UnitNone, Rate: FrameRate, Samples: []float32{float32(f.Pleth)}, ReceiveTime: at})
	}
	return out
}

// line appends f to out as the faulty line delivers it, and reports whether it went
// out intact.
func (r *simRun) line(f Frame, t time.Duration, out []byte) ([]byte, bool) {
	faults, format := r.s.cfg.Faults, r.s.cfg.Format
	if faults.Pulled(t) {
		return out, false
	}
	if r.rng.Float64() < faults.Noise {
		for range 1 + r.rng.IntN(4) {
			out = append(out, byte(r.rng.Uint32()))
		}
	}
	switch {
	case r.rng.Float64() < faults.Drop:
		return out, false
	case r.rng.Float64() < faults.Corrupt:
		out = AppendFrame(out, f, format)
		out[len(out)-1] ^= byte(1 + r.rng.IntN(255))
		return out, false
	}
	return AppendFrame(out, f, format), true
}
