package transfer

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/wait"
)

// TestDeadLetterRetriedAfterTheHubRaisedItsLimit provokes dead letters the way a hub
// really refuses instances for good: they exceed its size limit. The box must list
// them, block their study while a small study goes on, and, once the hub's operator
// raised the limit and the box's operator retried, deliver the study whole. A retry
// while the cause persists must dead-letter the instance again, not lose it.
func TestDeadLetterRetriedAfterTheHubRaisedItsLimit(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	hub.stop()
	hub.cfg.MaxInstanceSize = 16 << 10
	hub.start()
	box := newBox(t, p.enroll(t, "AMB-0011"), ForwarderConfig{HubURL: hub.url(), RetryMax: time.Second})
	big := box.queue(pacstest.StudySpec{StudyUID: uid(1101), Instances: 3, Rows: 128, Columns: 128, Seed: 11}, "CT1")
	small := box.queue(pacstest.StudySpec{StudyUID: uid(1102), Instances: 2, Rows: 32, Columns: 32, Seed: 12}, "CT1")
	if big[0].Size <= hub.cfg.MaxInstanceSize || small[0].Size > hub.cfg.MaxInstanceSize {
		t.Fatalf("instance sizes %d and %d do not straddle the hub's limit %d", big[0].Size, small[0].Size, hub.cfg.MaxInstanceSize)
	}
	box.start()

	wait.For(t, 30*time.Second, "the big study's instances dead-lettered", func() bool { return len(deadLetters(t, box)) == len(big) })
	wait.For(t, 30*time.Second, "the small study acknowledged", func() bool { return box.queueLen() == 1 })
	for _, dl := range deadLetters(t, box) {
		if dl.StudyUID != uid(1101) || !strings.Contains(dl.Reason, "Upload-Length") || dl.At.IsZero() {
			t.Fatalf("dead letter %+v: want the big study's instance refused for its Upload-Length", dl)
		}
	}
	wait.For(t, 10*time.Second, "the big study blocked", func() bool {
		p := boxStudy(box, uid(1101))
		return p != nil && p.State == "blocked" && p.InstancesDead == len(big)
	})

	// Retried while the hub still refuses it, the instance comes back with a new time.
	first := deadLetters(t, box)[0]
	if err := box.fwd.Retry(first.SOPInstanceUID); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "the instance dead-lettered again", func() bool {
		dls := deadLetters(t, box)
		i := slices.IndexFunc(dls, func(d DeadLetter) bool { return d.SOPInstanceUID == first.SOPInstanceUID })
		return i >= 0 && dls[i].At.After(first.At)
	})

	hub.stop()
	hub.cfg.MaxInstanceSize = 0
	hub.start()
	for _, dl := range deadLetters(t, box) {
		if err := box.fwd.Retry(dl.SOPInstanceUID); err != nil {
			t.Fatalf("retry %s: %v", dl.SOPInstanceUID, err)
		}
	}
	if err := box.fwd.Retry(first.SOPInstanceUID); !errors.Is(err, ErrNotDeadLettered) {
		t.Fatalf("second retry of %s: %v, want ErrNotDeadLettered", first.SOPInstanceUID, err)
	}
	wait.For(t, 30*time.Second, "the retried study acknowledged", func() bool { return box.queueLen() == 0 })
	checkArchived(t, hub, append(big, small...))
	if dls := deadLetters(t, box); len(dls) != 0 {
		t.Fatalf("dead letters left after the retry: %+v", dls)
	}
	if got := box.rel.list(); len(got) != len(big)+len(small) {
		t.Fatalf("spool told about %d forwarded instances, want %d", len(got), len(big)+len(small))
	}
}

func TestRetryOfAnInstanceNotDeadLettered(t *testing.T) {
	p := newPKI(t)
	box := newBox(t, p.enroll(t, "AMB-0012"), ForwarderConfig{HubURL: "https://127.0.0.1:9"})
	box.start()
	if err := box.fwd.Retry(uid(1201)); !errors.Is(err, ErrNotDeadLettered) {
		t.Fatalf("retry of an unknown instance: %v, want ErrNotDeadLettered", err)
	}
}

func deadLetters(t *testing.T, box *testBox) []DeadLetter {
	t.Helper()
	dls, err := box.fwd.DeadLetters()
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

func boxStudy(box *testBox, studyUID string) *StudyProgress {
	for _, s := range box.fwd.Status().Studies {
		if s.StudyUID == studyUID {
			return &s
		}
	}
	return nil
}
