package jt808

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func TestEscapeBothFlagBytes(t *testing.T) {
	raw := []byte{0x30, 0x7E, 0x08, 0x7D, 0x55}
	esc := Escape(nil, raw)
	if want := []byte{0x30, 0x7D, 0x02, 0x08, 0x7D, 0x01, 0x55}; !bytes.Equal(esc, want) {
		t.Fatalf("escaped % x, want % x", esc, want)
	}
	back, err := Unescape(esc)
	if err != nil || !bytes.Equal(back, raw) {
		t.Fatalf("unescaped % x, %v", back, err)
	}
	for _, bad := range [][]byte{{0x7D}, {0x7D, 0x03}, {0x01, 0x7E}} {
		if _, err := Unescape(bad); !errors.Is(err, ErrEscape) {
			t.Errorf("Unescape(% x) = %v, want ErrEscape", bad, err)
		}
	}
}

func TestEncodeDecodeBothEditions(t *testing.T) {
	for _, m := range []Message{
		{Header: Header{ID: IDLocation, Edition: Edition2013, Phone: "13800138000", Serial: 0x7E7D}, Body: []byte{0x7E, 0x7D, 1}},
		{Header: Header{ID: IDLocation, Edition: Edition2019, Version: 1, Phone: "13800138000", Serial: 9}, Body: bytes.Repeat([]byte{0x7E}, MaxBody)},
		{Header: Header{ID: IDBatchLocation, Edition: Edition2019, Version: 1, Phone: "1", Serial: 9, Packets: 3, Packet: 2}, Body: []byte{1, 2}},
	} {
		f, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.IndexByte(f[1:len(f)-1], flagByte) >= 0 {
			t.Fatalf("flag byte inside frame % x", f)
		}
		got, err := Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		want := m
		want.Phone = leftPad(m.Phone, phoneDigits(m.Edition))
		if got.Header != want.Header || !bytes.Equal(got.Body, m.Body) {
			t.Fatalf("decoded %+v, want %+v", got.Header, want.Header)
		}
	}
	if _, err := Encode(Message{Header: Header{Edition: Edition2013, Phone: "1234567890123"}}); !errors.Is(err, ErrPhone) {
		t.Errorf("13-digit phone in 2013: %v", err)
	}
	if _, err := Encode(Message{Body: make([]byte, MaxBody+1)}); err == nil {
		t.Error("oversized body encoded")
	}
}

func leftPad(s string, n int) string {
	for len(s) < n {
		s = "0" + s
	}
	return s
}

func TestDecodeRejectsDamage(t *testing.T) {
	good, _ := Encode(Message{Header: Header{ID: IDHeartbeat, Edition: Edition2013, Phone: "13800138000", Serial: 1}})
	flip := append([]byte(nil), good...)
	flip[3] ^= 0x01
	if _, err := Decode(flip); !errors.Is(err, ErrCheckCode) {
		t.Errorf("flipped bit: %v", err)
	}
	if _, err := Decode(good[:6]); !errors.Is(err, ErrShort) {
		t.Errorf("truncated: %v", err)
	}
	// Announce a 5-byte body that is not there (check code fixed up).
	raw, _ := Unescape(good[1 : len(good)-1])
	raw = raw[:len(raw)-1]
	raw[3] = 5
	raw = append(raw, CheckCode(raw))
	if _, err := Decode(append(append([]byte{flagByte}, Escape(nil, raw)...), flagByte)); !errors.Is(err, ErrShort) {
		t.Errorf("wrong length: %v", err)
	}
}

func TestFrameReaderSkipsNoiseAndBoundsLength(t *testing.T) {
	a, _ := Encode(Message{Header: Header{ID: IDHeartbeat, Edition: Edition2013, Phone: "1", Serial: 1}})
	b, _ := Encode(Message{Header: Header{ID: IDHeartbeat, Edition: Edition2013, Phone: "1", Serial: 2}})
	var stream bytes.Buffer
	stream.WriteString("garbage")
	stream.Write(a)
	stream.WriteByte(flagByte)
	stream.Write(bytes.Repeat([]byte{1}, MaxFrame+10)) // a runaway frame
	stream.Write(b)
	stream.Write(b[:5]) // truncated at the end
	fr := NewFrameReader(&stream)
	var serials []uint16
	for {
		f, err := fr.Next()
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("end: %v", err)
			}
			break
		}
		if m, err := Decode(f); err == nil {
			serials = append(serials, m.Serial)
		}
	}
	if len(serials) != 2 || serials[0] != 1 || serials[1] != 2 {
		t.Errorf("serials %v, want [1 2]", serials)
	}
	// Skipped: the noise, and the runaway frame's last 9 bytes after it was dropped.
	if fr.Skipped != len("garbage")+9 || fr.Dropped != 1 {
		t.Errorf("skipped %d dropped %d", fr.Skipped, fr.Dropped)
	}
}

