package hl7

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"lifeline/telemetry"
)

func numerics(evs []telemetry.Event) map[string][]*telemetry.Numeric {
	out := map[string][]*telemetry.Numeric{}
	for _, e := range evs {
		if n, ok := e.(*telemetry.Numeric); ok {
			out[n.Code.Name()] = append(out[n.Code.Name()], n)
		}
	}
	return out
}

func TestGEB40PublishedExample(t *testing.T) {
	raw, err := os.ReadFile("testdata/ge_b40_pcd01.hl7")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type() != "ORU^R01" || m.ControlID() != "004097134535" {
		t.Fatalf("type %s id %s", m.Type(), m.ControlID())
	}
	res := Decode(m, time.Now(), time.UTC)
	got := numerics(res.Events)
	want := []struct {
		name string
		vals []float64
		unit string
	}{
		{"MDC_PRESS_BLD_ART_SYS", []float64{112}, "mm[Hg]"},
		{"MDC_PRESS_BLD_ART_DIA", []float64{76}, "mm[Hg]"},
		{"MDC_PRESS_BLD_ART_MEAN", []float64{95}, "mm[Hg]"},
		{"MDC_BLD_PULS_RATE_INV", []float64{80}, "/min"},
		{"MDC_ECG_HEART_RATE", []float64{80}, "/min"},
		{"MDC_ECG_V_P_C_RATE", []float64{0}, "/min"},
		{"MDC_PULS_OXIM_SAT_O2", []float64{100}, "%"},
		{"MDC_RESP_RATE", []float64{18, 30}, "/min"},
		{"MDC_TEMP", []float64{37.1, 36.5}, "Cel"},
	}
	total := 0
	for _, w := range want {
		ns := got[w.name]
		if len(ns) != len(w.vals) {
			t.Errorf("%s: %d values, want %v", w.name, len(ns), w.vals)
			continue
		}
		for i, n := range ns {
			total++
			if n.Value != w.vals[i] || n.Unit != w.unit {
				t.Errorf("%s[%d] = %v %s, want %v %s", w.name, i, n.Value, n.Unit, w.vals[i], w.unit)
			}
			if !n.MonitorTime.Equal(time.Date(2013, 1, 22, 13, 41, 0, 0, time.UTC)) {
				t.Errorf("%s: monitor time %v (from OBR-7)", w.name, n.MonitorTime)
			}
		}
	}
	if len(res.Events) != total || res.Ignored != 0 {
		t.Errorf("%d events (want %d), %d ignored: %s", len(res.Events), total, res.Ignored, res.FirstProb)
	}
	if !WantsAck(m) {
		t.Error("NE|AL: the monitor wants an application ACK")
	}
	ack := string(EncodeACK(m, "AA", "", time.Date(2013, 1, 22, 13, 41, 1, 0, time.UTC), "L1"))
	if !strings.Contains(ack, "\rMSA|AA|004097134535\r") || !strings.HasPrefix(ack, "MSH|^~\\&|LIFELINE|BOX|VSP^080019FFFE134535^EUI-64|GE Healthcare|") {
		t.Errorf("ACK %q", ack)
	}
}

