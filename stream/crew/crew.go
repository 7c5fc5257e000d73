// Package crew is the hospital's side of the conversation with an ambulance crew:
// guidance messages sent to the box with delivery and read receipts, requests such as
// a 12-lead ECG, the crew's patient card, and the ECGs that answer the requests.
//
// The messages travel on the box's WebRTC data channels in the vitals format
// (stream/VITALS.md): guidance and requests hub → box on "control", receipts, cards
// and ECG reports box → hub on "vitals". This package keeps the hub's record of them
// on disk, so that a hub restart neither repeats a control sequence number nor forgets
// what the crew was told, and sends again whatever the box has not confirmed.
package crew

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"lifeline/internal/durable"
	"lifeline/stream/vitals"
)

// Note is one message the hospital sent to a crew and what became of it.
type Note struct {
	Seq       uint64    `json:"seq"`  // the hub's control sequence for the box
	ID        string    `json:"id"`   // the hub's identifier, "m-<seq>"
	Type      string    `json:"type"` // vitals.TypeText or a request type (vitals.TypeECGRequest)
	Text      string    `json:"text,omitempty"`
	From      string    `json:"from"` // who sent it, as the hub names them
	Sent      time.Time `json:"sent"`
	Delivered time.Time `json:"delivered,omitzero"` // the box has it
	Read      time.Time `json:"read,omitzero"`      // the crew confirmed reading it
}

