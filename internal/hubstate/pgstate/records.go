package pgstate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"lifeline/internal/hubstate"
)

// studyLockClass is the first key of the advisory locks taken per Study Instance UID
// (the second is the UID's hash), so that they cannot be mistaken for the migration
// lock or anybody else's.
const studyLockClass = 0x5354 // "ST"

// lockStudies takes, until tx ends, the lock of each study UID given. Every change
// that recomputes a study's milestones holds it, so two hubs completing one study at
// once take turns and exactly one of them announces each milestone. Locks are taken
// in one order (by hash) to keep transactions that need several from deadlocking;
// should two UIDs share a hash, PostgreSQL's deadlock detector and inTx's retry
// settle it.
func lockStudies(ctx context.Context, tx pgx.Tx, studyUIDs ...string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, h)
		FROM (SELECT DISTINCT hashtext(u) AS h FROM unnest($2::text[]) AS u ORDER BY h) AS k`, studyLockClass, studyUIDs)
	if err != nil {
		return fmt.Errorf("lock %d studies: %w", len(studyUIDs), err)
	}
	return nil
}

// heldKey asks for the instance held for one expected instance of a box's study
// record: the archived one with that digest, or that box's quarantined copy of it.
type heldKey struct{ device, sop, sha string }

// heldOf looks up, in tx, the instance held for each key; keys with none are absent
// from the result. Two queries, whatever the number of keys, so that a study of
// hundreds of instances costs no more round trips than one of a single instance.
func heldOf(ctx context.Context, tx pgx.Tx, keys []heldKey) (map[heldKey]hubstate.Instance, error) {
	out := map[heldKey]hubstate.Instance{}
	if len(keys) == 0 {
		return out, nil
	}
	sops := make([]string, len(keys))
	for i, k := range keys {
		sops[i] = k.sop
	}
	rows, err := tx.Query(ctx, `SELECT `+instanceColumns+` FROM instances WHERE sop_instance_uid = ANY($1)`, sops)
	if err != nil {
		return nil, err
	}
	archived, err := collect(rows, scanInstance)
	if err != nil {
		return nil, err
	}
	bySOP := make(map[string]hubstate.Instance, len(archived))
	for _, inst := range archived {
		bySOP[inst.SOPInstanceUID] = inst
	}
	var qSOP, qDevice, qSHA []string
	for _, k := range keys {
		if inst, ok := bySOP[k.sop]; ok && inst.SHA256 == k.sha {
			out[k] = inst
			continue
		}
		qSOP, qDevice, qSHA = append(qSOP, k.sop), append(qDevice, k.device), append(qSHA, k.sha)
	}
	if len(qSOP) == 0 {
		return out, nil
	}
	rows, err = tx.Query(ctx, `SELECT `+quarantineColumns+` FROM quarantine
		WHERE (sop_instance_uid, device, sha256) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))`, qSOP, qDevice, qSHA)
	if err != nil {
		return nil, err
	}
	held, err := collect(rows, scanQuarantined)
	for _, inst := range held {
		out[heldKey{device: inst.Device, sop: inst.SOPInstanceUID, sha: inst.SHA256}] = inst
	}
	return out, err
}

// keysOf are the held instances a study record asks for.
func keysOf(st hubstate.Study) []heldKey {
	keys := make([]heldKey, 0, len(st.Expected))
	for sop, sha := range st.Expected {
		keys = append(keys, heldKey{device: st.Device, sop: sop, sha: sha})
	}
	return keys
}

// lookup gives hubstate's Progress the held instances read beforehand, in the same
// transaction.
func lookup(held map[heldKey]hubstate.Instance, device string) hubstate.Held {
	return func(sop, sha string) (hubstate.Instance, bool, error) {
		inst, ok := held[heldKey{device: device, sop: sop, sha: sha}]
		return inst, ok, nil
	}
}

const studyColumns = `study_uid, device, patient_id, modality, priority, manifest_at, received_at, verified_at, delivered_at`

func scanStudy(row pgx.Row) (hubstate.Study, error) {
	var st hubstate.Study
	var manifest, received, verified, delivered pgtype.Timestamptz
	err := row.Scan(&st.StudyUID, &st.Device, &st.PatientID, &st.Modality, &st.Priority, &manifest, &received, &verified, &delivered)
	st.ManifestAt, st.ReceivedAt, st.VerifiedAt, st.DeliveredAt = tm(manifest), tm(received), tm(verified), tm(delivered)
	st.Expected = map[string]string{}
	return st, err
}

// loadStudies reads the study records that tail (a WHERE, ORDER BY, LIMIT or FOR
// UPDATE clause with args) selects, each with its expected instances, in the order
// tail gives.
func loadStudies(ctx context.Context, tx pgx.Tx, tail string, args ...any) ([]hubstate.Study, error) {
	rows, err := tx.Query(ctx, `SELECT `+studyColumns+` FROM studies `+tail, args...)
	if err != nil {
		return nil, err
	}
	studies, err := collect(rows, scanStudy)
	if err != nil || len(studies) == 0 {
		return studies, err
	}
	uids, devices := make([]string, len(studies)), make([]string, len(studies))
	at := map[[2]string]int{}
	for i, st := range studies {
		uids[i], devices[i] = st.StudyUID, st.Device
		at[[2]string{st.StudyUID, st.Device}] = i
	}
	rows, err = tx.Query(ctx, `SELECT study_uid, device, sop_instance_uid, sha256 FROM study_instances
		WHERE (study_uid, device) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, uids, devices)
	if err != nil {
		return nil, err
	}
	var uid, device, sop, sha string
	_, err = pgx.ForEachRow(rows, []any{&uid, &device, &sop, &sha}, func() error {
		studies[at[[2]string{uid, device}]].Expected[sop] = sha
		return nil
	})
	return studies, err
}

