package h264

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"testing"

	"github.com/pion/rtp"
)

// readCapture reads RTP packets saved as they arrived from ffmpeg's RTP muxer, each
// after its length as two big-endian bytes (see testdata/README.md).
func readCapture(t testing.TB, path string) []*rtp.Packet {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := parseCapture(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pkts
}

func parseCapture(data []byte) ([]*rtp.Packet, error) {
	var pkts []*rtp.Packet
	for len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		if n > len(data) {
			n = len(data)
		}
		p := &rtp.Packet{}
		if err := p.Unmarshal(data[:n]); err != nil {
			return pkts, err
		}
		pkts = append(pkts, p)
		data = data[n:]
	}
	return pkts, nil
}

// depacketize pushes pkts and returns copies of the access units emitted.
func depacketize(t testing.TB, d *Depacketizer, pkts []*rtp.Packet) []AccessUnit {
	t.Helper()
	var aus []AccessUnit
	for _, p := range pkts {
		_ = d.Push(p, func(au AccessUnit) {
			au.Data = bytes.Clone(au.Data)
			aus = append(aus, au)
		})
	}
	return aus
}

const captureFile = "testdata/ffmpeg_high_bframes_4slices.rtp"

// TestDepacketizerMatchesTheEncodedFile replays what ffmpeg's RTP muxer sent for a
// High-profile file with four slices a picture and B frames (STAP-A, FU-A and single
// NAL unit packets) and expects the very access units of the file back.
func TestDepacketizerMatchesTheEncodedFile(t *testing.T) {
	pkts := readCapture(t, captureFile)
	types := map[NALType]int{}
	for _, p := range pkts {
		types[TypeOf(p.Payload)]++
	}
	if types[NALSTAPA] == 0 || types[NALFUA] == 0 || types[NALSlice] == 0 {
		t.Fatalf("capture lacks a packet kind the test needs: %v", types)
	}
	d := NewDepacketizer()
	got := depacketize(t, d, pkts)
	data, err := os.ReadFile("testdata/high_bframes_4slices.h264")
	if err != nil {
		t.Fatal(err)
	}
	want := SplitAccessUnits(data, 3000)
	if len(got) != len(want) {
		t.Fatalf("%d access units, want %d (stats %+v)", len(got), len(want), d.Stats())
	}
	for i := range want {
		if !bytes.Equal(got[i].Data, want[i].Data) || got[i].IDR != want[i].IDR || got[i].BFrame != want[i].BFrame {
			t.Fatalf("access unit %d differs: got %d bytes IDR=%v B=%v, want %d bytes IDR=%v B=%v",
				i, len(got[i].Data), got[i].IDR, got[i].BFrame, len(want[i].Data), want[i].IDR, want[i].BFrame)
		}
	}
	st := d.Stats()
	if st.Lost != 0 || st.Dropped != 0 || st.Keyframes != 2 || st.BFrames == 0 || d.NeedKeyframe() {
		t.Errorf("stats %+v, NeedKeyframe %v", st, d.NeedKeyframe())
	}
}

// TestDepacketizerDropsUntilIDRAfterLoss loses one packet of the first GOP (a later
// fragment of the IDR picture's FU-A, or a P slice) and expects that picture and the
// rest of the GOP dropped, the consumer told to wait for an IDR meanwhile, and the
// second GOP whole.
func TestDepacketizerDropsUntilIDRAfterLoss(t *testing.T) {
	pkts := readCapture(t, captureFile)
	cases := map[string]func(p *rtp.Packet) bool{
		"FU-A fragment of the IDR": func(p *rtp.Packet) bool {
			return TypeOf(p.Payload) == NALFUA && p.Payload[1]&0x80 == 0 && p.Payload[1]&nalTypeMask == uint8(NALIDR)
		},
		"P slice": func(p *rtp.Packet) bool {
			h, err := ParseSliceHeader(p.Payload)
			return err == nil && h.Type == SliceP
		},
	}
	for name, pick := range cases {
		t.Run(name, func(t *testing.T) {
			lose := -1
			for i, p := range pkts {
				if pick(p) {
					lose = i
					break
				}
			}
			if lose < 0 {
				t.Fatal("no such packet in the capture")
			}
			lostTS := pkts[lose].Timestamp
			d := NewDepacketizer()
			before := depacketize(t, d, pkts[:lose])
			var after []AccessUnit
			needDuringGap := false
			for _, p := range pkts[lose+1:] {
				_ = d.Push(p, func(au AccessUnit) { after = append(after, au) })
				if after == nil && d.NeedKeyframe() {
					needDuringGap = true
				}
			}
			for _, au := range append(before, after...) {
				if au.Timestamp == lostTS {
					t.Fatal("the picture that lost a packet was emitted")
				}
			}
			if len(after) != 30 || !after[0].IDR {
				t.Fatalf("%d pictures after the loss at packet %d, want the 30 of the second GOP, IDR first; stats %+v", len(after), lose, d.Stats())
			}
			if !needDuringGap {
				t.Error("NeedKeyframe was not reported between the loss and the next IDR")
			}
			st := d.Stats()
			if st.Lost != 1 || len(before)+len(after)+int(st.Dropped) != 60 {
				t.Errorf("stats %+v with %d before and %d after the loss; want 1 lost and 60 pictures in all", st, len(before), len(after))
			}
		})
	}
}

