package boltstate

import (
	"context"
	"fmt"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
)

// codeRecord is an enrolment code as stored; its key is the code's hash.
type codeRecord struct {
	Device  string    `json:"device"`
	Expires time.Time `json:"expires"`
	UsedAt  time.Time `json:"used_at,omitzero"`
}

// IssueCode implements hubstate.Registry.
func (s *Store) IssueCode(ctx context.Context, code hubstate.EnrolmentCode) error {
	return s.update(ctx, func(tx *durable.Tx) error {
		var dev hubstate.Device
		found, err := durable.GetJSONTx(tx, bucketDevices, code.Device, &dev)
		if err != nil {
			return err
		}
		switch {
		case found && dev.State == hubstate.StateRevoked:
			return fmt.Errorf("device %s: %w; choose a new device ID", code.Device, hubstate.ErrRevoked)
		case !found:
			if err := durable.PutJSONTx(tx, bucketDevices, code.Device, hubstate.Device{ID: code.Device, State: hubstate.StatePending}); err != nil {
				return err
			}
		}
		return durable.PutJSONTx(tx, bucketCodes, code.Hash, codeRecord{Device: code.Device, Expires: code.Expires, UsedAt: code.UsedAt})
	})
}

// RedeemCode implements hubstate.Registry. bbolt's single writer makes the code's
// check and its use one step: a second redeemer sees it used.
func (s *Store) RedeemCode(ctx context.Context, codeHash string, now time.Time, issue func(string) (hubstate.Certificate, error)) (string, error) {
	var deviceID string
	err := s.update(ctx, func(tx *durable.Tx) error {
		var rec codeRecord
		found, err := durable.GetJSONTx(tx, bucketCodes, codeHash, &rec)
		switch {
		case err != nil:
			return err
		case !found:
			return hubstate.ErrCodeInvalid
		}
		deviceID = rec.Device
		switch {
		case !rec.UsedAt.IsZero():
			return hubstate.ErrCodeUsed
		case now.After(rec.Expires):
			return hubstate.ErrCodeExpired
		}
		var dev hubstate.Device
		if _, err := durable.GetJSONTx(tx, bucketDevices, rec.Device, &dev); err != nil {
			return err
		}
		if dev.State == hubstate.StateRevoked {
			return hubstate.ErrRevoked
		}
		cert, err := issue(rec.Device)
		if err != nil {
			return err
		}
		rec.UsedAt = now
		if err := durable.PutJSONTx(tx, bucketCodes, codeHash, rec); err != nil {
			return err
		}
		return durable.PutJSONTx(tx, bucketDevices, rec.Device, hubstate.Device{ID: rec.Device, State: hubstate.StateActive,
			Serial: cert.Serial, EnrolledAt: now, NotAfter: cert.NotAfter})
	})
	return deviceID, err
}

// RevokeDevice implements hubstate.Registry.
func (s *Store) RevokeDevice(ctx context.Context, deviceID string, at time.Time) error {
	return s.update(ctx, func(tx *durable.Tx) error {
		var dev hubstate.Device
		found, err := durable.GetJSONTx(tx, bucketDevices, deviceID, &dev)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("revoke %s: %w", deviceID, hubstate.ErrUnknownDevice)
		}
		dev.State, dev.RevokedAt = hubstate.StateRevoked, at
		return durable.PutJSONTx(tx, bucketDevices, deviceID, dev)
	})
}

// Device implements hubstate.Registry.
func (s *Store) Device(ctx context.Context, deviceID string) (hubstate.Device, error) {
	var dev hubstate.Device
	err := s.view(ctx, func(tx *durable.Tx) error {
		found, err := durable.GetJSONTx(tx, bucketDevices, deviceID, &dev)
		if err == nil && !found {
			return fmt.Errorf("device %s: %w", deviceID, hubstate.ErrNotFound)
		}
		return err
	})
	return dev, err
}

// Devices implements hubstate.Registry.
func (s *Store) Devices(ctx context.Context) ([]hubstate.Device, error) {
	var out []hubstate.Device
	err := s.view(ctx, func(tx *durable.Tx) error {
		return each(tx, bucketDevices, func(_ string, d hubstate.Device) error {
			out = append(out, d)
			return nil
		})
	})
	return out, err
}
