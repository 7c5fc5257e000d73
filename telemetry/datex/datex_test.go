package datex

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func loadRequests(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/ge_requests.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		name, h, ok := strings.Cut(line, "|")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(h), " ", ""))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[strings.TrimSpace(name)] = b
	}
	return out
}

func deframeAll(t *testing.T, wire []byte) (recs [][]byte, bad []*FrameError) {
	t.Helper()
	var d Deframer
	d.Feed(wire, func(r []byte) { recs = append(recs, append([]byte(nil), r...)) },
		func(e *FrameError) { bad = append(bad, e) })
	return recs, bad
}

// TestGERequestFramesByteExact rebuilds the request frames GE's tooling sends and
// compares them byte for byte, so that our checksum, escaping, header and request
// layouts agree with what a monitor has accepted.
func TestGERequestFramesByteExact(t *testing.T) {
	reqs := loadRequests(t)
	ts := func(v uint32) time.Time { return time.Unix(int64(v), 0) }

	start := Record{
		Header:     Header{PlugID: 0xFDE8, Time: ts(0x67070425), MainType: MainPhysiological},
		Subrecords: []Subrecord{{Type: PhRequest, Data: PhdbRequest{RecordType: PhDisplay, Interval: 10, Classes: ClassReqExt3}.Marshal()}},
	}
	rec, err := start.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Frame(rec), reqs["start_displayed_10s"]; !bytes.Equal(got, want) {
		t.Errorf("start displayed:\n got %x\nwant %x", got, want)
	}
	stop := start
	stop.Time = ts(0x67070633)
	stop.Subrecords = []Subrecord{{Type: PhRequest, Data: PhdbRequest{RecordType: PhDisplay, Interval: 0, Classes: ClassReqExt3}.Marshal()}}
	rec, _ = stop.Marshal()
	if got, want := Frame(rec), reqs["stop_displayed"]; !bytes.Equal(got, want) {
		t.Errorf("stop displayed:\n got %x\nwant %x", got, want)
	}

	wreq, err := WaveRequest{Type: WaveStart, Reserved: 5, Waves: []byte{WaveECG1, WaveINVP1, WavePleth, WaveCO2}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	waves := Record{Header: Header{PlugID: 0xFDE8, Time: ts(0x67082758), MainType: MainWave},
		Subrecords: []Subrecord{{Type: WaveCmd, Data: wreq}}}
	rec, _ = waves.Marshal()
	// The published constant carries two bytes of zero padding beyond r_len (88); zeros
	// do not change the checksum, so the frame must equal it without them.
	want := reqs["start_waves_ecg1_invp1_pleth_co2"]
	want = append(append([]byte(nil), want[:1+88]...), want[len(want)-2:]...)
	if got := Frame(rec); !bytes.Equal(got, want) {
		t.Errorf("start waves:\n got %x\nwant %x", got, want)
	}

	// And the decoder reads what the tools send.
	recs, bad := deframeAll(t, reqs["start_waves_ecg1_invp1_pleth_co2"])
	if len(bad) != 0 || len(recs) != 1 {
		t.Fatalf("start waves: %d records, %v", len(recs), bad)
	}
	r, err := ParseRecord(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseWaveRequest(r.Subrecords[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if q.Type != WaveStart || !bytes.Equal(q.Waves, []byte{WaveECG1, WaveINVP1, WavePleth, WaveCO2}) {
		t.Errorf("wave request = %+v", q)
	}
	// The published stop constant is 6 bytes shorter than its own r_len: its checksum is
	// right (the missing bytes are zeros) but the record must be refused, not misread.
	recs, bad = deframeAll(t, reqs["stop_waves"])
	if len(bad) != 0 || len(recs) != 1 {
		t.Fatalf("stop waves: %d records, %v", len(recs), bad)
	}
	if _, err := ParseRecord(recs[0]); err == nil || !strings.Contains(err.Error(), "r_len 88") {
		t.Errorf("truncated stop request: err = %v", err)
	}
}

// TestCaptureFromS5 decodes a raw serial capture of a CARESCAPE/S5 monitor (21 frames of
// displayed values, all four classes) and checks values read off the bytes by hand.
func TestCaptureFromS5(t *testing.T) {
	wire, err := os.ReadFile("testdata/s5_phdb_capture.raw")
	if err != nil {
		t.Fatal(err)
	}
	recs, bad := deframeAll(t, wire)
	if len(bad) != 0 {
		t.Fatalf("dropped frames in a clean capture: %v", bad)
	}
	if len(recs) != 21 {
		t.Fatalf("got %d records, want 21", len(recs))
	}
	for i, b := range recs {
		r, err := ParseRecord(b)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if r.Len != 1152 || r.MainType != MainPhysiological || len(r.Subrecords) != 4 || r.Number != byte(178+i) || r.DRILevel != Level2015 {
			t.Fatalf("record %d header %+v with %d subrecords", i, r.Header, len(r.Subrecords))
		}
		for c, s := range r.Subrecords {
			if s.Type != PhDisplay || int(s.Offset) != c*PhdbLen {
				t.Fatalf("record %d subrecord %d: type %d offset %d", i, c, s.Type, s.Offset)
			}
			p, err := ParsePhdb(s.Data)
			if err != nil {
				t.Fatal(err)
			}
			if p.Class != byte(c) || p.Subtype != PhDisplay || p.DRILevel != Level2015 {
				t.Fatalf("record %d subrecord %d: class %d subtype %d level %d", i, c, p.Class, p.Subtype, p.DRILevel)
			}
			// What we decode must encode back to the same bytes.
			if back := p.Marshal(); !bytes.Equal(back, s.Data) {
				t.Fatalf("record %d subrecord %d does not round-trip", i, c)
			}
		}
		// The whole record too, frame included.
		back, err := r.Marshal()
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("record %d does not round-trip: %v", i, err)
		}
	}
	// First record, read by hand from the hex dump: time 0x63a094c9, ECG group status
	// 0x4b label 0x1200 with HR "no data", the ECG module present.
	r, _ := ParseRecord(recs[0])
	if want := time.Unix(0x63a094c9, 0).UTC(); !r.Time.Equal(want) {
		t.Errorf("r_time %v, want %v", r.Time, want)
	}
	p, _ := ParsePhdb(r.Subrecords[0].Data)
	b := p.Basic
	if b.ECG.Status != 0x4b || b.ECG.Label != 0x1200 || b.ECG.HR != NoData || !b.ECG.Present() {
		t.Errorf("ECG group %+v", b.ECG)
	}
	if Valid(b.ECG.HR) || InvalidReason(b.ECG.HR) != "no data" {
		t.Errorf("HR %d should be 'no data'", b.ECG.HR)
	}
}

func TestEscapingRoundTrip(t *testing.T) {
	rec := make([]byte, 60)
	rec[0] = 60
	for i := 2; i < len(rec); i++ {
		rec[i] = []byte{0x7E, 0x7D, 0x5E, 0x5D, 0x20}[i%5]
	}
	rec[16+2] = endOfList
	wire := Frame(rec)
	if bytes.Count(wire, []byte{0x7E}) != 2 {
		t.Fatalf("a flag byte leaked into the frame body: %x", wire)
	}
	recs, bad := deframeAll(t, wire)
	if len(bad) != 0 || len(recs) != 1 || !bytes.Equal(recs[0], rec) {
		t.Fatalf("round trip failed: %x %v", recs, bad)
	}
}

func TestDeframerDropsDamagedFrames(t *testing.T) {
	good := func(n byte) []byte {
		r := Record{Header: Header{Number: n, MainType: MainAlarm}, Subrecords: []Subrecord{{Type: AlarmRequest, Data: MarshalAlarmRequest(AlarmEnterDiffMode)}}}
		b, _ := r.Marshal()
		return Frame(b)
	}
	var wire []byte
	wire = append(wire, 0x00, 0x13, 0x37) // noise before any frame
	wire = append(wire, good(1)...)
	corrupt := good(2)
	corrupt[20] ^= 0x01 // bit error: checksum fails
	wire = append(wire, corrupt...)
	wire = append(wire, 0x7E, 0x01, 0x02, 0x7E) // a runt
	wire = append(wire, good(3)...)

	var got []byte
	var reasons []string
	var d Deframer
	for _, b := range wire { // byte by byte, as a slow port delivers
		d.Feed([]byte{b}, func(r []byte) { got = append(got, r[2]) }, func(e *FrameError) { reasons = append(reasons, e.Reason) })
	}
	if !bytes.Equal(got, []byte{1, 3}) {
		t.Errorf("records %v, want 1 and 3", got)
	}
	if strings.Join(reasons, ",") != "checksum,too short" {
		t.Errorf("drops %v", reasons)
	}
	if d.Skipped != 3 {
		t.Errorf("skipped %d noise bytes, want 3", d.Skipped)
	}
}

func TestReaderReportsFrameErrorsAndEOF(t *testing.T) {
	r := Record{Header: Header{MainType: MainPhysiological}, Subrecords: []Subrecord{{Type: PhRequest, Data: PhdbRequest{RecordType: PhDisplay, Interval: 5}.Marshal()}}}
	b, _ := r.Marshal()
	f := Frame(b)
	bad := append([]byte(nil), f...)
	bad[len(bad)-2] ^= 0xFF
	rd := NewReader(bytes.NewReader(append(bad, f...)))
	if _, err := rd.ReadRecord(); !IsFrameError(err) {
		t.Fatalf("first read: %v, want a frame error", err)
	}
	got, err := rd.ReadRecord()
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("second read: %x %v", got, err)
	}
	if _, err := rd.ReadRecord(); !errors.Is(err, io.EOF) {
		t.Fatalf("third read: %v, want EOF", err)
	}
}

func TestWaveAndAlarmRoundTrip(t *testing.T) {
	w := WaveSubrecord{Type: WaveECG1, Samples: []int16{0, 100, -100, 32000, -32000}}
	got, err := ParseWave(WaveECG1, w.Marshal())
	if err != nil || len(got.Samples) != 5 || got.Samples[3] != 32000 {
		t.Fatalf("wave %+v %v", got, err)
	}
	if _, err := ParseWave(WaveECG1, []byte{10, 0, 0, 0, 0, 0, 1, 2}); err == nil {
		t.Error("a wave claiming 10 samples in 1 was accepted")
	}
	m := AlarmMessage{SoundOn: true}
	m.Alarms[0] = DisplayedAlarm{Text: "HR HIGH", Priority: AlarmHigh, TextChanged: true}
	m.Alarms[1] = DisplayedAlarm{Text: "SpO2 probe off", Priority: AlarmMedium}
	back, err := ParseAlarm(m.Marshal())
	if err != nil || back != m {
		t.Fatalf("alarm %+v %v", back, err)
	}
}