func packet(seq uint16, ts uint32, marker bool, payload ...byte) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: payload}
}

var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80}
	testPPS = []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}
	// An IDR slice and a P slice header with first_mb_in_slice 0 (ue "1"), slice_type
	// 7 (I) or 5 (P), pic_parameter_set_id 0.
	testIDR = []byte{0x65, 0x88, 0x84, 0x00, 0x33}
	testP   = []byte{0x41, 0x9a, 0x02, 0x11}
)

func annexB(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(append(b, startCode...), n...)
	}
	return b
}

func stapA(nalus ...[]byte) []byte {
	b := []byte{0x78}
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
		b = append(b, n...)
	}
	return b
}

// TestDepacketizerPutsParameterSetsBeforeIDR sends the SPS and PPS once in a STAP-A
// and then IDR pictures without them, with no marker bits (a picture ends when the
// timestamp changes), and expects each IDR access unit to carry them.
func TestDepacketizerPutsParameterSetsBeforeIDR(t *testing.T) {
	d := NewDepacketizer()
	got := depacketize(t, d, []*rtp.Packet{
		packet(1, 0, false, stapA(testSPS, testPPS)...),
		packet(2, 0, false, testIDR...),
		packet(3, 3000, false, testP...),
		packet(4, 6000, false, testIDR...),
		packet(5, 9000, true, testP...),
	})
	want := []struct {
		data []byte
		idr  bool
	}{
		{annexB(testSPS, testPPS, testIDR), true},
		{annexB(testP), false},
		{annexB(testSPS, testPPS, testIDR), true},
		{annexB(testP), false},
	}
	if len(got) != len(want) {
		t.Fatalf("%d access units, want %d", len(got), len(want))
	}
	for i, w := range want {
		if !bytes.Equal(got[i].Data, w.data) || got[i].IDR != w.idr {
			t.Errorf("access unit %d = %x IDR=%v, want %x IDR=%v", i, got[i].Data, got[i].IDR, w.data, w.idr)
		}
	}
}

func TestDepacketizerWithoutParameterSetsWaits(t *testing.T) {
	d := NewDepacketizer()
	got := depacketize(t, d, []*rtp.Packet{
		packet(1, 0, true, testIDR...),
		packet(2, 3000, true, testP...),
	})
	if len(got) != 0 || d.Stats().NoParameterSets != 1 || !d.NeedKeyframe() {
		t.Fatalf("emitted %d, stats %+v: an IDR without any SPS/PPS must wait", len(got), d.Stats())
	}
	d.SetParameterSets(testSPS, testPPS) // as from the SDP's sprop-parameter-sets
	got = depacketize(t, d, []*rtp.Packet{packet(3, 6000, true, testIDR...)})
	if len(got) != 1 || !bytes.Equal(got[0].Data, annexB(testSPS, testPPS, testIDR)) {
		t.Fatalf("after SetParameterSets got %d access units", len(got))
	}
}

func TestDepacketizerSkipsInterleavedModeAndBadPackets(t *testing.T) {
	d := NewDepacketizer()
	d.SetParameterSets(testSPS, testPPS)
	got := depacketize(t, d, []*rtp.Packet{
		packet(1, 0, true, testIDR...),
		packet(2, 3000, true, 0x79, 0, 1, 0, 2, 0x41, 0x9a), // STAP-B
		packet(3, 6000, true, 0x78, 0, 9, 0x41),             // STAP-A longer than the packet
		packet(4, 9000, true, 0x7c, 0x41),                   // FU-A too short
		packet(5, 12000, true, 0x7c, 0xc1, 0x9a),            // FU-A start and end
		packet(6, 15000, false, 0x7c, 0x01, 0x9a),           // FU-A middle without a start
		packet(7, 15000, true, 0x7c, 0x41, 0x02),            // and its end
		packet(8, 18000, true, testIDR...),
	})
	st := d.Stats()
	if len(got) != 2 || !got[0].IDR || !got[1].IDR || st.Unsupported != 1 || st.Malformed != 3 || st.Dropped != 5 {
		t.Fatalf("emitted %d, stats %+v", len(got), st)
	}
}

