package nonin

import (
	"log/slog"
	"time"

	"lifeline/telemetry"
)

// Decoder turns a byte stream into frames, packets and telemetry events. It finds frame
// boundaries by the status bit and checksum; when it has lost them it requires two
// consecutive valid frames before trusting a boundary again, so that line noise is not
// taken for a frame. It is not safe for concurrent use.
type Decoder struct {
	Format int // Format7 (default) or Format2
	Log    *slog.Logger

	buf       []byte
	locked    bool
	packet    [FramesPerPacket]Frame
	npacket   int  // frames collected in packet; -1 until the first SYNC
	gap       bool // samples were lost since the last emitted block
	pleth     []float32
	plethBad  bool
	sensorOff bool
	skipped   int
}

// NewDecoder returns a decoder for format.
func NewDecoder(format int, log *slog.Logger) *Decoder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Decoder{Format: format, Log: log, npacket: -1}
}

func (d *Decoder) format() int {
	if d.Format == Format2 {
		return Format2
	}
	return Format7
}

// Feed decodes p, which arrived at now, emitting to out: a pleth block for the frames
// in p, and pulse rate / SpO2 numerics and sensor events at each complete packet.
func (d *Decoder) Feed(p []byte, now time.Time, out telemetry.Sink) {
	d.buf = append(d.buf, p...)
	f := d.format()
	i := 0
	for len(d.buf)-i >= FrameLen {
		fr, err := ParseFrame(d.buf[i:], f)
		if err == nil && !d.locked {
			// Confirm the boundary with the following frame, or wait for it.
			if len(d.buf)-i < 2*FrameLen {
				break
			}
			if _, err2 := ParseFrame(d.buf[i+FrameLen:], f); err2 != nil {
				err = err2
			}
		}
		if err != nil {
			d.skip(1, err.Error())
			d.locked = false
			i++
			continue
		}
		d.locked = true
		i += FrameLen
		out.Frame()
		d.frame(fr, now, out)
	}
	d.buf = append(d.buf[:0], d.buf[i:]...)
	if d.skipped > 0 {
		out.Skipped(d.skipped, "nonin: bytes outside valid frames")
		d.skipped = 0
	}
	d.flush(now, out)
}

func (d *Decoder) skip(n int, reason string) {
	if d.skipped == 0 {
		d.Log.Debug("nonin: skipping bytes", "reason", reason)
	}
	d.skipped += n
	d.gap = true
}

func (d *Decoder) frame(fr Frame, now time.Time, out telemetry.Sink) {
	if fr.Status&StatusSync != 0 {
		// A packet is complete only when the next SYNC comes exactly 25 frames after its
		// own: a lost frame (or a lost SYNC) anywhere makes the count differ, so float
		// bytes of two packets are never mixed up.
		switch {
		case d.npacket == FramesPerPacket:
			d.flush(now, out) // keep the pleth ahead of the numerics it led to
			d.emitPacket(DecodePacket(&d.packet), now, out)
		case d.npacket > 0:
			d.gap = true
			d.Log.Debug("nonin: incomplete packet dropped", "frames", d.npacket)
		}
		d.npacket = 0
	}
	d.pleth = append(d.pleth, float32(fr.Pleth))
	if fr.Status&(StatusSNSD|StatusOOT|StatusSNSA) != 0 {
		d.plethBad = true
	}
	if d.npacket < 0 {
		return // before the first SYNC we cannot place the float bytes
	}
	if d.npacket < FramesPerPacket {
		d.packet[d.npacket] = fr
	}
	d.npacket++
}

func (d *Decoder) flush(now time.Time, out telemetry.Sink) {
	if len(d.pleth) == 0 {
		return
	}
	w := &telemetry.Wave{
		Code: telemetry.MDC_PULS_OXIM_PLETH, Unit: telemetry.UnitNone, Rate: FrameRate,
		ReceiveTime: now, Samples: d.pleth, Invalid: d.plethBad, Gap: d.gap,
	}
	d.pleth = make([]float32, 0, FramesPerPacket)
	d.plethBad, d.gap = false, false
	out.Emit(w)
}

func (d *Decoder) emitPacket(p Packet, now time.Time, out telemetry.Sink) {
	off := p.Status&StatusSNSD != 0
	if off != d.sensorOff {
		d.sensorOff = off
		ev := &telemetry.DeviceEvent{State: telemetry.DeviceSensorOn, Code: telemetry.MDC_PULS_OXIM_SAT_O2, Detail: "SpO2 sensor connected", ReceiveTime: now}
		if off {
			ev.State, ev.Detail = telemetry.DeviceSensorOff, "SpO2 sensor disconnected or inoperable"
		}
		out.Emit(ev)
	}
	questionable := p.Status&(StatusOOT|StatusARTF|StatusSNSA|StatusSNSD) != 0
	if p.HR != MissingHR {
		out.Emit(&telemetry.Numeric{Code: telemetry.MDC_PULS_OXIM_PULS_RATE, Value: float64(p.HR), Unit: telemetry.UnitPerMinute, ReceiveTime: now, Invalid: questionable})
	}
	if p.SpO2 != MissingSpO2 {
		out.Emit(&telemetry.Numeric{Code: telemetry.MDC_PULS_OXIM_SAT_O2, Value: float64(p.SpO2), Unit: telemetry.UnitPercent, ReceiveTime: now, Invalid: questionable})
	}
}

// Probe reports whether data holds at least three consecutive valid frames of format.
func Probe(data []byte, format int) bool {
	for i := 0; i+3*FrameLen <= len(data); i++ {
		ok := true
		for k := 0; k < 3 && ok; k++ {
			_, err := ParseFrame(data[i+k*FrameLen:], format)
			ok = err == nil
		}
		if ok {
			return true
		}
	}
	return false
}
