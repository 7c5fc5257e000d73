package transfer

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"lifeline/dicom/dimse"
	"lifeline/dicom/pacs"
	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/durable"
	"lifeline/internal/wait"
)

func dimseOptions() dimse.SCUOptions { return dimse.SCUOptions{Timeout: 5 * time.Second} }

func TestForwardStudyIntoArchive(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	box := newBox(t, p.enroll(t, "AMB-0001"), ForwarderConfig{HubURL: hub.url(), ChunkSize: 32 << 10})
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(1), Instances: 6, Rows: 128, Columns: 128, Seed: 1}, "CT1")
	box.start()
	wait.For(t, 30*time.Second, "study acknowledged", func() bool { return box.queueLen() == 0 })

	checkArchived(t, hub, insts)
	if got := box.rel.list(); len(got) != len(insts) {
		t.Fatalf("spool told about %d instances, want %d", len(got), len(insts))
	}
	st, err := hub.ingest.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Studies) != 1 || st.Studies[0].Stored != 6 || st.Studies[0].Delivered != 6 || st.Studies[0].VerifiedAt.IsZero() ||
		st.Studies[0].DeliveredAt.IsZero() || st.Studies[0].Device != "AMB-0001" {
		t.Fatalf("hub status: %+v", st.Studies)
	}
	if st.BytesReceived != sumSizes(insts) {
		t.Fatalf("hub appended %d bytes for %d bytes of instances", st.BytesReceived, sumSizes(insts))
	}
	// Uncompressed pixels go zstd-compressed on the wire.
	fs := box.fwd.Status()
	if fs.WireBytes >= sumSizes(insts)*9/10 || st.WireBytes != fs.WireBytes {
		t.Fatalf("wire bytes: box %d, hub %d, for %d bytes of instances", fs.WireBytes, st.WireBytes, sumSizes(insts))
	}
	if fs.RestartsFromZero != 0 || fs.ResentBytes != 0 {
		t.Fatalf("clean run re-sent %d bytes, %d restarts", fs.ResentBytes, fs.RestartsFromZero)
	}
	for _, ev := range []string{"study.received", "study.verified", "study.delivered"} {
		if hub.audit.Count(ev) != 1 {
			t.Errorf("audit event %s recorded %d times", ev, hub.audit.Count(ev))
		}
	}
	if hub.audit.Count("instance.verified") != 6 {
		t.Errorf("instance.verified recorded %d times", hub.audit.Count("instance.verified"))
	}

	// The same study queued again (a box restored from backup) is confirmed by its
	// manifest alone: nothing is uploaded and nothing stored twice.
	box.queue(pacstest.StudySpec{StudyUID: uid(1), Instances: 6, Rows: 128, Columns: 128, Seed: 1}, "CT1")
	box.fwd.store.Update(func(tx *durable.Tx) error { return tx.DeleteBucket([]byte(bucketBoxInstances)) })
	wait.For(t, 30*time.Second, "repeat study acknowledged", func() bool { return box.queueLen() == 0 })
	if st2, _ := hub.ingest.Status(); st2.BytesReceived != st.BytesReceived {
		t.Fatalf("repeat of a forwarded study uploaded %d more bytes", st2.BytesReceived-st.BytesReceived)
	}
}

// TestResumeAcrossHubAndBoxRestarts cuts the hub off mid-transfer and restarts the
// forwarder from its store: every upload continues from the hub's offset.
func TestResumeAcrossHubAndBoxRestarts(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	// 4 instances of ~2 MiB in 64 KiB chunks at 40 Mbit/s: the run takes about
	// 1.6 s, long enough to cut it twice.
	cfg := ForwarderConfig{HubURL: hub.url(), ChunkSize: 64 << 10, BandwidthCap: 40_000_000, NoCompression: true,
		RetryMin: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond, IdleTimeout: 2 * time.Second}
	box := newBox(t, p.enroll(t, "AMB-0002"), cfg)
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(2), Instances: 4, Rows: 1024, Columns: 1024, Seed: 2}, "CT1")
	total := sumSizes(insts)
	box.start()

	received := hub.appendedTotal
	wait.For(t, 30*time.Second, "a quarter on the hub", func() bool { return received() > total/4 })
	hub.stop() // the hub crashes mid-upload
	wait.For(t, 30*time.Second, "the box to find the hub down", func() bool { return box.fwd.Status().State == "hub unreachable" })
	box.stop() // the box powers off while the hub is down
	hub.start()
	before := received()
	box.start()
	wait.For(t, 30*time.Second, "half on the hub", func() bool { return received() > total/2 })
	hub.stop()
	hub.start()
	wait.For(t, 60*time.Second, "study acknowledged", func() bool { return box.queueLen() == 0 })

	checkArchived(t, hub, insts)
	// Each byte was appended once across all the restarts: no upload went back to 0.
	if got := received(); got != total {
		t.Fatalf("hub appended %d bytes for %d bytes of instances", got, total)
	}
	if before == 0 {
		t.Fatal("hub restart lost the bytes it had acknowledged")
	}
	fs := box.fwd.Status()
	if fs.RestartsFromZero != 0 {
		t.Fatalf("%d uploads restarted from byte 0", fs.RestartsFromZero)
	}
	// At most the chunks in flight at the second cut are sent again: one per instance,
	// with the small tail that rides with an instance's last chunk.
	if limit := 4 * (int64(cfg.ChunkSize) + box.fwd.tailFold()); fs.ResentBytes > limit {
		t.Fatalf("re-sent %d bytes after one cut, want at most %d", fs.ResentBytes, limit)
	}
	// A reconnect resumes the TLS session instead of a full handshake. Force one: drop
	// the idle connection and ask the hub something.
	box.fwd.client.pool.retireAll()
	if resp, err := box.fwd.client.http.Head(box.fwd.client.base() + UploadsPath + "/none"); err != nil {
		t.Fatalf("reconnect: %v", err)
	} else {
		resp.Body.Close()
	}
	if s := hub.server.Stats(); s.Resumed == 0 {
		t.Errorf("no connection resumed its TLS session: %+v", s)
	}
	t.Logf("re-sent %d bytes; hub connections %+v", fs.ResentBytes, hub.server.Stats())
}

