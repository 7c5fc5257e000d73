package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"lifeline/stream/vitals"
)

// crewDesk is the crew's side of the conversation with the hospital, on the box's
// status page: the hospital's messages with a "read" button, the patient card, and
// 12-lead ECGs acquired on the hospital's request or the crew's.
type crewDesk struct {
	e       *Edge
	jobs    chan ecgJob
	history ecgHistory // the last seconds of every ECG lead, for requests

	mu       sync.Mutex
	messages []crewMessage // the hospital's latest, newest last
	card     *vitals.PatientCard
	// cardWaits is set while the card was saved before the live stream existed (a
	// box not yet enrolled): it goes to the hospital once the stream is built.
	cardWaits bool
	ecgs      []ecgState // latest acquisitions, newest last
}

// crewMessage is a message from the hospital as the crew's page shows it.
type crewMessage struct {
	vitals.Control
	Read bool `json:"read"`
}

// ecgState is one acquisition as the crew's page shows it.
type ecgState struct {
	Ref       uint64    `json:"ref,omitempty"` // the hospital's request; 0 when the crew asked
	From      string    `json:"from,omitempty"`
	State     string    `json:"state"`
	Detail    string    `json:"detail,omitempty"`
	SOP       string    `json:"sop,omitempty"`
	Requested time.Time `json:"requested"`
}

type ecgJob struct {
	ref  uint64
	from string
	at   time.Time
}

// CrewView is the body of GET /api/v1/crew.
type CrewView struct {
	Messages []crewMessage      `json:"messages"`
	Card     vitals.PatientCard `json:"card"`
	ECGs     []ecgState         `json:"ecgs"`
	// Streaming says whether the live stream is configured: without it, nothing the
	// crew enters here reaches the hospital, and the page says so.
	Streaming bool `json:"streaming"`
}

const (
	crewBucket     = "crew"
	crewCardKey    = "card"
	maxECGJobs     = 4 // acquisitions at once, and requests waiting beyond them
	maxCrewECGs    = 10
	ecgAcquireWait = 5 * time.Second // beyond the 10 s, for the last blocks to arrive
)

func newCrewDesk(e *Edge) *crewDesk {
	d := &crewDesk{e: e, jobs: make(chan ecgJob, maxECGJobs)}
	var card vitals.PatientCard
	if err := e.store.GetJSON(crewBucket, crewCardKey, &card); err == nil {
		d.card = &card
	}
	return d
}

// noteControl takes a message from the hospital: guidance for the crew's page (and
// the log, so that nothing a doctor sent is only on a screen nobody looked at), or a
// request the box carries out.
func (d *crewDesk) noteControl(c vitals.Control) {
	d.e.log.Info("message from the hospital", "from", c.From, "type", c.Type, "seq", c.Seq, "text", c.Text)
	if c.Type == vitals.TypeECGRequest {
		d.requestECG(c.Seq, c.From)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.messages = append(d.messages, crewMessage{Control: c})
	if len(d.messages) > maxCrewMessages {
		d.messages = d.messages[len(d.messages)-maxCrewMessages:]
	}
}

// requestECG queues an acquisition; a full queue fails the request at once, in words
// the doctor sees, rather than answering it minutes late.
func (d *crewDesk) requestECG(ref uint64, from string) {
	job := ecgJob{ref: ref, from: from, at: time.Now()}
	d.setECG(ecgState{Ref: ref, From: from, State: vitals.ECGAcquiring, Requested: job.at})
	select {
	case d.jobs <- job:
	default:
		d.finishECG(context.Background(), job, "", "", errors.New("the box is already acquiring several ECGs; ask again in a moment"))
	}
}

func (d *crewDesk) finishECG(ctx context.Context, job ecgJob, sop, study string, err error) {
	if err != nil {
		d.e.log.Warn("12-lead ECG not acquired", "ref", job.ref, "err", err)
		d.report(ctx, job, vitals.ECGFailed, "", "", err.Error())
		return
	}
	d.report(ctx, job, vitals.ECGQueued, sop, study, "")
}

// report shows an acquisition's state on the crew's page and tells the hospital.
func (d *crewDesk) report(ctx context.Context, job ecgJob, state, sop, study, detail string) {
	d.setECG(ecgState{Ref: job.ref, From: job.from, State: state, Detail: detail, SOP: sop, Requested: job.at})
	ls, ok := d.e.stream.get()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg := vitals.Message{Type: vitals.TypeECG, Ref: job.ref, State: state, SOP: sop, Study: study, Detail: clipText(detail, 500)}
	if _, err := ls.outbox.SendCrew(ctx, msg); err != nil {
		d.e.log.Warn("ECG report not sent to the hospital", "state", state, "err", err)
	}
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (d *crewDesk) setECG(s ecgState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.ecgs {
		if d.ecgs[i].Requested.Equal(s.Requested) && d.ecgs[i].Ref == s.Ref {
			d.ecgs[i] = s
			return
		}
	}
	d.ecgs = append(d.ecgs, s)
	if len(d.ecgs) > maxCrewECGs {
		d.ecgs = d.ecgs[len(d.ecgs)-maxCrewECGs:]
	}
}

// view is what the crew's page shows.
func (d *crewDesk) view() CrewView {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := CrewView{Messages: append([]crewMessage{}, d.messages...), ECGs: append([]ecgState{}, d.ecgs...), Streaming: d.e.cfg.Stream.Enabled}
	if d.card != nil {
		v.Card = *d.card
	}
	return v
}

// CrewPath is the crew's API on the box's status server.
const CrewPath = "/api/v1/crew"

// handle mounts the crew's API. Every change is a JSON request checked for same
// origin, like the dead-letter retry: a page from another site must not be able to
// tell the hospital the patient is a STEMI.
func (d *crewDesk) handle(mux *http.ServeMux) {
	mux.HandleFunc("GET "+CrewPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.view())
	})
	protect := http.NewCrossOriginProtection()
	mux.Handle("POST "+CrewPath+"/messages/{seq}/read", protect.Handler(jsonOnly(d.confirmRead)))
	mux.Handle("PUT "+CrewPath+"/card", protect.Handler(jsonOnly(d.saveCard)))
	mux.Handle("POST "+CrewPath+"/ecg", protect.Handler(jsonOnly(func(w http.ResponseWriter, r *http.Request) {
		d.requestECG(0, "crew")
		writeJSON(w, http.StatusAccepted, map[string]string{"state": vitals.ECGAcquiring})
	})))
}

