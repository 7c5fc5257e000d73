package pgstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"lifeline/internal/hubstate"
)

const uploadColumns = `id, device, sop_instance_uid, sop_class_uid, study_uid, transfer_syntax, length, sha256, "offset", complete, created_at`

func scanUpload(row pgx.Row) (hubstate.Upload, error) {
	var u hubstate.Upload
	var created pgtype.Timestamptz
	err := row.Scan(&u.ID, &u.Device, &u.SOPInstanceUID, &u.SOPClassUID, &u.StudyUID, &u.TransferSyntax,
		&u.Length, &u.SHA256, &u.Offset, &u.Complete, &created)
	u.CreatedAt = tm(created)
	return u, err
}

const instanceColumns = `sop_instance_uid, sop_class_uid, study_uid, transfer_syntax, device, size, sha256, path,
	received_at, verified_at, delivered_at, attempts, last_error, next_attempt`

func scanInstance(row pgx.Row) (hubstate.Instance, error) {
	var i hubstate.Instance
	var received, verified, delivered, next pgtype.Timestamptz
	err := row.Scan(&i.SOPInstanceUID, &i.SOPClassUID, &i.StudyUID, &i.TransferSyntax, &i.Device, &i.Size, &i.SHA256,
		&i.Path, &received, &verified, &delivered, &i.Attempts, &i.LastError, &next)
	i.ReceivedAt, i.VerifiedAt, i.DeliveredAt, i.NextAttempt = tm(received), tm(verified), tm(delivered), tm(next)
	return i, err
}

const quarantineColumns = `sop_instance_uid, sop_class_uid, study_uid, transfer_syntax, device, size, sha256, path,
	received_at, verified_at, clash_sha256, clash_device`

func scanQuarantined(row pgx.Row) (hubstate.Instance, error) {
	i := hubstate.Instance{Quarantined: true}
	var received, verified pgtype.Timestamptz
	err := row.Scan(&i.SOPInstanceUID, &i.SOPClassUID, &i.StudyUID, &i.TransferSyntax, &i.Device, &i.Size, &i.SHA256,
		&i.Path, &received, &verified, &i.ClashSHA256, &i.ClashDevice)
	i.ReceivedAt, i.VerifiedAt = tm(received), tm(verified)
	return i, err
}

// CreateUpload implements hubstate.Studies. The upload's primary key decides between
// two hubs creating it at once; the loser returns the winner's.
func (s *Store) CreateUpload(ctx context.Context, u hubstate.Upload) (hubstate.Upload, error) {
	var got hubstate.Upload
	err := s.inTx(ctx, "create upload "+u.ID, func(tx pgx.Tx) error {
		got = u
		key := heldKey{device: u.Device, sop: u.SOPInstanceUID, sha: u.SHA256}
		held, err := heldOf(ctx, tx, []heldKey{key})
		if err != nil {
			return err
		}
		if _, ok := held[key]; ok {
			got.Offset, got.Complete = got.Length, true
		}
		tag, err := tx.Exec(ctx, `INSERT INTO uploads (`+uploadColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (id) DO NOTHING`,
			got.ID, got.Device, got.SOPInstanceUID, got.SOPClassUID, got.StudyUID, got.TransferSyntax,
			got.Length, got.SHA256, got.Offset, got.Complete, ts(got.CreatedAt))
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		got, err = scanUpload(tx.QueryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`, u.ID))
		return err
	})
	return got, err
}

// Upload implements hubstate.Studies.
func (s *Store) Upload(ctx context.Context, id string) (hubstate.Upload, error) {
	return one(ctx, s, "read upload "+id, fmt.Errorf("upload %s: %w", id, hubstate.ErrNotFound),
		scanUpload, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`, id)
}

// AdvanceUpload implements hubstate.Studies as one conditional UPDATE: of several
// appends of the same bytes, on any hubs, PostgreSQL lets the first move the offset
// and re-reads the row for the others, which then no longer match. Only an append
// that did not move is read again, to say why.
func (s *Store) AdvanceUpload(ctx context.Context, id string, from, to int64) (hubstate.Upload, error) {
	for range retries {
		u, err := scanUpload(s.pool.QueryRow(ctx, `UPDATE uploads SET "offset" = $3
			WHERE id = $1 AND "offset" = $2 AND NOT complete AND $3 BETWEEN $2 AND length
			RETURNING `+uploadColumns, id, from, to))
		if !errors.Is(err, pgx.ErrNoRows) {
			return u, s.wrap(fmt.Sprintf("advance upload %s from %d to %d", id, from, to), err)
		}
		if u, err = s.Upload(ctx, id); err != nil {
			return hubstate.Upload{}, err
		}
		switch {
		case u.Complete || u.Offset != from:
			return u, &hubstate.OffsetError{Upload: u, From: from}
		case to < from || to > u.Length:
			return u, fmt.Errorf("upload %s: offset %d..%d outside its %d bytes", id, from, to, u.Length)
		}
		// The offset is back at from: the upload was dropped and created again
		// between the UPDATE and the read. The append is judged afresh.
	}
	return hubstate.Upload{}, fmt.Errorf("pgstate: %s: upload %s was dropped and created again %d times during one append", s.where, id, retries)
}

// DropUpload implements hubstate.Studies.
func (s *Store) DropUpload(ctx context.Context, id string) error {
	return s.inTx(ctx, "drop upload "+id, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM uploads WHERE id = $1`, id)
		return err
	})
}