// loadHeld reads the study records tail selects (as loadStudies) and the instances
// held for every one of them.
func loadHeld(ctx context.Context, tx pgx.Tx, tail string, args ...any) ([]hubstate.Study, map[heldKey]hubstate.Instance, error) {
	studies, err := loadStudies(ctx, tx, tail, args...)
	if err != nil {
		return nil, nil, err
	}
	var keys []heldKey
	for _, st := range studies {
		keys = append(keys, keysOf(st)...)
	}
	held, err := heldOf(ctx, tx, keys)
	return studies, held, err
}

// progress recomputes, in tx, the milestones of every box's record of a study and
// stores those that changed; none when no box sent a manifest for it. The caller
// holds the study's lock.
func progress(ctx context.Context, tx pgx.Tx, studyUID string) ([]hubstate.StudyProgress, error) {
	studies, held, err := loadHeld(ctx, tx, `WHERE study_uid = $1 ORDER BY device COLLATE "C"`, studyUID)
	if err != nil {
		return nil, err
	}
	out := make([]hubstate.StudyProgress, 0, len(studies))
	for _, st := range studies {
		sp := hubstate.StudyProgress{Study: st}
		if sp.Milestones, err = sp.Study.Progress(lookup(held, st.Device)); err != nil {
			return nil, err
		}
		if sp.Milestones != (hubstate.Milestones{}) {
			if _, err := tx.Exec(ctx, `UPDATE studies SET received_at = $3, verified_at = $4, delivered_at = $5
				WHERE study_uid = $1 AND device = $2`,
				st.StudyUID, st.Device, ts(sp.ReceivedAt), ts(sp.VerifiedAt), ts(sp.DeliveredAt)); err != nil {
				return nil, err
			}
		}
		out = append(out, sp)
	}
	return out, nil
}

// studiesOf recomputes the milestones of every box's record of inst's study: the
// uploading box's goes to out.Study, the others that completed one to out.Others.
func studiesOf(ctx context.Context, tx pgx.Tx, inst hubstate.Instance, out *hubstate.Archived) error {
	all, err := progress(ctx, tx, inst.StudyUID)
	if err != nil {
		return err
	}
	out.Place(inst.Device, all)
	return nil
}

