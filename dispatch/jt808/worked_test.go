package jt808

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

type workedExample struct {
	name    string
	edition Edition
	frame   []byte
}

func loadWorkedExamples(t testing.TB) map[string]workedExample {
	t.Helper()
	f, err := os.Open("testdata/worked_examples.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]workedExample{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<16)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		ed, _ := strconv.Atoi(fs[1])
		b, err := hex.DecodeString(fs[2])
		if len(fs) != 3 || err != nil {
			t.Fatalf("worked example %q: %v", line, err)
		}
		out[fs[0]] = workedExample{fs[0], Edition(ed), b}
	}
	return out
}

// TestWorkedExamplesRoundTrip decodes every public example, checks the header the
// source documents, and re-encodes it: the bytes must be identical.
func TestWorkedExamplesRoundTrip(t *testing.T) {
	ex := loadWorkedExamples(t)
	if len(ex) < 16 {
		t.Fatalf("only %d worked examples loaded", len(ex))
	}
	for _, e := range ex {
		m, err := Decode(e.frame)
		if err != nil {
			t.Errorf("%s: decode: %v", e.name, err)
			continue
		}
		if m.Edition != e.edition {
			t.Errorf("%s: edition %v, want %v", e.name, m.Edition, e.edition)
		}
		again, err := Encode(m)
		if err != nil {
			t.Errorf("%s: encode: %v", e.name, err)
			continue
		}
		if !bytes.Equal(again, e.frame) {
			t.Errorf("%s: re-encoded\n%x\nwant\n%x", e.name, again, e.frame)
		}
	}
}