// ArchiveInstance implements hubstate.Studies. The SOP Instance UID's primary key
// decides which copy is archived when two hubs archive the same UID at once; the
// study's lock is taken first, so that the milestones computed at the end see every
// instance archived before.
func (s *Store) ArchiveInstance(ctx context.Context, uploadID string, inst hubstate.Instance, owed bool) (hubstate.Archived, error) {
	var out hubstate.Archived
	err := s.inTx(ctx, "archive instance "+inst.SOPInstanceUID, func(tx pgx.Tx) error {
		out = hubstate.Archived{}
		if err := lockStudies(ctx, tx, inst.StudyUID); err != nil {
			return err
		}
		if err := completeUpload(ctx, tx, uploadID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO instances (`+instanceColumns+`, owed, archive)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
			ON CONFLICT (sop_instance_uid) DO NOTHING`,
			inst.SOPInstanceUID, inst.SOPClassUID, inst.StudyUID, inst.TransferSyntax, inst.Device, inst.Size, inst.SHA256,
			inst.Path, ts(inst.ReceivedAt), ts(inst.VerifiedAt), ts(inst.DeliveredAt), inst.Attempts, inst.LastError,
			ts(inst.NextAttempt), owed, s.archive)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			old, err := scanInstance(tx.QueryRow(ctx, `SELECT `+instanceColumns+` FROM instances WHERE sop_instance_uid = $1`, inst.SOPInstanceUID))
			switch {
			case err != nil:
				return err
			case old.SHA256 != inst.SHA256:
				return refuse(&hubstate.ConflictError{Archived: old})
			}
			out.Duplicate = true
		}
		return studiesOf(ctx, tx, inst, &out)
	})
	return out, err
}

// completeUpload marks an upload complete inside tx.
func completeUpload(ctx context.Context, tx pgx.Tx, uploadID string) error {
	tag, err := tx.Exec(ctx, `UPDATE uploads SET "offset" = length, complete = true WHERE id = $1`, uploadID)
	if err == nil && tag.RowsAffected() == 0 {
		return refuse(fmt.Errorf("upload %s: %w", uploadID, hubstate.ErrNotFound))
	}
	return err
}

// QuarantineInstance implements hubstate.Studies. The copy's key (SOP Instance UID,
// box, digest) keeps the same copy once, whichever hub quarantines it.
func (s *Store) QuarantineInstance(ctx context.Context, uploadID string, inst hubstate.Instance) (hubstate.Archived, error) {
	var out hubstate.Archived
	err := s.inTx(ctx, "quarantine instance "+inst.SOPInstanceUID, func(tx pgx.Tx) error {
		out = hubstate.Archived{}
		if err := lockStudies(ctx, tx, inst.StudyUID); err != nil {
			return err
		}
		if err := completeUpload(ctx, tx, uploadID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO quarantine (`+quarantineColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (sop_instance_uid, device, sha256) DO NOTHING`,
			inst.SOPInstanceUID, inst.SOPClassUID, inst.StudyUID, inst.TransferSyntax, inst.Device, inst.Size, inst.SHA256,
			inst.Path, ts(inst.ReceivedAt), ts(inst.VerifiedAt), inst.ClashSHA256, inst.ClashDevice)
		if err != nil {
			return err
		}
		out.Duplicate = tag.RowsAffected() == 0
		return studiesOf(ctx, tx, inst, &out)
	})
	return out, err
}

// Quarantine implements hubstate.Studies, in the order of the copies' keys.
func (s *Store) Quarantine(ctx context.Context, n int) ([]hubstate.Instance, int, error) {
	var held []hubstate.Instance
	total := 0
	err := s.readTx(ctx, "read the quarantine", func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM quarantine`).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+quarantineColumns+` FROM quarantine
			ORDER BY sop_instance_uid COLLATE "C", device COLLATE "C", sha256 COLLATE "C" LIMIT $1`, max(n, 0))
		if err != nil {
			return err
		}
		held, err = collect(rows, scanQuarantined)
		return err
	})
	return held, total, err
}