func TestCorruptChunkIsResentNotStored(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	box := newBox(t, p.enroll(t, "AMB-0003"), ForwarderConfig{HubURL: hub.url(), ChunkSize: 16 << 10})
	flipped := 0
	box.corrupt = func(sop string, offset int64, body []byte) {
		if offset == 16<<10 && flipped == 0 { // the last chunk, which carries the small tail too
			body[len(body)/2] ^= 0x10
			flipped++
		}
	}
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(3), Instances: 1, Rows: 128, Columns: 128, Seed: 3}, "CT1")
	box.start()
	wait.For(t, 30*time.Second, "study acknowledged", func() bool { return box.queueLen() == 0 })
	checkArchived(t, hub, insts)
	st, _ := hub.ingest.Status()
	if flipped != 1 || st.CorruptChunks != 1 {
		t.Fatalf("flipped %d chunks, hub refused %d", flipped, st.CorruptChunks)
	}
	if st.BytesReceived != insts[0].Size {
		t.Fatalf("hub appended %d bytes for a %d-byte instance", st.BytesReceived, insts[0].Size)
	}
}

func TestRevokedAndUnauthenticatedBoxesRefused(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	tlsConf := p.enroll(t, "AMB-0004")
	if err := p.reg.Revoke(context.Background(), "AMB-0004"); err != nil {
		t.Fatal(err)
	}
	box := newBox(t, tlsConf, ForwarderConfig{HubURL: hub.url(), RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	box.queue(pacstest.StudySpec{StudyUID: uid(4), Instances: 2, Seed: 4}, "CT1")
	box.start()
	wait.For(t, 20*time.Second, "forwarder sees the refusal", func() bool { return box.fwd.Status().State == "refused by hub" })
	if !strings.Contains(box.fwd.Status().LastError, "revoked") {
		t.Fatalf("last error %q does not say revoked", box.fwd.Status().LastError)
	}
	if hub.audit.Count("transfer.refused") == 0 {
		t.Fatal("refusal not audited")
	}
	// A client with the hub's root but no certificate of its own gets no further.
	anon := tlsConf.Clone()
	anon.Certificates = nil
	c, err := newClient(hub.url(), anon, 2*time.Second, 1, &limiter{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	_, err = c.putManifest(context.Background(), Manifest{StudyUID: uid(4)})
	if he, ok := asHubError(err); !ok || he.status != 403 {
		t.Fatalf("unauthenticated manifest: %v", err)
	}
	if st, _ := hub.ingest.Status(); st.BytesReceived != 0 || len(st.Studies) != 0 {
		t.Fatalf("hub took data from refused boxes: %+v", st)
	}
	if box.queueLen() != 1 {
		t.Fatal("refused study left the box's queue")
	}
}

func TestPriorityStudiesGoFirst(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	box := newBox(t, p.enroll(t, "AMB-0005"), ForwarderConfig{HubURL: hub.url(), Parallel: 1,
		Priorities: []PriorityRule{{Modality: "ECG", Priority: PriorityStat}, {CallingAE: "ERCT", Priority: PriorityUrgent}}})
	routine := box.queue(pacstest.StudySpec{StudyUID: uid(50), Instances: 3, Seed: 50}, "WARDCT")
	urgent := box.queue(pacstest.StudySpec{StudyUID: uid(51), Instances: 3, Seed: 51}, "ERCT")
	ecg := box.queue(pacstest.StudySpec{StudyUID: uid(52), Instances: 3, Modality: "ECG", Seed: 52}, "AMB")
	box.start()
	wait.For(t, 30*time.Second, "all studies acknowledged", func() bool { return box.queueLen() == 0 })
	var want []string
	for _, set := range [][]pacstest.Instance{ecg, urgent, routine} {
		for _, in := range set {
			want = append(want, in.SOPInstanceUID)
		}
	}
	if got := box.rel.list(); !slices.Equal(got, want) {
		t.Fatalf("forwarded in order\n%v\nwant\n%v", got, want)
	}
}

func TestInvalidInstanceIsDeadLettered(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	box := newBox(t, p.enroll(t, "AMB-0006"), ForwarderConfig{HubURL: hub.url()})
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(6), Instances: 2, Seed: 6}, "CT1")
	// The spool's record claims a different SOP Instance UID than the file holds.
	raw, _ := box.store.Queue("study-ready").Peek(1)
	fixed := strings.Replace(string(raw[0].Value), insts[1].SOPInstanceUID+`"`, insts[1].SOPInstanceUID+`9"`, 1)
	box.store.Queue("study-ready").Ack(raw[0].Seq)
	box.store.Queue("study-ready").Push([]byte(fixed))
	good := box.queue(pacstest.StudySpec{StudyUID: uid(7), Instances: 1, Seed: 7}, "CT1")
	box.start()
	wait.For(t, 30*time.Second, "dead letter", func() bool { return len(box.fwd.Status().DeadLetters) == 1 })
	wait.For(t, 30*time.Second, "good study acknowledged", func() bool { return box.queueLen() == 1 })
	// The blocked study's valid instance travels on its own schedule; the good study's
	// acknowledgement says nothing about it.
	wait.For(t, 30*time.Second, "valid instance of the blocked study archived", func() bool {
		_, err := hub.ingest.Instance(insts[0].SOPInstanceUID)
		return err == nil
	})
	checkArchived(t, hub, []pacstest.Instance{insts[0], good[0]})
	dl := box.fwd.Status().DeadLetters[0]
	if dl.SOPInstanceUID != insts[1].SOPInstanceUID+"9" || !strings.Contains(dl.Reason, "SOP Instance UID") {
		t.Fatalf("dead letter %+v", dl)
	}
	var blocked *StudyProgress
	wait.For(t, 10*time.Second, "study blocked", func() bool {
		for _, s := range box.fwd.Status().Studies {
			if s.StudyUID == uid(6) {
				blocked = &s
			}
		}
		return blocked != nil && blocked.State == "blocked"
	})
	if blocked == nil || blocked.State != "blocked" || blocked.InstancesDead != 1 || blocked.InstancesDone != 1 {
		t.Fatalf("blocked study status %+v", blocked)
	}
	if hub.audit.Count("instance.refused") != 1 {
		t.Fatal("refused instance not audited")
	}
}

// TestDeliveryToOrthancSurvivesPACSOutage sends a study while the PACS is down: the
// hub keeps it, shows the failure, and delivers once Orthanc is up, each instance
// exactly once and byte for byte.
func TestDeliveryToOrthancSurvivesPACSOutage(t *testing.T) {
	for _, via := range []string{"stow", "cstore"} {
		t.Run(via, func(t *testing.T) {
			ports := pacstest.ReservePorts(t)
			var d pacs.Deliverer
			if via == "stow" {
				d = pacs.NewSTOW(ports.STOWURL(), nil)
			} else {
				var err error
				if d, err = pacs.NewCStore(ports.DIMSE(), "LIFELINEHUB", dimseOptions()); err != nil {
					t.Fatal(err)
				}
			}
			p := newPKI(t)
			hub := startHub(t, p, d)
			box := newBox(t, p.enroll(t, "AMB-0007"), ForwarderConfig{HubURL: hub.url()})
			insts := box.queue(pacstest.StudySpec{StudyUID: uid(8), Instances: 5, Rows: 96, Columns: 96, Seed: 8}, "CT1")
			box.start()
			wait.For(t, 30*time.Second, "study acknowledged by the hub", func() bool { return box.queueLen() == 0 })
			wait.For(t, 10*time.Second, "delivery failure visible", func() bool {
				st, _ := hub.ingest.Status()
				return st.PendingDeliveries == 5 && st.LastDeliveryError != "" && st.Studies[0].LastError != ""
			})
			o := pacstest.StartOrthancOn(t, ports)
			wait.For(t, 30*time.Second, "study delivered", func() bool {
				st, _ := hub.ingest.Status()
				return st.PendingDeliveries == 0 && !st.Studies[0].DeliveredAt.IsZero()
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			stored, err := o.Instances(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(stored) != len(insts) {
				t.Fatalf("Orthanc holds %d instances, want %d", len(stored), len(insts))
			}
			for _, in := range insts {
				i := slices.IndexFunc(stored, func(s pacstest.StoredInstance) bool { return s.SOPInstanceUID == in.SOPInstanceUID })
				if i < 0 || stored[i].DatasetMD5 != in.DatasetMD5 || (via == "stow" && stored[i].MD5 != in.MD5) {
					t.Fatalf("instance %s in Orthanc: %+v, sent MD5 %s", in.SOPInstanceUID, stored, in.MD5)
				}
				rec, _ := hub.ingest.Instance(in.SOPInstanceUID)
				if rec.Attempts < 2 || rec.DeliveredAt.IsZero() {
					t.Fatalf("instance %s delivered after %d attempts at %v", in.SOPInstanceUID, rec.Attempts, rec.DeliveredAt)
				}
			}
			if hub.audit.Count("study.delivered") != 1 {
				t.Fatalf("study.delivered audited %d times", hub.audit.Count("study.delivered"))
			}
		})
	}
}