func decodeExample(t *testing.T, ex map[string]workedExample, name string) Message {
	t.Helper()
	m, err := Decode(ex[name].frame)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

func TestWorkedExample2013Location(t *testing.T) {
	m := decodeExample(t, loadWorkedExamples(t), "location-2013")
	if m.ID != IDLocation || m.Phone != "030300000228" || m.Serial != 0x42 {
		t.Fatalf("header %+v", m.Header)
	}
	l, err := ParseLocation(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2018, 9, 21, 16, 14, 57, 0, ChinaTime)
	if l.Lat != 23.169716 || l.Lon != 113.450696 || l.Altitude != 0 || l.Course != 5 || !l.Time.Equal(want) {
		t.Errorf("location %+v", l)
	}
	if l.Status != StatusACC|StatusFixed || !l.HasSignal || l.Signal != 16 || !l.HasSatellites || l.Satellites != 10 || !l.HasMileage || l.MileageKm != 114.4 {
		t.Errorf("status and items %+v", l)
	}
	// The vendor's item 0xEB (22 bytes) is skipped and counted, not an error.
	if l.Unknown != 1 || len(l.Other[0xEB]) != 22 || l.Truncated {
		t.Errorf("unknown items %d %v", l.Unknown, l.Other)
	}
}

// TestRealFrameWithWrongCheckCode: a frame from a real terminal in Traccar's tests
// (HuabaoProtocolDecoderTest.java; Traccar does not verify the check code) whose check
// code does not match its bytes. We refuse it as the standard says.
func TestRealFrameWithWrongCheckCode(t *testing.T) {
	b, _ := hex.DecodeString("7E02000032013511221122000700000000000C000301578CC006CA3A5C00470000000014072317201501040000000030011631010BD07E")
	if _, err := Decode(b); !errors.Is(err, ErrCheckCode) {
		t.Fatalf("decode: %v, want ErrCheckCode", err)
	}
}

func TestWorkedExample2019Location(t *testing.T) {
	m := decodeExample(t, loadWorkedExamples(t), "location-2019")
	if m.Edition != Edition2019 || m.Version != 1 || m.Phone != "00000000013912344329" || m.Serial != 0 {
		t.Fatalf("header %+v", m.Header)
	}
	l, err := ParseLocation(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	// The source's JSON: alarm 111, status 22, lat 31234567, lon 121987654, altitude
	// 123, speed 66 (0.1 km/h), direction 3, items {1: 12, 2: 100}.
	// Status 22 sets bit 2, "south latitude", so the standard makes it negative; the
	// source's JSON shows the raw unsigned field.
	if l.Alarm != 111 || l.Status != 22 || l.Lat != -31.234567 || l.Lon != 121.987654 || l.Altitude != 123 || l.SpeedKmh != 6.6 || l.Course != 3 {
		t.Errorf("location %+v", l)
	}
	if !l.HasMileage || l.MileageKm != 1.2 || l.Unknown != 1 || !bytes.Equal(l.Other[0x02], []byte{0, 100}) {
		t.Errorf("items: mileage %v %v, unknown %d %v", l.HasMileage, l.MileageKm, l.Unknown, l.Other)
	}
	if !l.Time.Equal(time.Date(2025, 1, 29, 22, 33, 44, 0, ChinaTime)) {
		t.Errorf("time %v", l.Time)
	}
}

func TestWorkedExampleBatches(t *testing.T) {
	ex := loadWorkedExamples(t)
	b19, err := ParseBatchLocation(decodeExample(t, ex, "batch-2019").Body)
	if err != nil || len(b19.Items) != 2 || b19.Type != BatchNormal {
		t.Fatalf("2019 batch %+v: %v", b19, err)
	}
	second, err := ParseLocation(b19.Items[1])
	if err != nil || second.Lat != 31.000563 || second.Lon != 121.451373 || second.Altitude != 777 || second.SpeedKmh != 6.7 || second.Course != 90 {
		t.Errorf("2019 batch item 2 %+v: %v", second, err)
	}
	b13, err := ParseBatchLocation(decodeExample(t, ex, "batch-2013").Body)
	if err != nil || len(b13.Items) != 8 || b13.Type != BatchBlindZone {
		t.Fatalf("2013 batch: %d items, type %d: %v", len(b13.Items), b13.Type, err)
	}
	var last time.Time
	for i, it := range b13.Items {
		l, err := ParseLocation(it)
		if err != nil || l.Time.Before(last) {
			t.Fatalf("2013 batch item %d %+v: %v", i, l, err)
		}
		last = l.Time
	}
}

func TestWorkedExamplesPlatformMessages(t *testing.T) {
	ex := loadWorkedExamples(t)
	g, err := ParseGeneralResponse(decodeExample(t, ex, "platform-response-2019").Body)
	if err != nil || g != (GeneralResponse{Serial: 111, ID: IDLocation, Result: ResultOK}) {
		t.Errorf("0x8001 %+v: %v", g, err)
	}
	for name, ed := range map[string]Edition{"resend-2013": Edition2013, "resend-2019": Edition2019} {
		m := decodeExample(t, ex, name)
		q, err := ParseResendRequest(m.Body, ed)
		if err != nil || q.Serial != 111 || len(q.IDs) != 3 || q.IDs[0] != 2 || q.IDs[2] != 4 {
			t.Errorf("%s: %+v: %v", name, q, err)
		}
		if got := q.Marshal(ed); !bytes.Equal(got, m.Body) {
			t.Errorf("%s: body re-marshalled %x, want %x", name, got, m.Body)
		}
	}
	rr, err := ParseRegisterResult(decodeExample(t, ex, "register-result-2019").Body)
	if err != nil || rr.Serial != 111 || rr.Result != 0 || rr.AuthCode != "ok..ok..ok" {
		t.Errorf("0x8100 %+v: %v", rr, err)
	}
	tt, err := ParseTemporaryTracking(decodeExample(t, ex, "tracking-2019").Body)
	if err != nil || tt.Interval != 30 || tt.Validity != 1000 {
		t.Errorf("0x8202 %+v: %v", tt, err)
	}
	for name, ed := range map[string]Edition{"text-2013": Edition2013, "text-2019": Edition2019} {
		m := decodeExample(t, ex, name)
		tm, err := ParseTextMessage(m.Body, ed)
		if err != nil || tm.Flags != 1 || tm.Text != "HelloWorld 汉字 GBK 编码" {
			t.Errorf("%s: %+v: %v", name, tm, err)
		}
		if got := tm.Marshal(ed); !bytes.Equal(got, m.Body) {
			t.Errorf("%s: body re-marshalled %x, want %x", name, got, m.Body)
		}
	}
}

func TestWorkedExamplesTerminalMessages(t *testing.T) {
	ex := loadWorkedExamples(t)
	a := decodeExample(t, ex, "authenticate-2013")
	auth, err := ParseAuthenticate(a.Body, Edition2013)
	if err != nil || auth.Code != "authentication" {
		t.Errorf("0x0102 %+v: %v", auth, err)
	}
	r := decodeExample(t, ex, "register-2013")
	reg, err := ParseRegister(r.Body, Edition2013)
	if err != nil || reg.Model != "HB-R03GBD" || reg.TerminalID != "2366104" || reg.PlateColor != 2 || reg.Plate != "苏BA6860" {
		t.Errorf("0x0100 %+v: %v", reg, err)
	}
	if got := reg.Marshal(Edition2013); !bytes.Equal(got, r.Body) {
		t.Errorf("0x0100 re-marshalled\n%x\nwant\n%x", got, r.Body)
	}
	hb := decodeExample(t, ex, "heartbeat-2013")
	if hb.ID != IDHeartbeat || len(hb.Body) != 0 || hb.Phone != "043048325465" || hb.Serial != 0xb7 {
		t.Errorf("heartbeat %+v", hb.Header)
	}
}
