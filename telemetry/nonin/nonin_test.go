package nonin

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/physio"
	"lifeline/telemetry/telemetrytest"
)

func readHex(t testing.TB, path string) []byte {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublishedCaptureFormat2 decodes a packet captured from public Nonin OEM III test
// data (see testdata/README.md): the values there were not produced by our simulator.
func TestPublishedCaptureFormat2(t *testing.T) {
	data := readHex(t, "testdata/pufferfish_oem3_format2.hex")
	for _, chunk := range []int{1, 3, 5, 7, len(data)} { // any split of the stream decodes the same
		var sink telemetrytest.Sink
		dec := NewDecoder(Format2, nil)
		for i := 0; i < len(data); i += chunk {
			dec.Feed(data[i:min(i+chunk, len(data))], time.Now(), &sink)
		}
		pr := sink.Numerics(telemetry.MDC_PULS_OXIM_PULS_RATE)
		sat := sink.Numerics(telemetry.MDC_PULS_OXIM_SAT_O2)
		if len(pr) != 1 || pr[0].Value != 72 || pr[0].Unit != "/min" || pr[0].Invalid {
			t.Fatalf("chunk %d: pulse rate %+v", chunk, pr)
		}
		if len(sat) != 1 || sat[0].Value != 97 || sat[0].Unit != "%" {
			t.Fatalf("chunk %d: SpO2 %+v", chunk, sat)
		}
		if got := len(sink.Samples(telemetry.MDC_PULS_OXIM_PLETH)); got != 26 {
			t.Fatalf("chunk %d: %d pleth samples, want 26", chunk, got)
		}
		if frames, skipped := sink.Counts(); frames != 26 || skipped != 0 {
			t.Fatalf("chunk %d: frames %d skipped %d", chunk, frames, skipped)
		}
	}
	var f [FramesPerPacket]Frame
	for i := range f {
		f[i], _ = ParseFrame(data[i*FrameLen:], Format2)
	}
	if p := DecodePacket(&f); p.HR != 72 || p.EHR != 72 || p.HRD != 72 || p.EHRD != 72 || p.SpO2 != 97 || p.ESpO2 != 97 || p.SpO2D != 97 || p.Revision != 48 {
		t.Fatalf("packet %+v", p)
	}
}

func TestFrameRoundTripAndErrors(t *testing.T) {
	for _, format := range []int{Format2, Format7} {
		f := Frame{Status: StatusBit7 | StatusSync | StatusOOT, Pleth: 0x1234, Float: 0x48}
		if format == Format2 {
			f.Pleth = 0x34
		}
		b := AppendFrame(nil, f, format)
		got, err := ParseFrame(b, format)
		if err != nil || got != f {
			t.Fatalf("format %d: %+v, %v", format, got, err)
		}
		b[4]++
		if _, err := ParseFrame(b, format); err == nil {
			t.Fatalf("format %d: bad checksum accepted", format)
		}
	}
	if _, err := ParseFrame([]byte{0x01, 0x02}, Format7); err != ErrShort {
		t.Fatal(err)
	}
}

// TestSimulatorThroughPty runs the simulator against the driver through a socat cable
// opened by go.bug.st/serial at 9600 8N1, with noise bytes, dropped frames, bad
// checksums and the sensor taken off, and checks that every intact sample and the values
// of every complete packet arrive, in order, with nothing invented.
func TestSimulatorThroughPty(t *testing.T) {
	drv := New(Config{})
	sent := &telemetrytest.Sink{}
	sim := NewSimulator(SimConfig{
		Scenario: &physio.Scenario{HR: 84, DesatAt: time.Second, DesatOver: time.Second, DesatTo: 88},
		Faults:   telemetry.LineFaults{Noise: 0.03, Drop: 0.01, Corrupt: 0.01, Seed: 7},
		// The sensor comes off after the desaturation and back on.
		SensorOffAt: 2000 * time.Millisecond, SensorOffFor: 500 * time.Millisecond,
		Sent: sent.Emit,
	})
	c := telemetrytest.PlugCable(t, drv.Serial())
	s := telemetrytest.Start(c, sim, drv)
	wait.For(t, 30*time.Second, "the sensor taken off and put back on, seen by the driver", func() bool { return sensorBackOn(s.Got) })
	const pleth = telemetry.MDC_PULS_OXIM_PLETH
	s.Finish(t, func() bool {
		return len(s.Got.Samples(pleth)) >= len(sent.Samples(pleth)) && len(numerics(s.Got)) >= len(numerics(sent))
	})

	want, got := sent.Samples(pleth), s.Got.Samples(pleth)
	if len(want) < 150 {
		t.Fatalf("simulator sent only %d intact frames", len(want))
	}
	if len(got) != len(want) {
		t.Fatalf("received %d pleth samples, simulator sent %d intact", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pleth sample %d = %v, want %v", i, got[i], want[i])
		}
	}
	// Every packet whose 25 frames and the next packet's SYNC frame arrived intact must
	// yield its pulse rate and SpO2, in order, with nothing invented; with the sensor
	// off there are none.
	wantNum, gotNum := numerics(sent), numerics(s.Got)
	if len(gotNum) != len(wantNum) {
		t.Fatalf("got %d numerics, want %d", len(gotNum), len(wantNum))
	}
	for i, w := range wantNum {
		g := gotNum[i]
		if g.Code != w.Code || g.Value != w.Value || g.Unit != w.Unit || g.Invalid != w.Invalid {
			t.Fatalf("numeric %d: got %s %v %s invalid %v, sent %s %v %s invalid %v", i, g.Code, g.Value, g.Unit, g.Invalid, w.Code, w.Value, w.Unit, w.Invalid)
		}
	}
	sat := s.Got.Numerics(telemetry.MDC_PULS_OXIM_SAT_O2)
	if len(sat) == 0 || sat[len(sat)-1].Value != 88 {
		t.Errorf("SpO2 after desaturation %v, want 88 last", sat)
	}
	if _, skipped := s.Got.Counts(); skipped == 0 {
		t.Error("noise and bad checksums were not counted as skipped bytes")
	}
}

// numerics returns the numerics in the sink, in order.
func numerics(sink *telemetrytest.Sink) []*telemetry.Numeric {
	var out []*telemetry.Numeric
	for _, e := range sink.Events() {
		if n, ok := e.(*telemetry.Numeric); ok {
			out = append(out, n)
		}
	}
	return out
}

func TestProbe(t *testing.T) {
	var b []byte
	for i := 0; i < 5; i++ {
		b = AppendFrame(b, Frame{Status: StatusBit7, Pleth: uint16(i * 999), Float: 3}, Format7)
	}
	if !Probe(append([]byte{0x13, 0x77}, b...), Format7) {
		t.Error("format 7 stream not recognised")
	}
	noise := bytes.Repeat([]byte("MSH|^~\\&|"), 20)
	if Probe(noise, Format7) {
		t.Error("HL7 text taken for Nonin")
	}
}

// sensorBackOn reports whether the sink saw the sensor go off and then on again.
func sensorBackOn(sink *telemetrytest.Sink) bool {
	var off bool
	for _, d := range sink.Devices() {
		off = off || d.State == telemetry.DeviceSensorOff
		if off && d.State == telemetry.DeviceSensorOn {
			return true
		}
	}
	return false
}
