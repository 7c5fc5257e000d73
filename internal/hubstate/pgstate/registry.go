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

// IssueCode implements hubstate.Registry. The device's row is entered first and then
// locked, so that a revocation on another hub either comes before (and the code is
// refused) or waits for the code to be stored.
func (s *Store) IssueCode(ctx context.Context, code hubstate.EnrolmentCode) error {
	return s.inTx(ctx, "issue an enrolment code for device "+code.Device, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO devices (id, state) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`,
			code.Device, hubstate.StatePending); err != nil {
			return err
		}
		var state string
		if err := tx.QueryRow(ctx, `SELECT state FROM devices WHERE id = $1 FOR UPDATE`, code.Device).Scan(&state); err != nil {
			return err
		}
		if state == hubstate.StateRevoked {
			return refuse(fmt.Errorf("device %s: %w; choose a new device ID", code.Device, hubstate.ErrRevoked))
		}
		_, err := tx.Exec(ctx, `INSERT INTO enrolment_codes (hash, device, expires, used_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (hash) DO UPDATE SET device = excluded.device, expires = excluded.expires, used_at = excluded.used_at`,
			code.Hash, code.Device, code.Expires, ts(code.UsedAt))
		return err
	})
}

// RedeemCode implements hubstate.Registry. The code's row is locked before it is
// judged: of several hubs presenting it at once, the others wait, then read it used.
// The device's row is locked as well before issue is called, so that a revocation
// cannot slip between the check and the activation. Both locks are taken before issue
// runs and nothing after it can deadlock, so inTx never runs issue twice.
func (s *Store) RedeemCode(ctx context.Context, codeHash string, now time.Time, issue func(string) (hubstate.Certificate, error)) (string, error) {
	var deviceID string
	err := s.inTx(ctx, "redeem an enrolment code", func(tx pgx.Tx) error {
		deviceID = ""
		var expires, usedAt pgtype.Timestamptz
		err := tx.QueryRow(ctx, `SELECT device, expires, used_at FROM enrolment_codes WHERE hash = $1 FOR UPDATE`, codeHash).
			Scan(&deviceID, &expires, &usedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return refuse(hubstate.ErrCodeInvalid)
		case err != nil:
			return err
		case usedAt.Valid:
			return refuse(hubstate.ErrCodeUsed)
		case now.After(expires.Time):
			return refuse(hubstate.ErrCodeExpired)
		}
		var state string
		if err := tx.QueryRow(ctx, `SELECT state FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&state); err != nil {
			return err
		}
		if state == hubstate.StateRevoked {
			return refuse(hubstate.ErrRevoked)
		}
		cert, err := issue(deviceID)
		if err != nil {
			return refuse(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE enrolment_codes SET used_at = $2 WHERE hash = $1`, codeHash, now); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE devices SET state = $2, serial = $3, enrolled_at = $4, not_after = $5, revoked_at = NULL
			WHERE id = $1`, deviceID, hubstate.StateActive, cert.Serial, ts(now), ts(cert.NotAfter))
		return err
	})
	return deviceID, err
}

// RevokeDevice implements hubstate.Registry. One UPDATE is atomic by itself, and it
// waits for a redemption that holds the device's row.
func (s *Store) RevokeDevice(ctx context.Context, deviceID string, at time.Time) error {
	return s.inTx(ctx, "revoke device "+deviceID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE devices SET state = $2, revoked_at = $3 WHERE id = $1`, deviceID, hubstate.StateRevoked, ts(at))
		if err == nil && tag.RowsAffected() == 0 {
			return refuse(fmt.Errorf("revoke %s: %w", deviceID, hubstate.ErrUnknownDevice))
		}
		return err
	})
}

const deviceColumns = `id, state, serial, enrolled_at, revoked_at, not_after`

func scanDevice(row pgx.Row) (hubstate.Device, error) {
	var d hubstate.Device
	var enrolled, revoked, notAfter pgtype.Timestamptz
	err := row.Scan(&d.ID, &d.State, &d.Serial, &enrolled, &revoked, &notAfter)
	d.EnrolledAt, d.RevokedAt, d.NotAfter = tm(enrolled), tm(revoked), tm(notAfter)
	return d, err
}

// Device implements hubstate.Registry.
func (s *Store) Device(ctx context.Context, deviceID string) (hubstate.Device, error) {
	return one(ctx, s, "read device "+deviceID, fmt.Errorf("device %s: %w", deviceID, hubstate.ErrNotFound),
		scanDevice, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, deviceID)
}

// Devices implements hubstate.Registry. IDs are ordered bytewise (COLLATE "C"), as
// the embedded engine's keys are, whatever the database's locale.
func (s *Store) Devices(ctx context.Context) ([]hubstate.Device, error) {
	return all(ctx, s, "list devices", scanDevice, `SELECT `+deviceColumns+` FROM devices ORDER BY id COLLATE "C"`)
}