func TestPhilipsLocalCodes(t *testing.T) {
	raw, err := os.ReadFile("testdata/philips_efficia_oru.hl7")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	res := Decode(m, time.Now(), time.UTC)
	got := numerics(res.Events)
	for name, v := range map[string]float64{
		"MDC_PULS_OXIM_SAT_O2": 98, "MDC_PRESS_BLD_NONINV_SYS": 122, "MDC_PRESS_BLD_NONINV_DIA": 85,
		"MDC_PRESS_BLD_NONINV_MEAN": 98, "MDC_PULS_OXIM_PULS_RATE": 80, "MDC_RESP_RATE": 20, "MDC_TEMP": 37.4,
	} {
		if len(got[name]) != 1 || got[name][0].Value != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if sys := got["MDC_PRESS_BLD_NONINV_SYS"]; len(sys) == 1 && !sys[0].Measured.Equal(time.Date(2014, 5, 10, 12, 44, 30, 0, time.UTC)) {
		t.Errorf("NIBP measured %v", sys[0].Measured)
	}
	if len(got["MDC_ECG_HEART_RATE"]) != 0 {
		t.Error("an empty HR (shown as ? on the monitor) became a value")
	}
	if res.Ignored != 1 {
		t.Errorf("ignored %d, want 1 (the empty HR)", res.Ignored)
	}
}

func TestParseVendorVariants(t *testing.T) {
	gb, _ := simplifiedchinese.GB18030.NewEncoder().String("心率过高")
	msg := "MSH|^~\\&|CMS|COMEN|||20260501101500+0800||ORU^R40^ORU_R40|77|P|2.4|||AL|NE||GB 18030\r\n" +
		"OBR|1||77|196616^MDC_EVT_ALARM^MDC|||20260501101500+0800\r\n" +
		"OBX|1|ST|147842^MDC_ECG_HEART_RATE^MDC|1.0.0.1|HR\\F\\HIGH " + gb + "|||PH|||F|||20260501101459+0800\r\n" +
		"OBX|2|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.0.0.1.1|start||||||F\r\n"
	m, err := Parse([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	res := Decode(m, time.Now(), time.UTC)
	if len(res.Events) != 1 {
		t.Fatalf("events %v ignored %s", res.Events, res.FirstProb)
	}
	a := res.Events[0].(*telemetry.Alarm)
	if a.Text != "HR|HIGH 心率过高" || a.Priority != telemetry.PriorityHigh || !a.On || a.Code != telemetry.MDC_ECG_HEART_RATE {
		t.Errorf("alarm %+v", a)
	}
	if want := time.Date(2026, 5, 1, 2, 14, 59, 0, time.UTC); !a.MonitorTime.Equal(want) {
		t.Errorf("alarm time %v, want %v", a.MonitorTime, want)
	}
	// Non-default encoding characters are honoured.
	m, err = Parse([]byte("MSH#*~\\&#A#B###20260101##ORU*R01#1#P#2.6\rOBX#1#NM#150456*MDC_PULS_OXIM_SAT_O2*MDC#1#95#262688*MDC_DIM_PERCENT*MDC\r"))
	if err != nil {
		t.Fatal(err)
	}
	if n := numerics(Decode(m, time.Now(), time.UTC).Events)["MDC_PULS_OXIM_SAT_O2"]; len(n) != 1 || n[0].Value != 95 {
		t.Errorf("custom separators: %v", n)
	}
	for _, bad := range []string{"", "PID|1", "MSH", "MSH|^~\\&\rX\r"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 123e6, time.UTC)
	nums := telemetry.NIBP{Sys: 121, Dia: 79, Mean: 93, Measured: t0, MonitorTime: t0}.Numerics()
	nums = append(nums, &telemetry.Numeric{Code: telemetry.MDC_TEMP, Value: 36.85, Unit: "Cel", MonitorTime: t0, Invalid: true})
	w := &telemetry.Wave{Code: telemetry.MDC_ECG_ELEC_POTL_V4, Unit: "mV", Rate: 500, Start: t0, Samples: []float32{0.001, -1.25, 3.3333333, float32(math.Pi)}}
	raw := EncodeORU(Header{ControlID: "9", Time: t0, AckType: "AL"}, nums, []*telemetry.Wave{w})
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	res := Decode(m, time.Now(), time.UTC)
	if len(res.Events) != 5 || res.Ignored != 0 {
		t.Fatalf("%d events, ignored %d (%s)", len(res.Events), res.Ignored, res.FirstProb)
	}
	for i, n := range nums {
		g := res.Events[i].(*telemetry.Numeric)
		if g.Code != n.Code || g.Value != n.Value || g.Unit != n.Unit || g.Invalid != n.Invalid || !g.MonitorTime.Equal(t0) || !g.Measured.Equal(n.Measured) {
			t.Errorf("numeric %d: %+v, want %+v", i, g, n)
		}
	}
	gw := res.Events[4].(*telemetry.Wave)
	if gw.Code != w.Code || gw.Rate != 500 || gw.Unit != "mV" || !gw.MonitorStart.Equal(t0) || len(gw.Samples) != 4 {
		t.Fatalf("wave %+v", gw)
	}
	for i := range w.Samples {
		if gw.Samples[i] != w.Samples[i] {
			t.Errorf("sample %d = %v, want %v", i, gw.Samples[i], w.Samples[i])
		}
	}
}

func TestDeframer(t *testing.T) {
	stream := []byte("noise\x0bMSH|A\x1c\x0d\r\n\x0bMSH|B\x1c\x0bMSH|C\x0bMSH|D\x1c\x0d")
	var d Deframer
	var got []string
	skipped := 0
	for i := 0; i < len(stream); i += 3 { // split anywhere
		msgs, sk, err := d.Feed(stream[i:min(i+3, len(stream))])
		if err != nil {
			t.Fatal(err)
		}
		skipped += sk
		for _, m := range msgs {
			got = append(got, string(m))
		}
	}
	// "MSH|C" is cut off by a new start block: dropped and counted.
	if strings.Join(got, ",") != "MSH|A,MSH|B,MSH|D" {
		t.Errorf("messages %q", got)
	}
	if want := len("noise") + len("\r\n") + len("MSH|C") + 1; skipped != want {
		t.Errorf("skipped %d, want %d", skipped, want)
	}
	d = Deframer{Max: 10}
	if _, _, err := d.Feed(append([]byte{StartBlock}, bytes.Repeat([]byte("x"), 20)...)); err != ErrOversized {
		t.Errorf("oversized frame: %v", err)
	}
	msgs, _, _ := d.Feed([]byte("\x0bMSH|E\x1c\r"))
	if len(msgs) != 1 || string(msgs[0]) != "MSH|E" {
		t.Errorf("after oversize: %q", msgs)
	}
}

// fakePort feeds fixed input and records what the driver writes.
type fakePort struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (p *fakePort) Read(b []byte) (int, error) { return p.in.Read(b) }

func (p *fakePort) Write(b []byte) (int, error) { return p.out.Write(b) }

func (p *fakePort) SetReadTimeout(time.Duration) error { return nil }

// TestDriverAcksAndRejects: an accepted message gets MSA|AA, a message whose header is
// readable but whose body is broken gets MSA|AE, and the driver goes on.
func TestDriverAcksAndRejects(t *testing.T) {
	good := "MSH|^~\\&|MON|ICU|||20260501||ORU^R01|G1|P|2.6|||AL|NE\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|96|262688^MDC_DIM_PERCENT^MDC\r"
	bad := "MSH|^~\\&|MON|ICU|||20260501||ORU^R01|B1|P|2.6|||AL|NE\rO!|1|garbage\r"
	quiet := "MSH|^~\\&|MON|ICU|||20260501||ORU^R01|Q1|P|2.6|||NE|NE\rOBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1|60|264864^^MDC\r"
	var in []byte
	for _, m := range []string{good, bad, quiet} {
		in = Frame(in, []byte(m))
	}
	p := &fakePort{in: bytes.NewReader(in)}
	var got []telemetry.Event
	var skipped int
	sink := &countingSink{emit: func(e telemetry.Event) { got = append(got, e) }, skip: func(n int) { skipped += n }}
	err := New(Config{}).Run(t.Context(), p, sink)
	if err == nil {
		t.Fatal("driver did not report the end of input")
	}
	if len(got) != 2 || skipped == 0 {
		t.Fatalf("events %d, skipped %d", len(got), skipped)
	}
	var d Deframer
	acks, _, _ := d.Feed(p.out.Bytes())
	if len(acks) != 2 {
		t.Fatalf("%d ACKs, want 2 (none for NE|NE)", len(acks))
	}
	for i, want := range []string{"MSA|AA|G1", "MSA|AE|B1"} {
		if !strings.Contains(string(acks[i]), want) {
			t.Errorf("ACK %d: %q lacks %q", i, acks[i], want)
		}
	}
}

type countingSink struct {
	emit func(telemetry.Event)
	skip func(int)
}

func (s *countingSink) Emit(e telemetry.Event)  { s.emit(e) }
func (s *countingSink) Frame()                  {}
func (s *countingSink) Skipped(n int, _ string) { s.skip(n) }
