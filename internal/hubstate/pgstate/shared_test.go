package pgstate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/internal/hubstate"
)

// TestSharedAuthority: the first hub's authority is adopted; the same one is
// accepted again, from another hub too; another is refused, and of two hubs with
// different authorities starting together on an empty database exactly one wins.
func TestSharedAuthority(t *testing.T) {
	fresh := databases(t)
	dsn := fresh(t)
	a, b := openTwo(t, dsn)
	if err := a.AdoptAuthority(bg, "PIN-A"); err != nil {
		t.Fatalf("first hub: %v", err)
	}
	if err := b.AdoptAuthority(bg, "PIN-A"); err != nil {
		t.Fatalf("second hub with the same authority: %v", err)
	}
	err := b.AdoptAuthority(bg, "PIN-B")
	if !errors.Is(err, hubstate.ErrOtherAuthority) || !strings.Contains(err.Error(), "ca.key") {
		t.Fatalf("a hub with another authority: %v, want ErrOtherAuthority telling what to copy", err)
	}

	a, b = openTwo(t, fresh(t))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*Store{a, b} {
		wg.Go(func() { errs[i] = s.AdoptAuthority(bg, fmt.Sprintf("PIN-%d", i)) })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("two authorities at once: %v and %v, want exactly one adopted", errs[0], errs[1])
	}
}

