package nonin

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"lifeline/telemetry/physio"
)

// Faults injects line and sensor faults into the simulator's output.
type Faults struct {
	Noise       float64 // probability per frame of 1..4 random bytes before it
	Drop        float64 // probability per frame of not sending it
	BadChecksum float64 // probability per frame of a corrupted checksum
	// SensorOffAt/For take the probe off the finger for a while (SNSD, no values).
	SensorOffAt, SensorOffFor time.Duration
}

// Simulator plays a Nonin oximeter: 75 frames a second, paced in real time.
type Simulator struct {
	Scenario *physio.Scenario
	Format   int // Format7 (default) or Format2
	Faults   Faults
	Seed     uint64
	// OnFrame, if set, is called for every frame generated, in order, with whether it
	// went out intact (not dropped, not corrupted); tests compare against it.
	OnFrame func(n int64, f Frame, intact bool)
	// OnPacket, if set, is called when a packet's last frame was generated, with the
	// values it carried and whether all 25 frames went out intact.
	OnPacket func(hr, spo2 int, intact bool)
}

// Run writes frames to w until ctx ends or a write fails.
func (s *Simulator) Run(ctx context.Context, w io.Writer) error {
	sc := s.Scenario
	if sc == nil {
		sc = &physio.Scenario{}
	}
	format := s.Format
	if format != Format2 {
		format = Format7
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x9e3779b97f4a7c15))
	pleth := physio.NewPleth(sc, FrameRate)
	start := time.Now()
	var (
		n            int64
		floats       [FramesPerPacket]uint8
		hr, spo2     int
		packetIntact bool
		out          []byte
	)
	tick := time.NewTicker(time.Second / FrameRate)
	defer tick.Stop()
	for {
		// Write every frame that is due, so a slow writer catches up instead of drifting.
		due := int64(time.Since(start) * FrameRate / time.Second)
		out = out[:0]
		for ; n <= due; n++ {
			t := time.Duration(n) * time.Second / FrameRate
			k := int(n % FramesPerPacket)
			off := s.Faults.SensorOffFor > 0 && t >= s.Faults.SensorOffAt && t < s.Faults.SensorOffAt+s.Faults.SensorOffFor
			if k == 0 {
				st := sc.At(t)
				hr, spo2 = int(math.Round(st.PR)), int(st.SpO2)
				if off {
					hr, spo2 = MissingHR, MissingSpO2
				}
				floats = EncodePacket(hr, spo2, 0x30)
				packetIntact = true
			}
			f := Frame{Status: StatusBit7 | StatusGPRF, Float: floats[k]}
			if k == 0 {
				f.Status |= StatusSync
			}
			v := pleth.Next()
			if off {
				f.Status = f.Status&^StatusGPRF | StatusSNSD
				v = 0
			}
			if format == Format2 {
				f.Pleth = uint16(math.Round(v * 255))
			} else {
				f.Pleth = uint16(math.Round(v * 65535))
			}
			if rng.Float64() < s.Faults.Noise {
				for range 1 + rng.IntN(4) {
					out = append(out, byte(rng.Uint32()))
				}
			}
			intact := true
			switch {
			case rng.Float64() < s.Faults.Drop:
				intact = false
			case rng.Float64() < s.Faults.BadChecksum:
				out = AppendFrame(out, f, format)
				out[len(out)-1] ^= byte(1 + rng.IntN(255))
				intact = false
			default:
				out = AppendFrame(out, f, format)
			}
			packetIntact = packetIntact && intact
			if s.OnFrame != nil {
				s.OnFrame(n, f, intact)
			}
			if k == FramesPerPacket-1 && s.OnPacket != nil {
				s.OnPacket(hr, spo2, packetIntact)
			}
		}
		if len(out) > 0 {
			if _, err := w.Write(out); err != nil {
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