// Instance implements hubstate.Studies.
func (s *Store) Instance(ctx context.Context, sop string) (hubstate.Instance, error) {
	return one(ctx, s, "read instance "+sop, fmt.Errorf("instance %s: %w", sop, hubstate.ErrNotFound),
		scanInstance, `SELECT `+instanceColumns+` FROM instances WHERE sop_instance_uid = $1`, sop)
}

// DueDeliveries implements hubstate.Studies, those waiting longest first; with an
// archive (InArchive), only those whose file is in it or in none.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, n int) ([]hubstate.Instance, int, error) {
	var due []hubstate.Instance
	pending := 0
	const mine = `($1 = '' OR archive IN ($1, ''))`
	err := s.readTx(ctx, "read the deliveries owed", func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM instances WHERE owed AND `+mine, s.archive).Scan(&pending); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+instanceColumns+` FROM instances
			WHERE owed AND `+mine+` AND (next_attempt IS NULL OR next_attempt <= $2)
			ORDER BY next_attempt NULLS FIRST, sop_instance_uid LIMIT $3`, s.archive, now, max(n, 0))
		if err != nil {
			return err
		}
		due, err = collect(rows, scanInstance)
		return err
	})
	return due, pending, err
}

// RecordDeliveries implements hubstate.Studies. The locks of every study concerned
// are taken first, then the outcomes go to the database in one batch.
func (s *Store) RecordDeliveries(ctx context.Context, outcomes []hubstate.DeliveryOutcome) ([]hubstate.StudyProgress, error) {
	var out []hubstate.StudyProgress
	err := s.inTx(ctx, fmt.Sprintf("record %d delivery outcomes", len(outcomes)), func(tx pgx.Tx) error {
		out = nil
		studyOf, err := studiesOfInstances(ctx, tx, outcomes)
		if err != nil {
			return err
		}
		var uids, delivered []string
		seen := map[string]bool{}
		for _, o := range outcomes {
			uid := studyOf[o.SOPInstanceUID]
			uids = append(uids, uid)
			if o.Err == "" && !seen[uid] {
				seen[uid] = true
				delivered = append(delivered, uid)
			}
		}
		if err := lockStudies(ctx, tx, uids...); err != nil {
			return err
		}
		// An outcome counts only while the delivery is owed and claimed by this hub
		// or by none (claims.go): a hub that overran its claim's lease must not
		// record over the hub that took the delivery over. Recording ends the claim.
		b := &pgx.Batch{}
		for _, o := range outcomes {
			if o.Err != "" {
				b.Queue(`UPDATE instances SET attempts = attempts + 1, last_error = $2, next_attempt = $3,
					claimed_by = '', claimed_until = NULL
					WHERE sop_instance_uid = $1 AND owed AND claimed_by IN ($4, '')`, o.SOPInstanceUID, o.Err, ts(o.RetryAt), s.hub)
				continue
			}
			b.Queue(`UPDATE instances SET attempts = attempts + 1, delivered_at = $2, last_error = '', next_attempt = NULL,
				owed = false, path = CASE WHEN $3 THEN '' ELSE path END, claimed_by = '', claimed_until = NULL
				WHERE sop_instance_uid = $1 AND owed AND claimed_by IN ($4, '')`, o.SOPInstanceUID, ts(o.At), o.ForgetPath, s.hub)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		// Only now, with every outcome recorded, can a study be whole.
		for _, uid := range delivered {
			sps, err := progress(ctx, tx, uid)
			if err != nil {
				return err
			}
			out = append(out, sps...)
		}
		return nil
	})
	return out, err
}

// studiesOfInstances returns the Study Instance UID of each outcome's instance,
// refusing an outcome for an instance the archive does not hold.
func studiesOfInstances(ctx context.Context, tx pgx.Tx, outcomes []hubstate.DeliveryOutcome) (map[string]string, error) {
	sops := make([]string, len(outcomes))
	for i, o := range outcomes {
		sops[i] = o.SOPInstanceUID
	}
	rows, err := tx.Query(ctx, `SELECT sop_instance_uid, study_uid FROM instances WHERE sop_instance_uid = ANY($1)`, sops)
	if err != nil {
		return nil, err
	}
	studyOf := map[string]string{}
	var sop, study string
	if _, err := pgx.ForEachRow(rows, []any{&sop, &study}, func() error { studyOf[sop] = study; return nil }); err != nil {
		return nil, err
	}
	for _, o := range outcomes {
		if _, ok := studyOf[o.SOPInstanceUID]; !ok {
			return nil, refuse(fmt.Errorf("delivery of instance %s: %w", o.SOPInstanceUID, hubstate.ErrNotFound))
		}
	}
	return studyOf, nil
}