// TestSharedAuditTrail: lines from two hubs come back in order, byte for byte, and
// the database refuses to change, remove or truncate them.
func TestSharedAuditTrail(t *testing.T) {
	a, b := openTwo(t, databases(t)(t))
	lines := []string{
		`{"time":"2026-03-01T08:00:00.123456Z","event":"device.revoked","host":"hub-a","device":"AMB-1"}`,
		`{"event":"enrol.code_issued","time":"2026-03-01T08:00:01Z","host":"hub-b", "device":"AMB-2"}`,
	}
	if err := a.AppendAudit(bg, "device.revoked", []byte(lines[0])); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudit(bg, "enrol.code_issued", []byte(lines[1])); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendAudit(bg, "bad", []byte(`not json`)); err == nil {
		t.Fatal("appended a line that is not JSON")
	}
	got, err := b.AuditTrail(bg, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq >= got[1].Seq {
		t.Fatalf("trail: %+v, want two lines in order", got)
	}
	for i, l := range got {
		if string(l.Line) != lines[i] {
			t.Errorf("line %d came back as %s, want %s", i, l.Line, lines[i])
		}
	}
	if got[0].Event != "device.revoked" || got[0].Host != "hub-a" || got[0].Time.Nanosecond() != 123456000 {
		t.Errorf("first line's columns: %+v", got[0])
	}
	if rest, err := a.AuditTrail(bg, got[0].Seq, 10); err != nil || len(rest) != 1 || rest[0].Event != "enrol.code_issued" {
		t.Fatalf("trail after the first line: %+v, %v", rest, err)
	}
	for _, sql := range []string{`UPDATE audit_trail SET event = 'nothing'`, `DELETE FROM audit_trail`, `TRUNCATE audit_trail`} {
		if _, err := a.pool.Exec(bg, sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the database to refuse it", sql, err)
		}
	}
	if after, _ := a.AuditTrail(bg, 0, 10); len(after) != 2 {
		t.Fatalf("trail after the refused changes: %d lines", len(after))
	}
}

// TestPing: a live database answers; a ping that cannot be made says where it went
// (the hub process test stops the database itself).
func TestPing(t *testing.T) {
	s, _ := openTwo(t, databases(t)(t))
	if err := s.Ping(bg); err != nil {
		t.Fatalf("ping: %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), s.Where()) {
		t.Fatalf("ping with an ended context: %v, want an error naming %s", err, s.Where())
	}
}

func openTwo(t *testing.T, dsn string) (*Store, *Store) {
	t.Helper()
	var out [2]*Store
	for i := range out {
		s, err := Open(bg, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out[0], out[1]
}

// archived archives one owed instance of AMB-1 through s, as a hub's ingest does.
func archived(t *testing.T, s *Store, id, sop string) {
	t.Helper()
	u := hubstate.Upload{ID: id, Device: "AMB-1", SOPInstanceUID: sop, StudyUID: "1.2.3", Length: 4, SHA256: "sha-" + id}
	if _, err := s.CreateUpload(bg, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdvanceUpload(bg, id, 0, 4); err != nil {
		t.Fatal(err)
	}
	inst := hubstate.Instance{SOPInstanceUID: sop, StudyUID: "1.2.3", Device: "AMB-1", Size: 4, SHA256: u.SHA256, Path: "/archive/" + sop}
	if _, err := s.ArchiveInstance(bg, id, inst, true); err != nil {
		t.Fatal(err)
	}
}

// dueSOPs lists the SOP Instance UIDs s offers for delivery, and how many it owes.
func dueSOPs(t *testing.T, s *Store) ([]string, int) {
	t.Helper()
	due, pending, err := s.DueDeliveries(bg, time.Now(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var sops []string
	for _, d := range due {
		sops = append(sops, d.SOPInstanceUID)
	}
	return sops, pending
}

// TestDeliveriesStayWithTheirArchive: each hub is offered the deliveries of the files
// it archived, and of instances in no archive, never another hub's; a store without
// an archive (one hub, or one machine holding every file) is offered all.
func TestDeliveriesStayWithTheirArchive(t *testing.T) {
	plain, other := openTwo(t, databases(t)(t))
	a, b := plain.InArchive("hub-a:/var/lib/lifeline/hub/archive"), other.InArchive("hub-b:/var/lib/lifeline/hub/archive")
	archived(t, a, "ua", "1.2.3.1")
	archived(t, b, "ub", "1.2.3.2")
	for _, c := range []struct {
		name    string
		s       *Store
		want    []string
		pending int
	}{{"hub A", a, []string{"1.2.3.1"}, 1}, {"hub B", b, []string{"1.2.3.2"}, 1}, {"no archive", plain, []string{"1.2.3.1", "1.2.3.2"}, 2}} {
		if got, pending := dueSOPs(t, c.s); !slices.Equal(got, c.want) || pending != c.pending {
			t.Errorf("%s is offered %v of %d owed, want %v of %d", c.name, got, pending, c.want, c.pending)
		}
	}
	if inst, err := b.Instance(bg, "1.2.3.1"); err != nil || inst.Path != "/archive/1.2.3.1" {
		t.Fatalf("hub B reads hub A's instance: %+v, %v", inst, err)
	}
}

// TestAuditFromInsideTransactions: a hub audits an enrolment from inside RedeemCode
// (its issue function), while that transaction holds a connection. More enrolments at
// once than the pool has connections must all be audited and done, not wait for a
// connection that the waiting transactions themselves hold (as `make bench-hub`
// once found).
func TestAuditFromInsideTransactions(t *testing.T) {
	s, err := Open(bg, databases(t)(t)+"&pool_max_conns=2")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 6
	expires := time.Now().Add(time.Hour)
	for i := range n {
		if err := s.IssueCode(bg, hubstate.EnrolmentCode{Hash: fmt.Sprint("c", i), Device: fmt.Sprint("AMB-", i), Expires: expires}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(bg, 10*time.Second)
			defer cancel()
			_, errs[i] = s.RedeemCode(ctx, fmt.Sprint("c", i), time.Now(), func(id string) (hubstate.Certificate, error) {
				time.Sleep(50 * time.Millisecond) // signing, as the hub does, while others queue
				line := fmt.Sprintf(`{"time":%q,"event":"enrol.accepted","device":%q}`, time.Now().UTC().Format(time.RFC3339Nano), id)
				actx, acancel := context.WithTimeout(ctx, 3*time.Second)
				defer acancel()
				if err := s.AppendAudit(actx, "enrol.accepted", []byte(line)); err != nil {
					return hubstate.Certificate{}, err
				}
				return hubstate.Certificate{Serial: id, NotAfter: expires}, nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("enrolment %d: %v", i, err)
		}
	}
	if trail, err := s.AuditTrail(bg, 0, 100); err != nil || len(trail) != n {
		t.Fatalf("trail after %d enrolments: %d lines, %v", n, len(trail), err)
	}
}

// TestBoxReportsSharedByHubs: a box's report kept by one hub is read by the other;
// its next report, at whichever hub, replaces it, and an older one arriving late
// does not.
func TestBoxReportsSharedByHubs(t *testing.T) {
	a, b := openTwo(t, databases(t)(t))
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	put := func(s *Store, device, hub string, when time.Time, fix string) {
		t.Helper()
		r := hubstate.BoxReport{Device: device, Hub: hub, At: when, Report: []byte(`{"fix":"` + fix + `"}`)}
		if err := s.PutBoxReport(bg, r); err != nil {
			t.Fatal(err)
		}
	}
	put(a, "AMB-2", "hub-a", at, "fixed")
	put(a, "AMB-1", "hub-a", at, "fixed")
	put(b, "AMB-1", "hub-b", at.Add(2*time.Second), "lost")
	put(a, "AMB-1", "hub-a", at.Add(time.Second), "searching") // older, late
	got, err := b.BoxReports(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Device != "AMB-1" || got[1].Device != "AMB-2" {
		t.Fatalf("reports: %+v, want AMB-1 and AMB-2", got)
	}
	if r := got[0]; r.Hub != "hub-b" || !r.At.Equal(at.Add(2*time.Second)) || string(r.Report) != `{"fix":"lost"}` {
		t.Fatalf("AMB-1's report: %+v %s, want hub B's latest", r, r.Report)
	}
	if r := got[1]; r.Hub != "hub-a" || string(r.Report) != `{"fix":"fixed"}` {
		t.Fatalf("AMB-2's report: %+v %s", r, r.Report)
	}
}

// TestLiveSessionsMarkedByHubs: the hub that marks a box live is where it is, with
// its viewers' address; a box that moved is where the later mark says; an unmarked
// box is nowhere; the list holds the marks since a time.
func TestLiveSessionsMarkedByHubs(t *testing.T) {
	a, b := openTwo(t, databases(t)(t))
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	const urlA, urlB = "https://hub-a.example:8444", "https://hub-b.example:8444"
	if err := a.MarkLive(bg, "hub-a", urlA, []string{"AMB-1", "AMB-2"}, at); err != nil {
		t.Fatal(err)
	}
	if err := b.MarkLive(bg, "hub-b", urlB, []string{"AMB-2"}, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkLive(bg, "hub-a", urlA, []string{"AMB-1"}, at.Add(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	for device, want := range map[string]string{"AMB-1": "hub-a", "AMB-2": "hub-b"} {
		if l, err := b.LiveAt(bg, device); err != nil || l.Hub != want || l.Device != device {
			t.Errorf("%s is live at %+v (%v), want %s", device, l, err, want)
		}
	}
	if l, _ := a.LiveAt(bg, "AMB-1"); l.Hub != "hub-a" || l.ViewerURL != urlA || !l.At.Equal(at.Add(500*time.Millisecond)) {
		t.Errorf("AMB-1's mark: %+v, want hub A's latest, with its viewers' address", l)
	}
	if l, _ := a.LiveAt(bg, "AMB-2"); l.ViewerURL != urlB {
		t.Errorf("AMB-2's mark: %+v, want hub B's viewers' address", l)
	}
	if _, err := a.LiveAt(bg, "AMB-9"); !errors.Is(err, hubstate.ErrNotFound) {
		t.Errorf("an unmarked box: %v, want ErrNotFound", err)
	}
	list, err := b.LiveSessions(bg, at.Add(600*time.Millisecond))
	if err != nil || len(list) != 1 || list[0].Device != "AMB-2" || list[0].Hub != "hub-b" {
		t.Errorf("the marks since %v: %+v, %v; want AMB-2's at hub B only", at.Add(600*time.Millisecond), list, err)
	}
	if list, err := b.LiveSessions(bg, at); err != nil || len(list) != 2 || list[0].Device != "AMB-1" {
		t.Errorf("every mark: %+v, %v; want AMB-1 and AMB-2 in order", list, err)
	}
}

// TestSharedViewerKey: no key is recorded until a hub records its own; the same is
// accepted from another hub; another is refused, naming the file to copy.
func TestSharedViewerKey(t *testing.T) {
	a, b := openTwo(t, databases(t)(t))
	if _, err := a.ViewerKey(bg); !errors.Is(err, hubstate.ErrNotFound) {
		t.Fatalf("the viewer key of a new state: %v, want ErrNotFound", err)
	}
	if err := a.AdoptViewerKey(bg, "KEY-A"); err != nil {
		t.Fatalf("first hub: %v", err)
	}
	if err := b.AdoptViewerKey(bg, "KEY-A"); err != nil {
		t.Fatalf("second hub with the same key: %v", err)
	}
	if f, err := b.ViewerKey(bg); err != nil || f != "KEY-A" {
		t.Fatalf("the recorded key: %q, %v", f, err)
	}
	err := b.AdoptViewerKey(bg, "KEY-B")
	if !errors.Is(err, hubstate.ErrOtherViewerKey) || !strings.Contains(err.Error(), "viewer-token.key") {
		t.Fatalf("a hub with another key: %v, want ErrOtherViewerKey naming the file to copy", err)
	}
}