func TestSplitAndReassemble(t *testing.T) {
	body := make([]byte, 2500)
	for i := range body {
		body[i] = byte(i)
	}
	m := Message{Header: Header{ID: IDBatchLocation, Edition: Edition2019, Version: 1, Phone: "13800138000", Serial: 100}, Body: body}
	parts := Split(m, 0)
	for i := range parts {
		f, _ := Encode(parts[i])
		parts[i], _ = Decode(f)
	}
	if len(parts) != 3 || parts[2].Serial != 102 || parts[2].Packet != 3 || len(parts[2].Body) != 2500-2*MaxBody {
		t.Fatalf("split into %d, last %+v", len(parts), parts[len(parts)-1].Header)
	}
	now := time.Unix(0, 0)
	r := NewReassembler(ReassemblyLimits{})
	for _, p := range []Message{parts[2], parts[0]} {
		if _, done, err := r.Add(p, now); done || err != nil {
			t.Fatalf("done early: %v", err)
		}
	}
	miss := r.Missing()
	if len(miss) != 1 || miss[0].FirstSerial != 100 || len(miss[0].Missing) != 1 || miss[0].Missing[0] != 2 {
		t.Fatalf("missing %+v", miss)
	}
	whole, done, err := r.Add(parts[1], now)
	if !done || err != nil || !bytes.Equal(whole.Body, body) || whole.Serial != 100 || whole.Packets != 0 {
		t.Fatalf("reassembled %v %v len %d", done, err, len(whole.Body))
	}
	// Expiry and limits.
	r.Add(parts[0], now)
	r.Add(parts[0], now.Add(2*time.Minute))
	if r.Expired != 1 {
		t.Errorf("expired %d", r.Expired)
	}
	big := parts[0]
	big.Packets = 1000
	if _, _, err := r.Add(big, now); !errors.Is(err, ErrReassembly) {
		t.Errorf("1000 parts: %v", err)
	}
}

func TestLocationItemsTolerant(t *testing.T) {
	l := Location{Lat: 30.5, Lon: -0.25, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), HasSatellites: true, Satellites: 12}
	b := l.Marshal()
	// An unknown item, an item of a known ID with the wrong length, and an over-long one.
	b = append(b, 0xE0, 3, 1, 2, 3, ItemSignal, 2, 9, 9, 0x31, 200, 1)
	got, err := ParseLocation(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Lat != 30.5 || got.Lon != -0.25 || got.Satellites != 12 || got.Unknown != 2 || !got.Truncated || got.HasSignal {
		t.Errorf("%+v", got)
	}
	if !got.Time.Equal(l.Time) {
		t.Errorf("time %v, want %v", got.Time, l.Time)
	}
}

// FuzzDecode feeds arbitrary bytes to the frame reader and decoder and to every body
// parser: nothing may panic, and whatever decodes must re-encode to a frame that
// decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, e := range loadWorkedExamples(f) {
		f.Add(e.frame)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data))
		for {
			frame, err := fr.Next()
			if err != nil {
				break
			}
			m, err := Decode(frame)
			if err != nil {
				continue
			}
			parseAnyBody(m)
			again, err := Encode(m)
			if err != nil {
				if m.Edition == Edition2019 || len(m.Body) > MaxBody {
					t.Fatalf("decoded message does not re-encode: %v", err)
				}
				continue
			}
			m2, err := Decode(again)
			if err != nil || m2.Header != m.Header || !bytes.Equal(m2.Body, m.Body) {
				t.Fatalf("round trip changed the message: %v", err)
			}
		}
	})
}

func parseAnyBody(m Message) {
	e := m.Edition
	ParseGeneralResponse(m.Body)
	ParseRegister(m.Body, e)
	ParseRegisterResult(m.Body)
	ParseAuthenticate(m.Body, e)
	ParseLocation(m.Body)
	ParseLocationAnswer(m.Body)
	if b, err := ParseBatchLocation(m.Body); err == nil {
		for _, it := range b.Items {
			ParseLocation(it)
		}
	}
	ParseSetParams(m.Body)
	ParseParamsAnswer(m.Body)
	ParseTemporaryTracking(m.Body)
	ParseTextMessage(m.Body, e)
	ParseResendRequest(m.Body, e)
}
