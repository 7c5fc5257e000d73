package hl7

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"lifeline/telemetry"
)

// FuzzDriverTCP runs the driver on a real loopback TCP connection, as the box reads a
// monitor over the network: the fuzzer's bytes are the monitor's side of the stream,
// and what comes back must be well-formed MLLP-framed ACKs, one per message that asks.
// The session must end within a time bound once the peer closes, and what it
// allocates must stay within a bound that grows with the input only as far as the
// frame and shape limits allow.
func FuzzDriverTCP(f *testing.F) {
	f.Add([]byte("\x0bMSH|^~\\&|MON|ICU|||20260101120000||ORU^R01|7|P|2.6|||AL\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97|262688^MDC_DIM_PERCENT^MDC\r\x1c\x0d"))
	f.Add([]byte("noise\x0bMSH|^~\\&|MON|ICU|||2026||ORU^R01|8|P|2.6|||ER\rOBX|1|NM\x1c\x0bXSH|bad\x1c\r"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	drv := New(Config{Location: time.UTC})
	f.Fuzz(func(t *testing.T, stream []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		acks, err := driveOverTCP(t, ln, drv, stream)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acks {
			m, err := Parse(a)
			if err != nil {
				t.Fatalf("ACK does not parse: %v: %q", err, a)
			}
			msa, ok := m.Segment("MSA")
			if m.MSH().Get(9, 0) != "ACK" || !ok || (msa.Value(1) != "AA" && msa.Value(1) != "AE") {
				t.Fatalf("not an ACK with MSA AA or AE: %q", a)
			}
		}
		if n := bytes.Count(stream, []byte{StartBlock}); len(acks) > n {
			t.Fatalf("%d ACKs for %d frames", len(acks), n)
		}
		// Per frame: an ACK and its parse; per byte: what the limits let the parser
		// build (TestParseAllocationBounded measures at most 44 B/byte).
		budget := 2<<20 + 64*uint64(len(stream)) + 16<<10*uint64(bytes.Count(stream, []byte{StartBlock}))
		if got := after.TotalAlloc - before.TotalAlloc; got > budget {
			t.Fatalf("a %d-byte stream allocated %d bytes, over %d", len(stream), got, budget)
		}
	})
}

// driveOverTCP connects to ln, serves the connection with drv, sends stream, closes
// its sending side and returns the ACK frames the driver wrote back. It fails when
// the session does not end within 10 s of the close.
func driveOverTCP(t *testing.T, ln net.Listener, drv *Driver, stream []byte) ([][]byte, error) {
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		defer server.Close()
		ran <- drv.Run(ctx, telemetry.DeadlinePort(server, time.Second), discard{})
	}()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client) // until the driver's side closes
		got <- b
	}()
	if _, err := client.Write(stream); err != nil {
		return nil, err
	}
	client.(*net.TCPConn).CloseWrite()
	back := <-got
	if err := <-ran; !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
		if ctx.Err() != nil {
			t.Fatalf("the driver did not end within 10 s of the monitor closing: %v", err)
		}
	}
	var d Deframer
	acks, skipped, err := d.Feed(back)
	if skipped != 0 || err != nil || d.in {
		t.Fatalf("the driver wrote %d bytes outside frames (err %v): %q", skipped, err, back)
	}
	return acks, nil
}

// discard is a sink that keeps nothing.
type discard struct{}

func (discard) Emit(telemetry.Event) {}
func (discard) Frame()               {}
func (discard) Skipped(int, string)  {}

// TestDriverOverTCPAcksAndLimits: over a real TCP connection, each message that asks
// gets its ACK, a message over the shape limits gets an AE naming the limit, and an
// oversized frame is skipped without ending the session.
func TestDriverOverTCPAcksAndLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msg := func(id, extra string) []byte {
		return Frame(nil, []byte("MSH|^~\\&|MON|ICU|||20260101120000||ORU^R01|"+id+"|P|2.6|||AL\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97|262688^MDC_DIM_PERCENT^MDC"+extra+"\r"))
	}
	var stream []byte
	stream = append(stream, msg("1", "")...)
	stream = append(stream, msg("2", strings.Repeat("|", MaxFields))...)
	big := append([]byte{StartBlock}, bytes.Repeat([]byte("x"), MaxMessage+1)...)
	stream = append(append(stream, big...), EndBlock, CR)
	stream = append(stream, msg("3", "")...)
	acks, err := driveOverTCP(t, ln, New(Config{}), stream)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range acks {
		m, err := Parse(a)
		if err != nil {
			t.Fatal(err)
		}
		msa, _ := m.Segment("MSA")
		got = append(got, msa.Value(1)+" "+msa.Value(2)+" "+msa.Value(3))
	}
	if len(got) != 3 || got[0] != "AA 1 " || !strings.HasPrefix(got[1], "AE 2 hl7: message has more parts") || got[2] != "AA 3 " {
		t.Fatalf("ACKs %q; want AA for 1, AE naming the limit for 2, AA for 3", got)
	}
}
