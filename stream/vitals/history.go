package vitals

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"lifeline/internal/durable"
)

// HistoryStore keeps every vitals message the hub received from each box, for the
// doctor who opens a view mid-transport. The Archive is its only writer. It is small
// on purpose, so that the hub's shared state store can take it over.
type HistoryStore interface {
	// Stream returns what the hub holds durably about a device's stream; the zero
	// StreamState for a device never seen.
	Stream(device string) (StreamState, error)
	// Commit stores the records and the new stream states in one durable commit,
	// skipping records already held, and then trims each channel of each device it
	// touched to the store's bound, oldest first.
	Commit(recs []Record, states map[string]StreamState) error
	// Read calls fn with the records q selects, in cursor order, until fn returns
	// false or the records end.
	Read(q HistoryQuery, fn func(Record) bool) error
}

// HistoryQuery selects records of one device and channel.
type HistoryQuery struct {
	Device  string
	Channel string    // LabelReliable or LabelWave
	After   Cursor    // only records after this cursor; the zero Cursor means from the start
	From    time.Time // only records whose box_time is at or after it; zero means all
}

// StreamState is the hub's durable knowledge of one device's stream.
type StreamState struct {
	Epoch    string `json:"epoch"`     // the box's current epoch
	EpochN   uint32 `json:"epoch_n"`   // how many epochs the hub has seen: orders history across them
	Reliable uint64 `json:"reliable"`  // highest reliable seq held in this epoch: the ack
	WaveHigh uint64 `json:"wave_high"` // highest wave seq held in this epoch
}

// Record is one stored message.
type Record struct {
	Device  string
	Channel string // LabelReliable or LabelWave
	Cursor  Cursor
	BoxTime time.Time
	Data    []byte // the message exactly as the box sent it
}

// Cursor orders a device's records within a channel: the hub's epoch count, then seq.
type Cursor struct {
	EpochN uint32
	Seq    uint64
}

func (c Cursor) key() []byte {
	var k [12]byte
	binary.BigEndian.PutUint32(k[:4], c.EpochN)
	binary.BigEndian.PutUint64(k[4:], c.Seq)
	return k[:]
}

// String is the cursor as the history API spells it: 24 hex digits.
func (c Cursor) String() string { return hex.EncodeToString(c.key()) }

// ParseCursor reads a cursor from its String form.
func ParseCursor(s string) (Cursor, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 12 {
		return Cursor{}, fmt.Errorf("vitals: cursor %q is not 24 hex digits", clip(s, 32))
	}
	return cursorOf(b), nil
}

func cursorOf(k []byte) Cursor {
	return Cursor{EpochN: binary.BigEndian.Uint32(k[:4]), Seq: binary.BigEndian.Uint64(k[4:])}
}

// HistoryBounds bound what a HistoryStore keeps per device; the zero value means the
// defaults.
type HistoryBounds struct {
	// ReliableBytes bounds numerics, alarms, device events and receipts (default
	// 64 MiB: over 2 hours of a 12-lead monitor's 40 numerics a second).
	ReliableBytes int64
	// WaveBytes bounds wave chunks (default 512 MiB: about 2 hours of 12 ECG leads at
	// 500 Hz with pleth, respiration and CO2, at the 60–70 kB/s they take as JSON).
	WaveBytes int64
}

// BoltHistory is the HistoryStore in the hub's bbolt store. Each device has a bucket
// under "stream/vitals/history" holding its state, a byte count per channel, and one
// bucket per channel keyed by cursor; waves can never push numerics out.
type BoltHistory struct {
	store  *durable.Store
	bounds HistoryBounds
}

const historyBucket = "stream/vitals/history"

// WithDefaults returns b with each bound that is not set at its default, for every
// HistoryStore to apply alike.
func (b HistoryBounds) WithDefaults() HistoryBounds {
	if b.ReliableBytes <= 0 {
		b.ReliableBytes = 64 << 20
	}
	if b.WaveBytes <= 0 {
		b.WaveBytes = 512 << 20
	}
	return b
}

// Of returns the bound of channel (LabelReliable or LabelWave).
func (b HistoryBounds) Of(channel string) int64 {
	if channel == LabelWave {
		return b.WaveBytes
	}
	return b.ReliableBytes
}

// NewBoltHistory returns a HistoryStore in store.
func NewBoltHistory(store *durable.Store, bounds HistoryBounds) *BoltHistory {
	return &BoltHistory{store: store, bounds: bounds.WithDefaults()}
}

