package vitals

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// History API bounds: one response holds at most this many messages and roughly this
// many bytes of them; "more" says when the client should ask again from "next".
const (
	historyDefaultLimit = 1000
	historyMaxLimit     = 10000
	historyMaxBytes     = 4 << 20
)

// HistoryPage is the JSON body of a history response.
type HistoryPage struct {
	V       int    `json:"v"`
	Device  string `json:"device"`
	Channel string `json:"channel"`
	// Epoch is the box's current epoch; messages of earlier epochs carry their own.
	Epoch    string            `json:"epoch,omitempty"`
	Messages []json.RawMessage `json:"messages"`
	// Next is the cursor to pass as "after" for the following page; unchanged when
	// there was nothing new.
	Next string `json:"next"`
	More bool   `json:"more"`
}

// historyQuery is a parsed request.
type historyQuery struct {
	device, channel string
	after           Cursor
	from            time.Time
	limit           int
}

// HistoryHandler serves GET …/{device}/vitals: the stored messages of one device, in
// order, exactly as the box sent them. Mount it on a pattern naming {device}, e.g.
// "GET /api/v1/devices/{device}/vitals", behind the viewer authorisation. Parameters:
//
//	channel  "vitals" (default: numerics, alarms, device events) or "vitals-wave"
//	since    a seq of the box's current epoch: only messages after it
//	after    a cursor from a previous page's "next" (takes precedence over since)
//	from     RFC 3339 time: only messages whose box_time is at or after it
//	limit    at most this many messages (default 1000, at most 10000)
func (a *Archive) HistoryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		q, err := a.parseHistoryQuery(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		page, err := a.historyPage(q)
		if err != nil {
			a.log.Error("vitals history not read", "device", q.device, "err", err)
			http.Error(w, "vitals history is not readable now", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(page)
	})
}

func (a *Archive) parseHistoryQuery(r *http.Request) (historyQuery, error) {
	q := historyQuery{device: r.PathValue("device"), channel: LabelReliable, limit: historyDefaultLimit}
	if q.device == "" || len(q.device) > maxDevice {
		return q, fmt.Errorf("device must be 1 to %d bytes, named in the path", maxDevice)
	}
	v := r.URL.Query()
	switch c := v.Get("channel"); c {
	case "", LabelReliable:
	case LabelWave:
		q.channel = LabelWave
	default:
		return q, fmt.Errorf("channel %q: want %q or %q", clip(c, 32), LabelReliable, LabelWave)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > historyMaxLimit {
			return q, fmt.Errorf("limit %q: want 1 to %d", clip(s, 32), historyMaxLimit)
		}
		q.limit = n
	}
	if s := v.Get("from"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("from %q: want an RFC 3339 time", clip(s, 40))
		}
		q.from = t
	}
	switch {
	case v.Get("after") != "":
		c, err := ParseCursor(v.Get("after"))
		if err != nil {
			return q, err
		}
		q.after = c
	case v.Get("since") != "":
		seq, err := strconv.ParseUint(v.Get("since"), 10, 64)
		if err != nil || seq > MaxSeq {
			return q, fmt.Errorf("since %q: want a sequence number", clip(v.Get("since"), 32))
		}
		st, err := a.cfg.History.Stream(q.device)
		if err != nil {
			return q, err
		}
		q.after = Cursor{EpochN: st.EpochN, Seq: seq}
	}
	return q, nil
}

func (a *Archive) historyPage(q historyQuery) (HistoryPage, error) {
	st, err := a.cfg.History.Stream(q.device)
	if err != nil {
		return HistoryPage{}, err
	}
	page := HistoryPage{V: Version, Device: q.device, Channel: q.channel, Epoch: st.Epoch,
		Messages: []json.RawMessage{}, Next: q.after.String()}
	size := 0
	hq := HistoryQuery{Device: q.device, Channel: q.channel, After: q.after, From: q.from}
	err = a.cfg.History.Read(hq, func(rec Record) bool {
		if len(page.Messages) >= q.limit || size >= historyMaxBytes {
			page.More = true
			return false
		}
		page.Next = rec.Cursor.String()
		page.Messages = append(page.Messages, rec.Data)
		size += len(rec.Data)
		return true
	})
	return page, err
}
