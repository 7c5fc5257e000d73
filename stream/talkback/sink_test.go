package talkback

import (
	"context"
	"encoding/binary"
	"math"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lifeline/internal/wait"
)

// tone returns n packets of 20 ms of a 440 Hz tone at amplitude amp, in µ-law.
func tone(n int, amp float64) []*rtp.Packet {
	var out []*rtp.Packet
	for i := range n {
		pcm := make([]int16, 160)
		for k := range pcm {
			pcm[k] = int16(amp * math.Sin(2*math.Pi*440*float64(i*160+k)/8000))
		}
		out = append(out, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(100 + i), Timestamp: uint32(i * 160), SSRC: 7}, Payload: EncodeULaw(nil, pcm)})
	}
	return out
}

func rms(pcm []int16) float64 {
	var sum float64
	for _, v := range pcm {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(max(len(pcm), 1)))
}

// TestCommandSinkPlaysThePCM: the command gets the voice as 16-bit PCM, every sample
// of it once and in order (a duplicate packet is dropped), with the tone's energy.
func TestCommandSinkPlaysThePCM(t *testing.T) {
	out := filepath.Join(t.TempDir(), "heard.pcm")
	s, err := Open("tee "+out, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	pkts := tone(50, 10000)
	for i, p := range pkts {
		s.Write(p)
		if i == 10 {
			s.Write(pkts[5]) // a late duplicate
		}
	}
	wait.For(t, 5*time.Second, "a second of voice in the sink", func() bool {
		fi, err := os.Stat(out)
		return err == nil && fi.Size() == 50*160*2
	})
	cancel()
	<-done
	raw, _ := os.ReadFile(out)
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	if r := rms(pcm); r < 6500 || r > 7600 { // a sine of amplitude 10000 has RMS 7071
		t.Fatalf("RMS of what the command got: %.0f, want about 7071", r)
	}
	if st := s.Status(); st.Packets != 50 || st.Dropped != 1 {
		t.Fatalf("status %+v, want 50 packets and the duplicate dropped", st)
	}
}

// TestRTPSinkForwardsToTheIntercom: the packets reach the intercom's port as RTP,
// payload type 0, unchanged.
func TestRTPSinkForwardsToTheIntercom(t *testing.T) {
	intercom, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer intercom.Close()
	s, err := Open("rtp://"+intercom.LocalAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	pkts := tone(5, 8000)
	for _, p := range pkts {
		s.Write(p)
	}
	buf := make([]byte, 1500)
	for i := range pkts {
		intercom.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := intercom.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		var got rtp.Packet
		if err := got.Unmarshal(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if got.PayloadType != 0 || got.SequenceNumber != pkts[i].SequenceNumber || string(got.Payload) != string(pkts[i].Payload) {
			t.Fatalf("packet %d arrived as pt %d seq %d", i, got.PayloadType, got.SequenceNumber)
		}
	}
}

// TestOpenRefusesWhatCannotPlay: a missing command and a malformed RTP address are
// refused when the box starts, naming the setting, not at the first word of a doctor.
func TestOpenRefusesWhatCannotPlay(t *testing.T) {
	for _, spec := range []string{"", "no-such-player-lifeline -q", "rtp://127.0.0.1", "rtp://127.0.0.1:5004/x"} {
		if _, err := Open(spec, nil); err == nil {
			t.Errorf("Open(%q) accepted", spec)
		}
	}
}
