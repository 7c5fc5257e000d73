package whip

import (
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"
)

// boxChannel is one of the box's data channels in one session. It makes the caller's
// OnClose certain and single: pion reports a close from its own goroutines, sometimes
// after the session is gone, so the session also reports it when it ends.
type boxChannel struct {
	spec      DataChannel
	dc        *webrtc.DataChannel
	mu        sync.Mutex
	opened    bool
	closeOnce sync.Once
}

// openDataChannel creates one of the box's data channels in a new session and wires
// the caller's callbacks to it.
func openDataChannel(pc *webrtc.PeerConnection, spec DataChannel) (*boxChannel, error) {
	ordered := spec.Ordered
	dc, err := pc.CreateDataChannel(spec.Label, &webrtc.DataChannelInit{Ordered: &ordered, MaxRetransmits: spec.MaxRetransmits})
	if err != nil {
		return nil, fmt.Errorf("whip: data channel %q: %w", spec.Label, err)
	}
	ch := &boxChannel{spec: spec, dc: dc}
	dc.OnOpen(ch.onOpen)
	if spec.OnMessage != nil {
		dc.OnMessage(func(m webrtc.DataChannelMessage) { spec.OnMessage(m.Data) })
	}
	dc.OnClose(ch.closed)
	return ch, nil
}

func (ch *boxChannel) onOpen() {
	ch.mu.Lock()
	ch.opened = true
	ch.mu.Unlock()
	if ch.spec.OnOpen != nil {
		ch.spec.OnOpen(ch.send)
	}
}

// send is what OnOpen hands the caller: it never blocks, and refuses rather than
// queue without bound while the link is down.
func (ch *boxChannel) send(msg []byte) error {
	if ch.dc.ReadyState() != webrtc.DataChannelStateOpen {
		return fmt.Errorf("whip: %q: %w", ch.spec.Label, ErrNotOpen)
	}
	limit := ch.spec.MaxBuffered
	if limit == 0 {
		limit = MaxBuffered
	}
	if ch.dc.BufferedAmount() > limit {
		return fmt.Errorf("whip: %q: %w", ch.spec.Label, ErrBacklog)
	}
	send := ch.dc.Send
	if ch.spec.Text {
		send = func(b []byte) error { return ch.dc.SendText(string(b)) }
	}
	if err := send(msg); err != nil {
		return fmt.Errorf("whip: send on %q: %w", ch.spec.Label, err)
	}
	return nil
}

// closed calls the caller's OnClose once, and only for a channel that opened.
func (ch *boxChannel) closed() {
	ch.mu.Lock()
	opened := ch.opened
	ch.mu.Unlock()
	if !opened {
		return
	}
	ch.closeOnce.Do(func() {
		if ch.spec.OnClose != nil {
			ch.spec.OnClose()
		}
	})
}
