package oggopus

import (
	"os"
	"testing"
	"time"
)

// TestReadClip reads the demo clip's sound, made by ffmpeg's libopus (see
// ../clip/README.md): 10 s of mono 48 kHz in 20 ms packets.
func TestReadClip(t *testing.T) {
	data, err := os.ReadFile("../clip/clip.opus")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Read(data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Channels != 1 || s.InputRate != 48000 || s.PreSkip == 0 {
		t.Errorf("head %+v", s)
	}
	var total time.Duration
	for i, p := range s.Packets {
		if p.Duration != 20*time.Millisecond {
			t.Fatalf("packet %d lasts %s", i, p.Duration)
		}
		total += p.Duration
	}
	// ffprobe counts 501 packets: 10 s and the encoder's pre-skip rounded up.
	if len(s.Packets) != 501 || total != 10020*time.Millisecond {
		t.Errorf("%d packets, %s in all", len(s.Packets), total)
	}
}

func TestPacketDuration(t *testing.T) {
	for _, c := range []struct {
		p    []byte
		want time.Duration
	}{
		{[]byte{0xfc}, 20 * time.Millisecond},                   // config 31 (CELT FB 20 ms), one frame
		{[]byte{0x08}, 20 * time.Millisecond},                   // config 1 (SILK NB 20 ms)
		{[]byte{0x00}, 10 * time.Millisecond},                   // config 0 (SILK NB 10 ms)
		{[]byte{0x18}, 60 * time.Millisecond},                   // config 3 (SILK NB 60 ms)
		{[]byte{0xe1}, 5 * time.Millisecond},                    // config 28 (CELT 2.5 ms), two frames
		{[]byte{0x7b, 0x03}, 60 * time.Millisecond},             // config 15 (hybrid 20 ms), code 3, 3 frames
		{[]byte{0x63, 0x03}, 30 * time.Millisecond},             // config 12 (hybrid 10 ms), code 3, 3 frames
		{[]byte{0xfb, 0x06}, 120 * time.Millisecond},            // CELT 20 ms x 6
		{[]byte{0xff, 0x02, 0x00, 0x00}, 40 * time.Millisecond}, // CELT 20 ms, code 3 x 2
	} {
		got, err := PacketDuration(c.p)
		if err != nil || got != c.want {
			t.Errorf("%x: %s, %v; want %s", c.p, got, err, c.want)
		}
	}
	// Empty, code 3 without its count, code 3 with 0 frames, 140 ms.
	for _, bad := range [][]byte{nil, {0x0b}, {0xff, 0x00}, {0xfb, 0x07}} {
		if d, err := PacketDuration(bad); err == nil {
			t.Errorf("%x: %s, want an error", bad, d)
		}
	}
}

func TestReadRejects(t *testing.T) {
	data, err := os.ReadFile("../clip/clip.opus")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":      nil,
		"not ogg":    []byte("RIFF....WAVEfmt "),
		"cut page":   data[:40],
		"cut packet": data[:len(data)-10],
	}
	for name, b := range cases {
		if s, err := Read(b); err == nil {
			t.Errorf("%s: read %d packets, want an error", name, len(s.Packets))
		}
	}
}

// FuzzRead checks that any file that reads gives packets within the bounds.
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Read(data)
		if err != nil {
			return
		}
		for _, p := range s.Packets {
			if len(p.Data) > MaxPacketSize || p.Duration <= 0 || p.Duration > 120*time.Millisecond {
				t.Fatalf("packet of %d bytes lasting %s", len(p.Data), p.Duration)
			}
		}
	})
}
