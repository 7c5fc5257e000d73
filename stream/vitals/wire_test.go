package vitals

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"lifeline/telemetry"
)

var t0 = time.Date(2026, 12, 2, 4, 30, 0, 123456789, time.UTC)

// encodeAll numbers and encodes what FromEvent makes of evs, as the Outbox does.
func encodeAll(t testing.TB, evs []telemetry.Event, seq, waveSeq *uint64) [][]byte {
	t.Helper()
	var out [][]byte
	for _, ev := range evs {
		for _, m := range FromEvent("amb-07", telemetry.Message{Source: "monitor0", Event: ev}) {
			m.Epoch = "9f2c4e1a7b3d5e60"
			if m.Type == TypeWave {
				*waveSeq++
				m.Seq = *waveSeq
			} else {
				*seq++
				m.Seq = *seq
			}
			data, err := Marshal(&m)
			if err != nil {
				t.Fatalf("encode %s: %v", m.Type, err)
			}
			out = append(out, data)
		}
	}
	return out
}

func TestRoundTripOfAPatientsEvents(t *testing.T) {
	p := newPatient(t0)
	var seq, waveSeq uint64
	kinds := map[string]int{}
	for range 100 { // 10 s: VT starts and ends, two cuff cycles
		evs := p.next()
		for i, data := range encodeAll(t, evs, &seq, &waveSeq) {
			if len(data) > MaxMessageBytes/2 {
				t.Fatalf("%d-byte message, want well under %d", len(data), MaxMessageBytes)
			}
			m, err := Decode(data)
			if err != nil {
				t.Fatalf("decode %s: %v", data, err)
			}
			kinds[m.Type]++
			checkAgainstEvent(t, m, evs[i])
		}
	}
	if kinds[TypeWave] != 100*14 || kinds[TypeNumeric] < 70 || kinds[TypeAlarm] != 2 {
		t.Fatalf("message counts %v: want 1400 waves, ≥70 numerics, VT raised and cleared", kinds)
	}
	if seq != uint64(kinds[TypeNumeric]+kinds[TypeAlarm]) || waveSeq != 1400 {
		t.Fatalf("sequences %d/%d do not count the messages %v", seq, waveSeq, kinds)
	}
}

// checkAgainstEvent compares a decoded message with the event it came from; every
// event here makes exactly one message.
func checkAgainstEvent(t *testing.T, m Message, ev telemetry.Event) {
	t.Helper()
	if m.Device != "amb-07" || m.Source != "monitor0" || m.V != Version {
		t.Fatalf("envelope %+v", m)
	}
	switch e := ev.(type) {
	case *telemetry.Wave:
		q, _ := telemetry.Lookup(e.Code)
		if m.Type != TypeWave || m.Code != uint32(e.Code) || m.MDC != e.Code.Name() || m.Label != q.Label || m.Unit != e.Unit || m.Rate != e.Rate {
			t.Fatalf("wave %+v from %+v", m, e)
		}
		if !m.Start.Equal(e.Start) || !m.MonitorTime.Equal(e.MonitorStart) || !m.BoxTime.Equal(e.ReceiveTime) || m.Gap != e.Gap {
			t.Fatalf("wave times/gap %v %v %v %v, want %v %v %v %v", m.Start, m.MonitorTime, m.BoxTime, m.Gap, e.Start, e.MonitorStart, e.ReceiveTime, e.Gap)
		}
		if !slices.Equal([]float32(m.Samples), e.Samples) {
			t.Fatalf("samples changed on the wire: %v, want %v", m.Samples, e.Samples)
		}
	case *telemetry.Numeric:
		if m.Type != TypeNumeric || m.Code != uint32(e.Code) || m.Unit != e.Unit || m.Value == nil || *m.Value != e.Value {
			t.Fatalf("numeric %+v from %+v", m, e)
		}
		if !m.MonitorTime.Equal(e.MonitorTime) || !m.BoxTime.Equal(e.ReceiveTime) || !m.Measured.Equal(e.Measured) {
			t.Fatalf("numeric times %+v from %+v", m, e)
		}
	case *telemetry.Alarm:
		want := map[bool]string{true: "raised", false: "cleared"}[e.On]
		if m.Type != TypeAlarm || m.Priority != "high" || m.Text != e.Text || m.State != want || m.MDC != "MDC_ECG_HEART_RATE" {
			t.Fatalf("alarm %+v from %+v", m, e)
		}
	default:
		t.Fatalf("unexpected event %T", ev)
	}
}

func TestLongBlockIsSplitOnItsTimeAxis(t *testing.T) {
	s := make([]float32, 1200)
	for i := range s {
		s[i] = -1.1754944e-38 // the longest spelling a float32 has
	}
	w := &telemetry.Wave{Code: telemetry.MDC_ECG_ELEC_POTL_II, Unit: "mV", Rate: 500, Start: t0, MonitorStart: t0, ReceiveTime: t0.Add(2400 * time.Millisecond), Samples: s, Gap: true}
	msgs := FromEvent("amb-07", telemetry.Message{Source: "monitor0", Event: w})
	if len(msgs) != 3 {
		t.Fatalf("%d chunks, want 3", len(msgs))
	}
	for i, m := range msgs {
		m.Seq, m.Epoch = uint64(i+1), "e"
		if want := t0.Add(time.Duration(i) * time.Second); !m.Start.Equal(want) || !m.MonitorTime.Equal(want) {
			t.Fatalf("chunk %d starts %v, want %v", i, m.Start, want)
		}
		if m.Gap != (i == 0) {
			t.Fatalf("chunk %d gap %v: only the first chunk follows the hole", i, m.Gap)
		}
		data, err := Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 8<<10 {
			t.Fatalf("chunk %d is %d bytes; the format promises under 8 KiB", i, len(data))
		}
	}
}