// RecordManifest implements hubstate.Studies under the study's lock, so that a
// manifest and the instance completing it, arriving at two hubs at once, are judged
// one after the other.
func (s *Store) RecordManifest(ctx context.Context, m hubstate.Manifest) (hubstate.StudyProgress, error) {
	var sp hubstate.StudyProgress
	err := s.inTx(ctx, fmt.Sprintf("record the manifest of study %s from device %s", m.StudyUID, m.Device), func(tx pgx.Tx) error {
		sp = hubstate.StudyProgress{}
		if err := lockStudies(ctx, tx, m.StudyUID); err != nil {
			return err
		}
		had, err := loadStudies(ctx, tx, `WHERE study_uid = $1 AND device = $2`, m.StudyUID, m.Device)
		if err != nil {
			return err
		}
		if len(had) == 1 {
			sp.Study = had[0]
		}
		sp.Study.Merge(m)
		held, err := heldOf(ctx, tx, keysOf(sp.Study))
		if err != nil {
			return err
		}
		if sp.Milestones, err = sp.Study.Progress(lookup(held, m.Device)); err != nil {
			return err
		}
		return storeStudy(ctx, tx, sp.Study, m.Instances)
	})
	return sp, err
}

// storeStudy writes a study record and the expected instances that changed.
func storeStudy(ctx context.Context, tx pgx.Tx, st hubstate.Study, changed map[string]string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO studies (`+studyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (study_uid, device) DO UPDATE SET patient_id = excluded.patient_id, modality = excluded.modality,
			priority = excluded.priority, manifest_at = excluded.manifest_at, received_at = excluded.received_at,
			verified_at = excluded.verified_at, delivered_at = excluded.delivered_at`,
		st.StudyUID, st.Device, st.PatientID, st.Modality, st.Priority,
		ts(st.ManifestAt), ts(st.ReceivedAt), ts(st.VerifiedAt), ts(st.DeliveredAt)); err != nil {
		return err
	}
	sops, shas := make([]string, 0, len(changed)), make([]string, 0, len(changed))
	for sop, sha := range changed {
		sops, shas = append(sops, sop), append(shas, sha)
	}
	_, err := tx.Exec(ctx, `INSERT INTO study_instances (study_uid, device, sop_instance_uid, sha256)
		SELECT $1, $2, sop, sha FROM unnest($3::text[], $4::text[]) AS e(sop, sha)
		ON CONFLICT (study_uid, device, sop_instance_uid) DO UPDATE SET sha256 = excluded.sha256`,
		st.StudyUID, st.Device, sops, shas)
	return err
}

// Study implements hubstate.Studies.
func (s *Store) Study(ctx context.Context, device, studyUID string) (hubstate.StudyView, error) {
	var v hubstate.StudyView
	err := s.readTx(ctx, fmt.Sprintf("read study %s of device %s", studyUID, device), func(tx pgx.Tx) error {
		views, err := viewStudies(ctx, tx, `WHERE study_uid = $1 AND device = $2`, studyUID, device)
		switch {
		case err != nil:
			return err
		case len(views) == 0:
			return refuse(fmt.Errorf("study %s of device %s: %w", studyUID, device, hubstate.ErrNotFound))
		}
		v = views[0]
		return nil
	})
	return v, err
}

// RecentStudies implements hubstate.Studies. Records with the same manifest time come
// in the order of their keys, as in the embedded engine.
func (s *Store) RecentStudies(ctx context.Context, n int) ([]hubstate.StudyView, error) {
	var out []hubstate.StudyView
	err := s.readTx(ctx, "read the recent studies", func(tx pgx.Tx) error {
		var err error
		out, err = viewStudies(ctx, tx, `ORDER BY manifest_at DESC NULLS LAST, study_uid COLLATE "C", device COLLATE "C"
			LIMIT $1`, max(n, 0))
		return err
	})
	return out, err
}

// viewStudies reads the study records tail selects with the instances held for each.
func viewStudies(ctx context.Context, tx pgx.Tx, tail string, args ...any) ([]hubstate.StudyView, error) {
	studies, held, err := loadHeld(ctx, tx, tail, args...)
	if err != nil {
		return nil, err
	}
	out := make([]hubstate.StudyView, 0, len(studies))
	for _, st := range studies {
		v := hubstate.StudyView{Study: st, Archived: map[string]hubstate.Instance{}}
		for _, k := range keysOf(st) {
			if inst, ok := held[k]; ok {
				v.Archived[k.sop] = inst
			}
		}
		out = append(out, v)
	}
	return out, nil
}
