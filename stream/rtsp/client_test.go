package rtsp_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/stream/h264"
	"lifeline/stream/rtsp"
	"lifeline/stream/rtsp/rtsptest"
)

// clip returns the access units of a real libx264 clip (2 s, 320x180, Constrained
// Baseline, committed with stream/h264's test data) and its SPS and PPS.
func clip(t testing.TB) (aus [][]byte, sps, pps []byte) {
	t.Helper()
	data, err := os.ReadFile("../h264/testdata/baseline.h264")
	if err != nil {
		t.Fatal(err)
	}
	for _, au := range h264.SplitAccessUnits(data, 3000) {
		aus = append(aus, au.Data)
		for _, nal := range au.NALUs() {
			switch h264.TypeOf(nal) {
			case h264.NALSPS:
				sps = nal
			case h264.NALPPS:
				pps = nal
			}
		}
	}
	return aus, sps, pps
}

func camera(t *testing.T, cfg rtsptest.Config) *rtsptest.Server {
	t.Helper()
	if cfg.AccessUnits == nil {
		cfg.AccessUnits, cfg.SPS, cfg.PPS = clip(t)
	}
	if cfg.FrameDuration == 0 {
		cfg.FrameDuration = 5 * time.Millisecond // six times real time: the test is about bytes, not pace
	}
	s, err := rtsptest.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func withCredentials(url, user, pass string) string {
	return strings.Replace(url, "rtsp://", "rtsp://"+user+":"+pass+"@", 1)
}

// play dials, sets up the video and plays, and returns the connection.
func play(t *testing.T, ctx context.Context, url string, cfg rtsp.Config) *rtsp.Conn {
	t.Helper()
	c, err := rtsp.Dial(ctx, url, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	v := c.Description().Video()
	if v == nil {
		t.Fatal("no video track")
	}
	if err := c.Setup(v); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := c.Play(); err != nil {
		t.Fatalf("Play: %v", err)
	}
	return c
}

// TestDigestCameraDeliversTheClip plays the clip from a camera behind Digest
// authentication and expects, after depacketizing, the very access units it sent,
// then a TEARDOWN on Close.
func TestDigestCameraDeliversTheClip(t *testing.T) {
	for _, auth := range []string{"digest", "basic"} {
		t.Run(auth, func(t *testing.T) {
			srv := camera(t, rtsptest.Config{Username: "crew", Password: "s3cret:with colon", Auth: auth})
			aus, sps, pps := clip(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := play(t, ctx, withCredentials(srv.URL, "crew", "s3cret%3Awith%20colon"), rtsp.Config{})
			v := c.Description().Video()
			if !bytes.Equal(v.SPS, sps) || !bytes.Equal(v.PPS, pps) {
				t.Errorf("sprop-parameter-sets gave %x %x, want %x %x", v.SPS, v.PPS, sps, pps)
			}
			d := h264.NewDepacketizer()
			var got [][]byte
			for len(got) < len(aus)+5 {
				p, err := c.ReadPacket()
				if err != nil {
					t.Fatalf("ReadPacket after %d pictures: %v", len(got), err)
				}
				if p.RTP == nil || p.Track != v {
					continue
				}
				_ = d.Push(p.RTP, func(au h264.AccessUnit) { got = append(got, bytes.Clone(au.Data)) })
			}
			for i, au := range got {
				if want := withoutAUD(aus[i%len(aus)]); !bytes.Equal(withoutAUD(au), want) {
					t.Fatalf("picture %d differs: %d bytes, want %d", i, len(au), len(want))
				}
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			wait.For(t, 5*time.Second, "TEARDOWN at the camera", func() bool { return slices.Contains(srv.Requests(), "TEARDOWN") })
			want := []string{"OPTIONS", "DESCRIBE", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN"}
			if got := srv.Requests(); !slices.Equal(got, want) {
				t.Errorf("camera saw %v, want %v (DESCRIBE twice: the 401, then with credentials)", got, want)
			}
		})
	}
}

// withoutAUD drops access unit delimiters, which pion's payloader does not send.
func withoutAUD(au []byte) []byte {
	var out []byte
	for _, nal := range h264.SplitNALUs(au) {
		if h264.TypeOf(nal) != h264.NALAUD {
			out = append(append(out, 0, 0, 0, 1), nal...)
		}
	}
	return out
}

func TestWrongPassword(t *testing.T) {
	srv := camera(t, rtsptest.Config{Username: "crew", Password: "right"})
	for _, url := range []string{withCredentials(srv.URL, "crew", "wrong"), srv.URL} {
		_, err := rtsp.Dial(context.Background(), url, rtsp.Config{ResponseTimeout: 5 * time.Second})
		if !errors.Is(err, rtsp.ErrUnauthorized) {
			t.Errorf("%s: %v, want ErrUnauthorized", url, err)
		}
	}
}

// TestKeepAlive announces a one-second session timeout and expects keep-alives:
// GET_PARAMETER, or OPTIONS from a camera that does not offer GET_PARAMETER.
func TestKeepAlive(t *testing.T) {
	for _, noGet := range []bool{false, true} {
		want := "GET_PARAMETER"
		if noGet {
			want = "OPTIONS"
		}
		t.Run(want, func(t *testing.T) {
			srv := camera(t, rtsptest.Config{SessionTimeout: 1, NoGetParameter: noGet, FrameDuration: 20 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := play(t, ctx, srv.URL, rtsp.Config{})
			defer c.Close()
			// Keep reading, as a source does: keep-alives go out between packets.
			keepAlives := func() int {
				n := 0
				for _, r := range srv.Requests()[3:] { // after OPTIONS, DESCRIBE, SETUP
					if r == want {
						n++
					}
				}
				return n
			}
			start := time.Now()
			for keepAlives() < 2 {
				if time.Since(start) > 10*time.Second {
					t.Fatalf("camera saw %v in 10 s of a 1 s session: want two %s keep-alives", srv.Requests(), want)
				}
				if _, err := c.ReadPacket(); err != nil {
					t.Fatal(err)
				}
			}
			if d := time.Since(start); d < 900*time.Millisecond {
				t.Errorf("two keep-alives within %s: more often than half the 1 s session timeout", d)
			}
		})
	}
}

// TestMisbehavingCameras expects a clear error, soon, from each way a camera fails.
func TestMisbehavingCameras(t *testing.T) {
	cases := []struct {
		name    string
		cfg     rtsptest.Config
		atDial  bool
		message string
	}{
		{"garbage answer", rtsptest.Config{Fault: rtsptest.GarbageAnswer}, true, "longer than"},
		{"garbage mid-stream", rtsptest.Config{Fault: rtsptest.GarbageMidStream, StopAfter: 50}, false, "where a response or an interleaved frame belongs"},
		{"stops mid-stream", rtsptest.Config{Fault: rtsptest.StopMidStream, StopAfter: 50}, false, "sent nothing for"},
		{"closes mid-stream", rtsptest.Config{Fault: rtsptest.CloseMidStream, StopAfter: 50}, false, "closed the connection"},
		{"wrong channel mid-stream", rtsptest.Config{Fault: rtsptest.WrongChannelMidStream, StopAfter: 50, FrameDuration: time.Millisecond}, false, "not RTP or RTCP of a track set up"},
		{"H.265 camera", rtsptest.Config{Codec: "H265"}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := camera(t, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cfg := rtsp.Config{ResponseTimeout: 2 * time.Second, MediaTimeout: 300 * time.Millisecond}
			c, err := rtsp.Dial(ctx, srv.URL, cfg)
			if tc.atDial {
				if err == nil || !strings.Contains(err.Error(), tc.message) {
					t.Fatalf("Dial: %v, want an error with %q", err, tc.message)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.cfg.Codec == "H265" {
				if v := c.Description().Video(); v == nil || v.Codec != "H265" {
					t.Fatalf("video %+v, want the H265 track named", v)
				}
				return
			}
			if err := c.Setup(c.Description().Video()); err != nil {
				t.Fatal(err)
			}
			if err := c.Play(); err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				_, err := c.ReadPacket()
				if err != nil {
					if !strings.Contains(err.Error(), tc.message) {
						t.Errorf("after %d packets: %v, want an error with %q", n, err, tc.message)
					}
					if n < 40 {
						t.Errorf("only %d packets before the fault at 50", n)
					}
					return
				}
				n++
			}
		})
	}
}

// TestCancelInterruptsRead cancels the Dial context while ReadPacket waits on a camera
// that has gone quiet, and expects ReadPacket to return at once.
func TestCancelInterruptsRead(t *testing.T) {
	srv := camera(t, rtsptest.Config{Fault: rtsptest.StopMidStream, StopAfter: 10})
	ctx, cancel := context.WithCancel(context.Background())
	c := play(t, ctx, srv.URL, rtsp.Config{MediaTimeout: time.Minute})
	defer c.Close()
	for range 10 {
		if _, err := c.ReadPacket(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := c.ReadPacket(); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ReadPacket: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadPacket did not return after cancel")
	}
}

// TestCameraWithoutTCP expects a camera that refuses RTP over TCP (VLC's RTSP output
// does; checked by hand with cvlc 3.0.24) to be named as such.
func TestCameraWithoutTCP(t *testing.T) {
	srv := camera(t, rtsptest.Config{UDPOnly: true})
	c, err := rtsp.Dial(context.Background(), srv.URL, rtsp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Setup(c.Description().Video())
	var se *rtsp.StatusError
	if !errors.As(err, &se) || se.StatusCode != 461 || !strings.Contains(err.Error(), "over the RTSP connection (TCP)") {
		t.Errorf("Setup: %v, want the 461 explained", err)
	}
}

// TestCameraWithoutOptions plays a camera that answers OPTIONS with 501.
func TestCameraWithoutOptions(t *testing.T) {
	srv := camera(t, rtsptest.Config{NoOptions: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := play(t, ctx, srv.URL, rtsp.Config{})
	defer c.Close()
	if _, err := c.ReadPacket(); err != nil {
		t.Fatal(err)
	}
}

func TestDialBadURLHidesPassword(t *testing.T) {
	for _, url := range []string{"rtsp://crew:secret@cam:554/%zz", "http://crew:secret@cam/", "rtsp://crew:secret@/x"} {
		_, err := rtsp.Dial(context.Background(), url, rtsp.Config{})
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v; want an error without the password", url, err)
		}
	}
}
