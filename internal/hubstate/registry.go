package hubstate

import (
	"context"
	"errors"
	"time"
)

// Registry keeps the boxes known to the hub and their one-time enrolment codes.
type Registry interface {
	// IssueCode stores a new enrolment code. A device the hub does not know yet is
	// entered as pending. A revoked device stays revoked: its code is refused with
	// ErrRevoked, and the operator must choose a new device ID.
	IssueCode(ctx context.Context, code EnrolmentCode) error
	// RedeemCode uses the code whose Hash is codeHash exactly once, even when several
	// callers (or several hubs) present it at the same moment. It refuses an unknown
	// code (ErrCodeInvalid), a used one (ErrCodeUsed), one expired at now
	// (ErrCodeExpired) and one for a revoked device (ErrRevoked). Otherwise it calls
	// issue once for the code's device, and atomically with marking the code used
	// makes the device active with the certificate issue returns. When issue fails,
	// the code stays unused and issue's error is returned. The device ID is returned
	// whenever the code was found, for the audit log.
	RedeemCode(ctx context.Context, codeHash string, now time.Time, issue func(deviceID string) (Certificate, error)) (deviceID string, err error)
	// RevokeDevice marks a device revoked at at; ErrUnknownDevice if there is none.
	RevokeDevice(ctx context.Context, deviceID string, at time.Time) error
	// Device returns one device, or ErrNotFound.
	Device(ctx context.Context, deviceID string) (Device, error)
	// Devices lists every device in ID order.
	Devices(ctx context.Context) ([]Device, error)
}

// Device is one box known to the hub. Its JSON form is what `lifeline hub devices`
// prints and what the embedded engine stores.
type Device struct {
	ID         string    `json:"id"`
	State      string    `json:"state"` // StatePending, StateActive or StateRevoked
	Serial     string    `json:"serial,omitempty"`
	EnrolledAt time.Time `json:"enrolled_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	NotAfter   time.Time `json:"not_after,omitzero"`
}

// Device states.
const (
	StatePending = "pending" // a code was issued, not yet used
	StateActive  = "active"
	StateRevoked = "revoked"
)

// EnrolmentCode is a one-time code as the hub keeps it: only a hash of its secret,
// so that reading the state does not give away codes that still work.
type EnrolmentCode struct {
	Hash    string    // hex SHA-256 of the code's secret part
	Device  string    // the device the code enrols
	Expires time.Time // refused after this
	UsedAt  time.Time // zero until redeemed
}

// Certificate is what enrolment issued a device: the serial the hub accepts from it
// from then on, and when the certificate runs out.
type Certificate struct {
	Serial   string
	NotAfter time.Time
}

// Errors that explain to an operator, or to the box, why a device or a code was
// refused. Their text reaches the box in the enrolment answer.
var (
	ErrUnknownDevice = errors.New("device is not enrolled at this hub")
	ErrRevoked       = errors.New("device is revoked")
	ErrCodeInvalid   = errors.New("enrolment code is not valid at this hub")
	ErrCodeUsed      = errors.New("enrolment code was already used")
	ErrCodeExpired   = errors.New("enrolment code has expired")
)
