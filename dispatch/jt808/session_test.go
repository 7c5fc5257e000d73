package jt808

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// startPlatform serves a Platform on loopback for the test and collects its reports.
func startPlatform(t *testing.T, cfg PlatformConfig) (*Platform, string, func() []Report) {
	t.Helper()
	var mu sync.Mutex
	var reports []Report
	cfg.OnReport = func(r Report) {
		mu.Lock()
		reports = append(reports, r)
		mu.Unlock()
	}
	p := NewPlatform(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("platform: %v", err)
		}
	})
	return p, ln.Addr().String(), func() []Report {
		mu.Lock()
		defer mu.Unlock()
		return append([]Report(nil), reports...)
	}
}

func openSession(t *testing.T, addr string, ed Edition, wrap func(net.Conn) net.Conn) *Session {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		c = wrap(c)
	}
	s, err := Open(context.Background(), c, SessionConfig{
		Edition: ed, Phone: "13800138000", ResponseTimeout: 2 * time.Second,
		Register: Register{Province: 44, City: 100, Maker: "LIFEL", Model: "EDGE", TerminalID: "BOX0001", PlateColor: 1, Plate: "粤A12345"},
		IMEI:     "867000000000001", Software: "lifeline-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSessionRegistersAuthenticatesAndReports(t *testing.T) {
	for _, ed := range []Edition{Edition2013, Edition2019} {
		t.Run(ed.String(), func(t *testing.T) {
			p, addr, reports := startPlatform(t, PlatformConfig{AuthCode: "secret-1"})
			s := openSession(t, addr, ed, nil)
			if s.AuthCode() != "secret-1" {
				t.Fatalf("auth code %q", s.AuthCode())
			}
			l := Location{Lat: 23.1291, Lon: 113.2644, SpeedKmh: 42.5, Course: 270, Status: StatusFixed,
				Time: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC), HasSatellites: true, Satellites: 14, HasSignal: true, Signal: 25}
			if _, err := s.Call(context.Background(), IDLocation, l.Marshal()); err != nil {
				t.Fatal(err)
			}
			r := reports()
			if len(r) != 1 || r[0].Lat != 23.1291 || r[0].Lon != 113.2644 || r[0].SpeedKmh != 42.5 || *r[0].Satellites != 14 || !r[0].Time.Equal(l.Time) {
				t.Fatalf("platform got %+v", r)
			}
			if got := p.Terminals(); len(got) != 1 {
				t.Fatalf("terminals %v", got)
			}
			// A crew message from dispatch arrives as a command.
			phone := p.Terminals()[0]
			pe, _ := p.Edition(phone)
			if _, err := p.Send(phone, IDTextMessage, TextMessage{Flags: 1, Type: 1, Text: "前往市第一人民医院"}.Marshal(pe)); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-s.Commands():
				tm, err := ParseTextMessage(m.Body, m.Edition)
				if err != nil || tm.Text != "前往市第一人民医院" {
					t.Fatalf("text %+v %v", tm, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no text message command")
			}
		})
	}
}

func TestSessionKeepsGoingOnBadInput(t *testing.T) {
	var got []Message
	var mu sync.Mutex
	p, addr, _ := startPlatform(t, PlatformConfig{OnMessage: func(m Message) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}})
	s := openSession(t, addr, Edition2019, nil)
	phone := p.Terminals()[0]
	p.mu.Lock()
	conn := p.terminals[phone].conn
	p.mu.Unlock()
	// Garbage, a frame with a wrong check code, a truncated frame, an unknown ID.
	conn.Write([]byte("NOISE"))
	bad, _ := Encode(Message{Header: Header{ID: IDTextMessage, Edition: Edition2019, Version: 1, Phone: phone, Serial: 9}, Body: []byte{1, 1, 'x'}})
	bad[len(bad)-2] ^= 0xFF
	conn.Write(bad)
	conn.Write([]byte{0x7E, 0x83, 0x00, 0x7E})
	if _, err := p.Send(phone, 0x8F99, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the terminal to answer the unknown message 'unsupported'", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range got {
			if g, err := ParseGeneralResponse(m.Body); m.ID == IDTerminalResponse && err == nil && g.ID == 0x8F99 && g.Result == ResultUnsupported {
				return true
			}
		}
		return false
	})
	st := s.Stats()
	if st.BadFrames != 2 || st.NoiseBytes != 5 || st.UnknownMessages != 1 {
		t.Errorf("stats %+v", st)
	}
	if _, err := s.Call(context.Background(), IDHeartbeat, nil); err != nil {
		t.Fatalf("session did not keep going: %v", err)
	}
}

func TestSessionPlatformNeverAnswers(t *testing.T) {
	p, addr, _ := startPlatform(t, PlatformConfig{})
	s := openSession(t, addr, Edition2013, nil)
	p.Mute(true)
	start := time.Now()
	_, err := s.Call(context.Background(), IDHeartbeat, nil)
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("err %v, want ErrNoAnswer", err)
	}
	if d := time.Since(start); d < 2*time.Second || d > 4*time.Second {
		t.Errorf("gave up after %v, want the 2 s response timeout", d)
	}
	if s.Stats().Timeouts != 1 {
		t.Errorf("timeouts %d", s.Stats().Timeouts)
	}
	p.Mute(false)
	if _, err := s.Call(context.Background(), IDHeartbeat, nil); err != nil {
		t.Fatalf("after the platform answers again: %v", err)
	}
}

// dropWrite loses the n-th write on the connection, as a frame lost on the way.
type dropWrite struct {
	net.Conn
	n, count atomic.Int32
}

func (d *dropWrite) Write(b []byte) (int, error) {
	if d.count.Add(1) == d.n.Load() {
		return len(b), nil
	}
	return d.Conn.Write(b)
}

func TestSessionResendsMissingSubPackage(t *testing.T) {
	var whole []byte
	var mu sync.Mutex
	_, addr, _ := startPlatform(t, PlatformConfig{OnMessage: func(m Message) {
		if m.ID == IDBatchLocation {
			mu.Lock()
			whole = m.Body
			mu.Unlock()
		}
	}})
	dw := &dropWrite{}
	s := openSession(t, addr, Edition2019, func(c net.Conn) net.Conn { dw.Conn = c; return dw })
	// Writes so far: register, authenticate. The batch goes in 3 parts: lose the 2nd.
	dw.n.Store(dw.count.Load() + 2)
	var items [][]byte
	for i := 0; i < 80; i++ {
		items = append(items, Location{Lat: 30, Lon: 120 + float64(i)/1000, Time: time.Unix(1700000000+int64(i), 0)}.Marshal())
	}
	body := BatchLocation{Type: BatchBlindZone, Items: items}.Marshal()
	if len(body) <= 2*MaxBody {
		t.Fatalf("body %d bytes does not need 3 parts", len(body))
	}
	if _, err := s.Call(context.Background(), IDBatchLocation, body); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(whole, body) {
		t.Fatalf("platform reassembled %d bytes, want %d", len(whole), len(body))
	}
	if s.Stats().Resent != 1 {
		t.Errorf("resent %d sub-packages, want 1", s.Stats().Resent)
	}
}