func deviceBucket(tx *durable.Tx, device string) *bolt.Bucket {
	top := tx.Bucket([]byte(historyBucket))
	if top == nil {
		return nil
	}
	return top.Bucket([]byte(device))
}

// Stream implements HistoryStore.
func (h *BoltHistory) Stream(device string) (StreamState, error) {
	var st StreamState
	err := h.store.View(func(tx *durable.Tx) error {
		d := deviceBucket(tx, device)
		if d == nil {
			return nil
		}
		if v := d.Get([]byte("state")); v != nil {
			return json.Unmarshal(v, &st)
		}
		return nil
	})
	if err != nil {
		return StreamState{}, fmt.Errorf("vitals: history state of %s: %w", device, err)
	}
	return st, nil
}

// Commit implements HistoryStore.
func (h *BoltHistory) Commit(recs []Record, states map[string]StreamState) error {
	err := h.store.Update(func(tx *durable.Tx) error {
		top, err := durable.Bucket(tx, historyBucket)
		if err != nil {
			return err
		}
		grown := map[[2]string]int64{}
		for _, r := range recs {
			n, err := putRecord(top, r)
			if err != nil {
				return err
			}
			if n > 0 {
				grown[[2]string{r.Device, r.Channel}] += n
			}
		}
		for dc, n := range grown {
			if err := h.trim(top.Bucket([]byte(dc[0])), dc[1], n); err != nil {
				return err
			}
		}
		for device, st := range states {
			d, err := top.CreateBucketIfNotExists([]byte(device))
			if err != nil {
				return err
			}
			data, err := json.Marshal(st)
			if err != nil {
				return err
			}
			if err := d.Put([]byte("state"), data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vitals: history commit of %d records: %w", len(recs), err)
	}
	return nil
}

// putRecord stores r unless it is already held and returns the bytes it added.
func putRecord(top *bolt.Bucket, r Record) (int64, error) {
	d, err := top.CreateBucketIfNotExists([]byte(r.Device))
	if err != nil {
		return 0, err
	}
	c, err := d.CreateBucketIfNotExists([]byte(r.Channel))
	if err != nil {
		return 0, err
	}
	k := r.Cursor.key()
	if c.Get(k) != nil {
		return 0, nil
	}
	v := make([]byte, 8+len(r.Data))
	binary.BigEndian.PutUint64(v, uint64(r.BoxTime.UnixNano()))
	copy(v[8:], r.Data)
	return int64(len(v)), c.Put(k, v)
}

// trim adds grown to the channel's byte count and deletes its oldest records until the
// count is within the bound.
func (h *BoltHistory) trim(d *bolt.Bucket, channel string, grown int64) error {
	bound := h.bounds.Of(channel)
	countKey := []byte("bytes/" + channel)
	var total int64
	if v := d.Get(countKey); len(v) == 8 {
		total = int64(binary.BigEndian.Uint64(v))
	}
	total += grown
	cb := d.Bucket([]byte(channel))
	c := cb.Cursor()
	for k, v := c.First(); k != nil && total > bound; k, v = c.First() {
		total -= int64(len(v))
		if err := c.Delete(); err != nil {
			return err
		}
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(max(total, 0)))
	return d.Put(countKey, buf[:])
}

// Read implements HistoryStore.
func (h *BoltHistory) Read(q HistoryQuery, fn func(Record) bool) error {
	from := int64(math.MinInt64)
	if !q.From.IsZero() {
		from = q.From.UnixNano()
	}
	err := h.store.View(func(tx *durable.Tx) error {
		d := deviceBucket(tx, q.Device)
		if d == nil {
			return nil
		}
		cb := d.Bucket([]byte(q.Channel))
		if cb == nil {
			return nil
		}
		c := cb.Cursor()
		start := q.After.key()
		k, v := c.Seek(start)
		if k != nil && string(k) == string(start) {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			if len(v) < 8 {
				return fmt.Errorf("record %x shorter than its time stamp", k)
			}
			at := int64(binary.BigEndian.Uint64(v))
			if at < from {
				continue // checked before the copy: a time query scans, it does not copy
			}
			r := Record{
				Device: q.Device, Channel: q.Channel, Cursor: cursorOf(k),
				BoxTime: time.Unix(0, at).UTC(),
				Data:    append([]byte(nil), v[8:]...),
			}
			if !fn(r) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vitals: history of %s/%s: %w", q.Device, q.Channel, err)
	}
	return nil
}
