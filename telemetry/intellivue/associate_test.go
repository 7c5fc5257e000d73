package intellivue

import (
	"bytes"
	"testing"
	"time"

	"lifeline/telemetry"
)

// recordingPort keeps every write, one frame each.
type recordingPort struct{ writes [][]byte }

func (p *recordingPort) Read([]byte) (int, error) { return 0, nil }
func (p *recordingPort) Write(b []byte) (int, error) {
	p.writes = append(p.writes, append([]byte(nil), b...))
	return len(b), nil
}
func (p *recordingPort) SetReadTimeout(time.Duration) error { return nil }

// TestAssociatesAgainOneRetryAfterSilence: when the monitor falls silent the driver
// aborts and asks for a new association after Retry, not later; an unanswered request
// is asked again once it had time to be answered.
func TestAssociatesAgainOneRetryAfterSilence(t *testing.T) {
	const retry, silence = 200 * time.Millisecond, time.Second
	port := &recordingPort{}
	c := newConn(New(Config{Retry: retry, Silence: silence}), port, telemetry.SinkFunc(func(telemetry.Event) {}))
	request, abort := Frame(AssociationRequest(ClientInfo)), Frame(Abort())
	step := func(at time.Time, want []byte, what string) {
		t.Helper()
		n := len(port.writes)
		if err := c.timers(at); err != nil {
			t.Fatal(err)
		}
		switch {
		case want == nil && len(port.writes) != n:
			t.Fatalf("%s: wrote %x, want nothing yet", what, port.writes[n:])
		case want != nil && (len(port.writes) != n+1 || !bytes.Equal(port.writes[n], want)):
			t.Fatalf("%s: wrote %x, want %x", what, port.writes[n:], want)
		}
	}
	t0 := time.Now()
	step(t0, request, "start")
	if err := c.feed(Frame(AssociationResponse(UserInfo{SystemType: systemServer})), t0); err != nil {
		t.Fatal(err)
	}
	if c.phase != phaseWaitMDS {
		t.Fatalf("phase %s after the association response", c.phase)
	}
	step(t0.Add(silence-time.Millisecond), nil, "before the silence limit")
	lost := t0.Add(silence)
	step(lost, abort, "at the silence limit")
	step(lost.Add(retry-time.Millisecond), nil, "within Retry of giving up")
	step(lost.Add(retry), request, "Retry after giving up")
	asked := lost.Add(retry)
	step(asked.Add(2*retry+time.Second-time.Millisecond), nil, "while the request may still be answered")
	step(asked.Add(2*retry+time.Second), request, "once the request went unanswered")
}
