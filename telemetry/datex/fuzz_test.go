package datex

import (
	"bytes"
	"os"
	"testing"
	"time"

	"lifeline/telemetry"
)

func seedFrames(f *testing.F) {
	wire, err := os.ReadFile("testdata/s5_phdb_capture.raw")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wire[:1155])
	f.Add(New(Config{}).Requests(time.Unix(1700000000, 0)))
	w := WaveSubrecord{Type: WaveECG1, Samples: []int16{1, -2, 0x7E7D, -32767}}
	r := Record{Header: Header{MainType: MainWave}, Subrecords: []Subrecord{{Type: WaveECG1, Data: w.Marshal()}, {Type: WavePleth, Data: w.Marshal()}}}
	b, _ := r.Marshal()
	f.Add(Frame(b))
	m := AlarmMessage{Alarms: [AlarmSlots]DisplayedAlarm{{Text: "ASYSTOLE", Priority: AlarmHigh}}}
	r = Record{Header: Header{MainType: MainAlarm}, Subrecords: []Subrecord{{Type: AlarmStatus, Data: m.Marshal()}}}
	b, _ = r.Marshal()
	f.Add(Frame(b))
	f.Add([]byte{0x7E, 0x7D, 0x7E, 0x7D, 0x5E, 0x7E})
}

// FuzzDeframer checks that any byte stream splits into records without panics, that
// every record it yields carries a valid checksum, and that framing what it yields
// gives it back.
func FuzzDeframer(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Deframer
		d.Feed(data, func(rec []byte) {
			if len(rec) > MaxRecord {
				t.Fatalf("record of %d bytes passed the limit", len(rec))
			}
			var d2 Deframer
			var back []byte
			d2.Feed(Frame(rec), func(r []byte) { back = append([]byte(nil), r...) }, func(e *FrameError) { t.Fatalf("reframed record dropped: %v", e) })
			if !bytes.Equal(back, rec) {
				t.Fatalf("reframing changed the record")
			}
		}, func(*FrameError) {})
	})
}

// FuzzParseRecord feeds arbitrary records to the record, physiological, wave, alarm and
// request decoders.
func FuzzParseRecord(f *testing.F) {
	wire, _ := os.ReadFile("testdata/s5_phdb_capture.raw")
	f.Add(wire[1 : 1+1152])
	var d Deframer
	d.Feed(New(Config{}).Requests(time.Unix(1700000000, 0)), func(r []byte) { f.Add(append([]byte(nil), r...)) }, func(*FrameError) {})
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil {
			return
		}
		for _, sr := range r.Subrecords {
			if int(sr.Offset)+len(sr.Data) > len(data)-HeaderLen {
				t.Fatalf("subrecord beyond the record")
			}
			ParsePhdb(sr.Data)
			ParseWave(sr.Type, sr.Data)
			ParseAlarm(sr.Data)
			ParsePhdbRequest(sr.Data)
			ParseWaveRequest(sr.Data)
			ParseAlarmRequest(sr.Data)
		}
		if _, err := r.Marshal(); err != nil && len(r.Subrecords) <= MaxSubrecords {
			t.Fatalf("a parsed record does not marshal: %v", err)
		}
	})
}

// FuzzDriverSession pushes arbitrary bytes through the driver's whole decoding path and
// checks that it only emits well-formed events.
func FuzzDriverSession(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var bad bool
		s := newSession(New(Config{Logger: quietLogger()}), telemetry.SinkFunc(func(e telemetry.Event) {
			switch v := e.(type) {
			case *telemetry.Numeric:
				if v.Unit == "" || v.Code == 0 {
					bad = true
				}
			case *telemetry.Wave:
				if v.Rate <= 0 || v.Unit == "" {
					bad = true
				}
			}
		}))
		s.feed(data, time.Now())
		if bad {
			t.Fatal("malformed event")
		}
	})
}