func TestNonFiniteValuesTravelAsNull(t *testing.T) {
	nan := float32(math.NaN())
	w := &telemetry.Wave{Code: telemetry.MDC_PULS_OXIM_PLETH, Rate: 100, Start: t0, ReceiveTime: t0, Samples: []float32{0.5, nan, float32(math.Inf(1)), 0.25}}
	m := FromEvent("amb-07", telemetry.Message{Source: "m", Event: w})[0]
	m.Seq, m.Epoch = 1, "e"
	data, err := Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"samples":[0.5,null,null,0.25]`) {
		t.Fatalf("samples not spelled with null: %s", data)
	}
	back, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Samples[0] != 0.5 || !math.IsNaN(float64(back.Samples[1])) || back.Samples[3] != 0.25 {
		t.Fatalf("samples read back as %v", back.Samples)
	}
	n := &telemetry.Numeric{Code: telemetry.MDC_PULS_OXIM_SAT_O2, Value: math.NaN(), Unit: "%", ReceiveTime: t0, Invalid: true}
	m = FromEvent("amb-07", telemetry.Message{Source: "m", Event: n})[0]
	m.Seq, m.Epoch = 1, "e"
	data, err = Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"value"`) || !strings.Contains(string(data), `"invalid":true`) {
		t.Fatalf("a numeric without a value must leave value out and say invalid: %s", data)
	}
}

func TestDecodeRefusesWhatItCannotTrust(t *testing.T) {
	wave := `{"v":1,"type":"wave","seq":1,"epoch":"e","device":"d","code":1,"rate":500,"start":"2026-12-02T04:30:00Z","box_time":"2026-12-02T04:30:00Z","samples":%s}`
	big := "[" + strings.Repeat("1,", MaxWaveSamples) + "1]"
	for _, c := range []struct{ name, msg, want string }{
		{"not JSON", `{"v":1,`, "invalid"},
		{"no version", `{"type":"ack","seq":1,"epoch":"e"}`, `no version "v"`},
		{"future version", `{"v":2,"type":"ack","seq":1,"epoch":"e"}`, "version 2 is not supported"},
		{"version not a number", `{"v":"1","type":"ack"}`, "not an integer"},
		{"unknown type", `{"v":1,"type":"Numeric!","seq":1}`, "unknown type"},
		{"numeric without epoch", `{"v":1,"type":"numeric","seq":1,"device":"d","code":1,"box_time":"2026-12-02T04:30:00Z"}`, "no epoch"},
		{"numeric without seq", `{"v":1,"type":"numeric","epoch":"e","device":"d","code":1,"box_time":"2026-12-02T04:30:00Z"}`, "no seq"},
		{"seq beyond JS", `{"v":1,"type":"ack","seq":9007199254740992,"epoch":"e"}`, "beyond 2^53-1"},
		{"negative seq", `{"v":1,"type":"ack","seq":-1,"epoch":"e"}`, "invalid"},
		{"too many samples", strings.Replace(wave, "%s", big, 1), "more than 500"},
		{"sample not a number", strings.Replace(wave, "%s", `[1,"2"]`, 1), "sample 1 is not a number"},
		{"nested sample", strings.Replace(wave, "%s", `[[1]]`, 1), "sample 0 is not a number"},
		{"sample beyond float32", strings.Replace(wave, "%s", `[1e39]`, 1), "out of range"},
		{"no samples", strings.Replace(wave, "%s", `[]`, 1), "no samples"},
		{"rate zero", strings.Replace(strings.Replace(wave, "%s", `[1]`, 1), `"rate":500`, `"rate":0`, 1), "rate 0 outside"},
		{"alarm priority", `{"v":1,"type":"alarm","seq":1,"epoch":"e","device":"d","priority":"urgent","state":"raised","box_time":"2026-12-02T04:30:00Z"}`, `priority "urgent" unknown`},
		{"device state", `{"v":1,"type":"device","seq":1,"epoch":"e","device":"d","state":"exploded","box_time":"2026-12-02T04:30:00Z"}`, `state "exploded" unknown`},
		{"long device", `{"v":1,"type":"ack","seq":1,"epoch":"e","device":"` + strings.Repeat("x", 129) + `"}`, "device is 129 bytes"},
		{"too large", `{"v":1,"type":"text","seq":1,"text":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, "more than 16384"},
		{"bad time", `{"v":1,"type":"numeric","seq":1,"epoch":"e","device":"d","code":1,"box_time":"yesterday"}`, "invalid"},
	} {
		_, err := Decode([]byte(c.msg))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one wrapping ErrInvalid saying %q", c.name, err, c.want)
		}
	}
	var ve *VersionError
	if _, err := Decode([]byte(`{"v":7,"type":"numeric"}`)); !errors.As(err, &ve) || ve.Got != 7 {
		t.Fatalf("a future version must be a VersionError naming it, got %v", err)
	}
}
