package spool

import (
	"time"

	"lifeline/internal/durable"
)

// CompleteNow declares a study complete at once, without waiting for the quiet
// period, and queues its pending instances for forwarding; it reports whether it
// queued any. It is for studies the box made itself and knows to be whole, such as a
// 12-lead ECG acquired on a doctor's request, which must not wait for a modality that
// will never send more.
func (s *Spool) CompleteNow(studyUID string) (bool, error) {
	var queued *Study
	err := s.store.Update(func(tx *durable.Tx) error {
		var err error
		queued, err = s.queueStudyTx(tx, studyUID, time.Now(), true)
		return err
	})
	if err != nil || queued == nil {
		return false, err
	}
	s.log.Info("study made on the box; queued for forwarding at once", "study_uid", studyUID, "instances", len(queued.Instances), "modality", queued.Modality)
	return true, nil
}