// jsonOnly refuses a change that is not a JSON request: a cross-site form cannot send
// one, and a cross-site fetch cannot without a preflight the box never answers.
func jsonOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "send Content-Type: application/json")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		h(w, r)
	})
}

func (d *crewDesk) confirmRead(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "seq is not a number")
		return
	}
	d.mu.Lock()
	i := slices.IndexFunc(d.messages, func(m crewMessage) bool { return m.Seq == seq })
	d.mu.Unlock()
	if i < 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no message %d from the hospital", seq))
		return
	}
	ls, ok := d.e.stream.get()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "the live stream has not started")
		return
	}
	if err := ls.outbox.ConfirmRead(seq); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	d.mu.Lock()
	for i := range d.messages {
		if d.messages[i].Seq == seq {
			d.messages[i].Read = true
		}
	}
	d.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]uint64{"read": seq})
}

// saveCard keeps the crew's patient card on the box and sends it to the hospital; it
// answers once the card is on the box's disk, so a card the crew saw saved survives a
// power cut and reaches the hospital when the link does.
func (d *crewDesk) saveCard(w http.ResponseWriter, r *http.Request) {
	var card vitals.PatientCard
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&card); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "patient card: "+err.Error())
		return
	}
	if err := card.Check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	card.Updated = time.Now().UTC()
	if err := d.e.store.PutJSON(crewBucket, crewCardKey, &card); err != nil {
		writeError(w, http.StatusInternalServerError, "patient card not saved: "+err.Error())
		return
	}
	d.mu.Lock()
	d.card = &card
	d.mu.Unlock()
	sent := false
	if ls, ok := d.e.stream.get(); ok {
		if _, err := ls.outbox.SendCrew(r.Context(), vitals.Message{Type: vitals.TypePatient, Card: &card}); err != nil {
			writeError(w, http.StatusInternalServerError, "patient card saved on the box but not queued for the hospital: "+err.Error())
			return
		}
		sent = true
	} else {
		d.mu.Lock()
		d.cardWaits = true
		d.mu.Unlock()
	}
	d.e.log.Info("patient card saved by the crew", "suspected", strings.Join(card.Suspected, ","), "triage", card.Triage, "queued_for_hospital", sent)
	writeJSON(w, http.StatusOK, map[string]any{"card": card, "queued_for_hospital": sent})
}

// streamStarted sends a card the crew saved before the live stream existed.
func (d *crewDesk) streamStarted(ctx context.Context, ls *liveStream) {
	d.mu.Lock()
	card, waits := d.card, d.cardWaits
	d.cardWaits = false
	d.mu.Unlock()
	if !waits || card == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := ls.outbox.SendCrew(ctx, vitals.Message{Type: vitals.TypePatient, Card: card}); err != nil {
		d.e.log.Warn("the crew's patient card, saved before the stream started, not queued for the hospital", "err", err)
	}
}
