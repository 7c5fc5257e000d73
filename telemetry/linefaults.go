package telemetry

import (
	"math/rand/v2"
	"time"
)

// LineFaults injects the failures a serial link to a monitor shows in an ambulance
// into a simulated monitor's output: line noise, lost frames, corrupted frames and a
// pulled cable. The Datex and IntelliVue simulators share it, so that a fault pattern
// means the same on both and the drivers are tested against the same line.
type LineFaults struct {
	Noise   float64 // probability per frame of a burst of 1-8 noise bytes before it
	Drop    float64 // probability a frame is not sent at all
	Corrupt float64 // probability a frame goes out with one bit flipped (bad checksum)
	// PullAt and PullFor pull the cable: from PullAt after the simulator's time zero it
	// neither sends nor hears for PullFor. What the monitor forgets meanwhile is up to
	// the protocol. Zero PullFor means never.
	PullAt, PullFor time.Duration
	Seed            uint64 // for reproducible fault patterns
}

// Pulled reports whether the cable is out at elapsed after the simulator's time zero.
func (f LineFaults) Pulled(elapsed time.Duration) bool {
	return f.PullFor > 0 && elapsed >= f.PullAt && elapsed < f.PullAt+f.PullFor
}

// Apply appends frame, as it goes on the wire, to out as the faulty line delivers it,
// drawing the faults from rng, and reports whether the frame went out intact. Noise
// bytes are all below 0x7C, so that in framings whose flags and escape are at or above
// it (Datex 7E/7D, IntelliVue C0/C1/7D) they are pure noise. Corruption flips the low
// bit of one byte between the first and the last, unless that byte or its flip is
// special (a flag or escape), so that the frame stays a frame and only its checksum
// fails; then the frame goes out intact. Apply may change frame.
func (f LineFaults) Apply(rng *rand.Rand, out, frame []byte, special func(byte) bool) ([]byte, bool) {
	if f.Noise > 0 && rng.Float64() < f.Noise {
		for i := 0; i < 1+rng.IntN(8); i++ {
			out = append(out, byte(rng.IntN(0x7C)))
		}
	}
	if f.Drop > 0 && rng.Float64() < f.Drop {
		return out, false
	}
	if f.Corrupt > 0 && rng.Float64() < f.Corrupt {
		i := 1 + rng.IntN(len(frame)-2)
		if b := frame[i] ^ 0x01; !special(frame[i]) && !special(b) {
			frame[i] = b
			return append(out, frame...), false
		}
	}
	return append(out, frame...), true
}