// ECG is a 12-lead acquisition a box reported: requested from the hospital (Ref is
// the request's Seq) or started by the crew (Ref 0).
type ECG struct {
	Ref     uint64    `json:"ref,omitempty"`
	State   string    `json:"state"` // vitals.ECGAcquiring, ECGQueued, ECGFailed
	SOP     string    `json:"sop,omitempty"`
	Study   string    `json:"study,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Started time.Time `json:"started"` // the box's clock when acquisition began
	Updated time.Time `json:"updated"` // the box's clock at the latest report
}

// Box is everything the hub keeps of one box's crew.
type Box struct {
	Device string              `json:"device"`
	Card   *vitals.PatientCard `json:"card,omitempty"`
	Notes  []Note              `json:"notes"`
	ECGs   []ECG               `json:"ecgs"`
	// NextSeq is the next control sequence number: it only grows, so a box never
	// takes a new message for one it already handed to the crew.
	NextSeq uint64 `json:"next_seq"`
}

// Bounds of what one box's record holds; the oldest go first. The audit log and the
// vitals archive keep the full history.
const (
	maxNotes = 100
	maxECGs  = 20
)

// Config configures a Crew.
type Config struct {
	// Store keeps the records, in bucket "crew".
	Store *durable.Store
	// Send delivers one control message to the box on its "control" channel; it
	// fails when the box is not connected. Required.
	Send func(device string, data []byte) error
	// ResendEvery is how often messages the box has not confirmed are sent again
	// (default 2 s): after a reconnect the box has them within that time.
	ResendEvery time.Duration
	// Log receives what went wrong; default slog.Default().
	Log *slog.Logger
}

const bucket = "crew"

// Crew keeps the conversation with every box's crew.
type Crew struct {
	cfg Config

	mu    sync.Mutex
	boxes map[string]*Box // a cache of the store, loaded at New
}

// New loads the records from cfg.Store.
func New(cfg Config) (*Crew, error) {
	if cfg.Store == nil || cfg.Send == nil {
		return nil, errors.New("crew: Store and Send are required")
	}
	if cfg.ResendEvery <= 0 {
		cfg.ResendEvery = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	c := &Crew{cfg: cfg, boxes: map[string]*Box{}}
	err := cfg.Store.ForEach(bucket, func(k, v []byte) error {
		var b Box
		if err := json.Unmarshal(v, &b); err != nil {
			return fmt.Errorf("crew: record of %s: %w", k, err)
		}
		c.boxes[string(k)] = &b
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ErrTooLong is returned by Send for a text the box would refuse.
var ErrTooLong = errors.New("crew: message too long")

// MaxText is the longest guidance text, as the vitals format bounds it.
const MaxText = 4096

// Send records a message to device's crew on disk, under a sequence number never
// used for that box before, and sends it. The message is kept, and sent again until
// the box confirms it, even if the box is not connected now.
func (c *Crew) Send(device, from, typ, text string) (Note, error) {
	if len(text) > MaxText {
		return Note{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLong, len(text), MaxText)
	}
	var n Note
	err := c.update(device, func(b *Box) error {
		b.NextSeq = max(b.NextSeq, 1)
		n = Note{Seq: b.NextSeq, ID: "m-" + strconv.FormatUint(b.NextSeq, 10), Type: typ, Text: text, From: from, Sent: time.Now().UTC()}
		b.NextSeq++
		b.Notes = append(b.Notes, n)
		if len(b.Notes) > maxNotes {
			b.Notes = b.Notes[len(b.Notes)-maxNotes:]
		}
		return nil
	})
	if err != nil {
		return Note{}, err
	}
	c.deliver(device, n)
	return n, nil
}

// deliver sends one note; a box that is not connected gets it from the resend loop.
func (c *Crew) deliver(device string, n Note) {
	msg := vitals.Message{V: vitals.Version, Type: n.Type, Seq: n.Seq, ID: n.ID, From: n.From, Text: n.Text, HubTime: n.Sent}
	data, err := vitals.Marshal(&msg)
	if err != nil {
		c.cfg.Log.Error("crew: encoding a message for the box", "device", device, "seq", n.Seq, "err", err)
		return
	}
	if err := c.cfg.Send(device, data); err != nil {
		c.cfg.Log.Debug("crew: box not reachable; message kept for resend", "device", device, "seq", n.Seq, "err", err)
	}
}

// FromBox takes a message the box sent on its reliable channel, after the vitals
// archive stored it. Receipts, patient cards and ECG reports update the record; other
// types are not the crew's and are ignored.
func (c *Crew) FromBox(device string, m vitals.Message) error {
	switch m.Type {
	case vitals.TypeReceipt:
		return c.update(device, func(b *Box) error {
			for i := range b.Notes {
				n := &b.Notes[i]
				if n.Seq != m.Ref {
					continue
				}
				if n.Delivered.IsZero() {
					n.Delivered = m.BoxTime
				}
				if m.State == "read" && n.Read.IsZero() {
					n.Read = m.BoxTime
				}
			}
			return nil
		})
	case vitals.TypePatient:
		return c.update(device, func(b *Box) error {
			card := *m.Card
			if card.Updated.IsZero() {
				card.Updated = m.BoxTime
			}
			if b.Card == nil || !card.Updated.Before(b.Card.Updated) {
				b.Card = &card
			}
			return nil
		})
	case vitals.TypeECG:
		return c.update(device, func(b *Box) error {
			b.ECGs = mergeECG(b.ECGs, m)
			return nil
		})
	}
	return nil
}

// mergeECG updates the acquisition m reports on (the same request, or for the crew's
// own the same start), or adds it.
func mergeECG(list []ECG, m vitals.Message) []ECG {
	for i := range list {
		e := &list[i]
		same := m.Ref != 0 && e.Ref == m.Ref || m.Ref == 0 && e.Ref == 0 && (e.SOP == m.SOP || e.State == vitals.ECGAcquiring)
		if same && !m.BoxTime.Before(e.Updated) {
			e.State, e.Detail, e.Updated = m.State, m.Detail, m.BoxTime
			if m.SOP != "" {
				e.SOP, e.Study = m.SOP, m.Study
			}
			return list
		}
	}
	list = append(list, ECG{Ref: m.Ref, State: m.State, SOP: m.SOP, Study: m.Study, Detail: m.Detail, Started: m.BoxTime, Updated: m.BoxTime})
	if len(list) > maxECGs {
		list = list[len(list)-maxECGs:]
	}
	return list
}

// Box returns a copy of device's record; ok is false when the hub has none.
func (c *Crew) Box(device string) (Box, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.boxes[device]
	if !ok {
		return Box{Device: device, Notes: []Note{}, ECGs: []ECG{}}, false
	}
	out := *b
	out.Notes = append([]Note{}, b.Notes...)
	out.ECGs = append([]ECG{}, b.ECGs...)
	if b.Card != nil {
		card := *b.Card
		out.Card = &card
	}
	return out, true
}

// Card returns device's latest patient card, or nil.
func (c *Crew) Card(device string) *vitals.PatientCard {
	b, _ := c.Box(device)
	return b.Card
}

// Run sends again, every ResendEvery, each message a box has not confirmed, until ctx
// ends.
func (c *Crew) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.ResendEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for device, notes := range c.unconfirmed() {
			for _, n := range notes {
				c.deliver(device, n)
			}
		}
	}
}

func (c *Crew) unconfirmed() map[string][]Note {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]Note{}
	for device, b := range c.boxes {
		for _, n := range b.Notes {
			if n.Delivered.IsZero() {
				out[device] = append(out[device], n)
			}
		}
	}
	return out
}

// update changes device's record on disk, then in the cache: a change that could not
// be stored did not happen.
func (c *Crew) update(device string, change func(*Box) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := Box{Device: device}
	if old, ok := c.boxes[device]; ok {
		b = *old
		b.Notes = append([]Note(nil), old.Notes...)
		b.ECGs = append([]ECG(nil), old.ECGs...)
	}
	if err := change(&b); err != nil {
		return err
	}
	if err := c.cfg.Store.PutJSON(bucket, device, &b); err != nil {
		return fmt.Errorf("crew: storing %s's record: %w", device, err)
	}
	c.boxes[device] = &b
	return nil
}
