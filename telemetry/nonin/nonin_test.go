package nonin

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

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

// TestSimulatorThroughPty runs the simulator against the driver through a real pty opened
// by go.bug.st/serial at 9600 8N1, with noise bytes, dropped frames, bad checksums and the
// sensor taken off, and checks every intact sample and every complete packet arrives.
func TestSimulatorThroughPty(t *testing.T) {
	drv := New(nil)
	port, far := telemetrytest.PtyPair(t, drv.Serial())
	sc := &physio.Scenario{HR: 84, DesatAt: time.Second, DesatOver: time.Second, DesatTo: 88}
	var (
		sent    []Frame
		intact  []bool
		packets []int // per packet: the hr*1000+spo2 if all 25 frames intact, else -1
	)
	sim := &Simulator{
		Scenario: sc, Seed: 7,
		Faults: Faults{Noise: 0.03, Drop: 0.01, BadChecksum: 0.01, SensorOffAt: 2000 * time.Millisecond, SensorOffFor: 500 * time.Millisecond},
		OnFrame: func(n int64, f Frame, ok bool) {
			sent = append(sent, f)
			intact = append(intact, ok)
		},
		OnPacket: func(hr, spo2 int, ok bool) {
			v := -1
			if ok {
				v = hr*1000 + spo2
			}
			packets = append(packets, v)
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(ctx, far) }()
	var sink telemetrytest.Sink
	// The driver has its own context so that it drains what the simulator wrote
	// before it stopped, however loaded the machine is.
	drvCtx, drvCancel := context.WithCancel(context.Background())
	defer drvCancel()
	drvDone := make(chan error, 1)
	go func() { drvDone <- drv.Run(drvCtx, port, &sink) }()

	// Run until the sensor-on after the sensor-off has reached the driver (it needs a
	// whole clean packet), and at least 4 s.
	time.Sleep(4 * time.Second)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !sensorBackOn(&sink); {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-simDone
	var want []float32
	for i, f := range sent {
		if intact[i] {
			want = append(want, float32(f.Pleth))
		}
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(sink.Samples(telemetry.MDC_PULS_OXIM_PLETH)) < len(want); {
		time.Sleep(50 * time.Millisecond)
	}
	// Then stop it by closing the port, as the reader does.
	drvCancel()
	port.Close()
	if err := <-drvDone; err != context.Canceled {
		t.Fatalf("driver ended with %v, want context.Canceled", err)
	}

	got := sink.Samples(telemetry.MDC_PULS_OXIM_PLETH)
	if len(want) < 250 {
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
	// yield its pulse rate and SpO2, in order, with nothing invented.
	var wantPackets []int
	for p := 0; p < len(packets) && (p+1)*FramesPerPacket < len(intact); p++ {
		if packets[p] >= 0 && intact[(p+1)*FramesPerPacket] {
			wantPackets = append(wantPackets, packets[p])
		}
	}
	pr := sink.Numerics(telemetry.MDC_PULS_OXIM_PULS_RATE)
	sat := sink.Numerics(telemetry.MDC_PULS_OXIM_SAT_O2)
	if len(pr) != len(sat) {
		t.Fatalf("%d pulse rates but %d SpO2 values", len(pr), len(sat))
	}
	var gotPackets []int
	for i := range pr {
		gotPackets = append(gotPackets, int(pr[i].Value)*1000+int(sat[i].Value))
	}
	// Packets with the sensor off carry no values: leave them out of the expectation.
	var filtered []int
	for _, v := range wantPackets {
		if v/1000 != MissingHR {
			filtered = append(filtered, v)
		}
	}
	if len(gotPackets) != len(filtered) {
		t.Fatalf("got %d packets of numerics %v, want %d %v", len(gotPackets), gotPackets, len(filtered), filtered)
	}
	for i := range filtered {
		if gotPackets[i] != filtered[i] {
			t.Fatalf("packet %d: got %d, want %d", i, gotPackets[i], filtered[i])
		}
	}
	if last := sat[len(sat)-1].Value; last != 88 {
		t.Errorf("SpO2 after desaturation %v, want 88", last)
	}
	if !sensorBackOn(&sink) {
		t.Errorf("no sensor-off event followed by sensor-on: %+v", sink.Devices())
	}
	if _, skipped := sink.Counts(); skipped == 0 {
		t.Error("noise and bad checksums were not counted as skipped bytes")
	}
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