func TestDepacketizerSequenceNumbers(t *testing.T) {
	d := NewDepacketizer()
	d.SetParameterSets(testSPS, testPPS)
	got := depacketize(t, d, []*rtp.Packet{
		packet(65535, 0, true, testIDR...),
		packet(0, 3000, true, testP...),     // wraps: no loss
		packet(0, 3000, true, testP...),     // duplicate: dropped
		packet(40000, 6000, true, testP...), // far back: the camera restarted, wait for IDR
		packet(40001, 9000, true, testIDR...),
	})
	st := d.Stats()
	if len(got) != 3 || !got[2].IDR || st.Lost != 0 || st.Dropped != 1 {
		t.Fatalf("emitted %d, stats %+v", len(got), st)
	}
}

// TestDepacketizerBounds sends a picture of more NAL units than allowed, then one
// over the size allowed, and expects both dropped and the next IDR emitted.
func TestDepacketizerBounds(t *testing.T) {
	d := NewDepacketizer()
	d.SetParameterSets(testSPS, testPPS)
	var pkts []*rtp.Packet
	seq := uint16(1)
	for range MaxNALUsPerAccessUnit + 1 {
		pkts = append(pkts, packet(seq, 0, false, testP...))
		seq++
	}
	pkts = append(pkts, packet(seq, 0, true, testP...))
	seq++
	big := make([]byte, 60000)
	big[0] = 0x41
	for range MaxAccessUnitSize/len(big) + 1 {
		pkts = append(pkts, packet(seq, 3000, false, big...))
		seq++
	}
	pkts = append(pkts, packet(seq, 3000, true, testP...), packet(seq+1, 6000, true, testIDR...))
	got := depacketize(t, d, pkts)
	if len(got) != 1 || !got[0].IDR || d.Stats().Dropped != 2 {
		t.Fatalf("emitted %d, stats %+v; want both oversized pictures dropped and the IDR out", len(got), d.Stats())
	}
}

// secondIDR returns the index of the first packet of the capture's second IDR
// picture (its timestamp's first packet) and that timestamp.
func secondIDR(t *testing.T, pkts []*rtp.Packet) (int, uint32) {
	t.Helper()
	var idrTS []uint32
	for _, p := range pkts {
		if h := p.Payload; (TypeOf(h) == NALIDR || (TypeOf(h) == NALFUA && len(h) > 1 && NALType(h[1]&nalTypeMask) == NALIDR)) &&
			(len(idrTS) == 0 || idrTS[len(idrTS)-1] != p.Timestamp) {
			idrTS = append(idrTS, p.Timestamp)
		}
	}
	if len(idrTS) < 2 {
		t.Fatal("capture has fewer than two IDR pictures")
	}
	for i, p := range pkts {
		if p.Timestamp == idrTS[1] {
			return i, idrTS[1]
		}
	}
	panic("unreachable")
}

// TestDepacketizerLosesWholePictureBeforeIDR loses every packet of the picture just
// before the second IDR: that picture is gone, but the IDR after it is whole and must
// be emitted, with its GOP.
func TestDepacketizerLosesWholePictureBeforeIDR(t *testing.T) {
	pkts := readCapture(t, captureFile)
	first, _ := secondIDR(t, pkts)
	lostTS := pkts[first-1].Timestamp
	var kept []*rtp.Packet
	for _, p := range pkts {
		if p.Timestamp != lostTS {
			kept = append(kept, p)
		}
	}
	d := NewDepacketizer()
	got := depacketize(t, d, kept)
	if len(got) != 59 || !got[29].IDR {
		t.Fatalf("%d pictures (stats %+v), want the 59 not lost, the second IDR at 29", len(got), d.Stats())
	}
}

// TestDepacketizerLosesStartOfIDR loses the packets of the second IDR picture's first
// slice: the IDR picture lacks its start and must be dropped, and with it its GOP.
func TestDepacketizerLosesStartOfIDR(t *testing.T) {
	pkts := readCapture(t, captureFile)
	first, ts := secondIDR(t, pkts)
	start := first
	for TypeOf(pkts[start].Payload) != NALIDR && TypeOf(pkts[start].Payload) != NALFUA {
		start++ // past the SEI, SPS and PPS
	}
	end := start
	if TypeOf(pkts[start].Payload) == NALFUA {
		for pkts[end].Payload[1]&0x40 == 0 { // to the FU-A's end fragment
			end++
		}
	}
	if pkts[end].Timestamp != ts {
		t.Fatal("the first slice of the second IDR is not where expected")
	}
	kept := append(slices.Clone(pkts[:start]), pkts[end+1:]...)
	d := NewDepacketizer()
	got := depacketize(t, d, kept)
	for _, au := range got {
		if au.Timestamp == ts {
			t.Fatal("the IDR picture without its first slice was emitted")
		}
	}
	if len(got) != 30 {
		t.Fatalf("%d pictures (stats %+v), want only the first GOP's 30", len(got), d.Stats())
	}
}
