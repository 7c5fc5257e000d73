package trust

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"lifeline/internal/hubstate"
)

// DefaultCodeLifetime is how long an enrolment code stays valid.
const DefaultCodeLifetime = 24 * time.Hour

// Errors that explain to an operator why a device or a code was refused; they are the
// hub state's own, so errors.Is holds whichever engine keeps the registry.
var (
	ErrUnknownDevice = hubstate.ErrUnknownDevice
	ErrRevoked       = hubstate.ErrRevoked
	ErrCodeInvalid   = hubstate.ErrCodeInvalid
	ErrCodeUsed      = hubstate.ErrCodeUsed
	ErrCodeExpired   = hubstate.ErrCodeExpired
)

var deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidDeviceID checks that id can name a device: letters, digits, '.', '_' and '-',
// at most 64 characters, as it also becomes a certificate's common name.
func ValidDeviceID(id string) error {
	if !deviceIDPattern.MatchString(id) {
		return fmt.Errorf("trust: device ID %q: use 1 to 64 letters, digits, '.', '_' or '-'", id)
	}
	return nil
}

// Device is one box known to the hub.
type Device = hubstate.Device

// Device states.
const (
	StatePending = hubstate.StatePending
	StateActive  = hubstate.StateActive
	StateRevoked = hubstate.StateRevoked
)

// Registry decides which boxes may enrol and connect; the hub's state keeps the
// devices and codes it decides on.
type Registry struct {
	state hubstate.Registry
	pin   string
	now   func() time.Time
	conns connections // renew_conns.go: connections kept across a renewal
}

// NewRegistry returns the registry kept in state for the authority with the given pin.
func NewRegistry(state hubstate.Registry, auth *Authority) *Registry {
	return &Registry{state: state, pin: auth.Pin(), now: time.Now}
}

// NewCode creates a one-time enrolment code for deviceID, valid for lifetime. The
// code carries the authority's pin, so the box can verify the hub it enrols with.
func (r *Registry) NewCode(ctx context.Context, deviceID string, lifetime time.Duration) (string, error) {
	if err := ValidDeviceID(deviceID); err != nil {
		return "", err
	}
	if lifetime <= 0 {
		lifetime = DefaultCodeLifetime
	}
	secret := make([]byte, 10)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	secretText := base32.StdEncoding.EncodeToString(secret)
	err := r.state.IssueCode(ctx, hubstate.EnrolmentCode{Hash: codeKey(secretText), Device: deviceID, Expires: r.now().Add(lifetime)})
	if err != nil {
		return "", fmt.Errorf("trust: %w", err)
	}
	return FormatCode(secretText, r.pin), nil
}

// FormatCode joins a secret and a pin into the code an operator types: eight groups of
// four characters, the first four secret, the last four the authority's pin.
func FormatCode(secret, pin string) string {
	all := secret + pin
	var groups []string
	for i := 0; i < len(all); i += 4 {
		groups = append(groups, all[i:min(i+4, len(all))])
	}
	return strings.Join(groups, "-")
}

// ParseCode splits an enrolment code into its secret and pin. It forgives case,
// spaces and missing dashes, since people type it.
func ParseCode(code string) (secret, pin string, err error) {
	clean := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(code)))
	if len(clean) != 32 {
		return "", "", fmt.Errorf("enrolment code %q: want 32 characters in groups of four, got %d", code, len(clean))
	}
	for _, c := range clean {
		if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", c) {
			return "", "", fmt.Errorf("enrolment code %q: %q is not one of A–Z or 2–7", code, c)
		}
	}
	return clean[:16], clean[16:], nil
}

// codeKey is what the hub keeps of a code: a hash of its secret.
func codeKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Redeem uses the code once: the hub's state checks the code and, in the same atomic
// step, marks it used and calls issue for the device it names. The device becomes
// active with the certificate issue returns. A failing issue leaves the code unused.
func (r *Registry) Redeem(ctx context.Context, secret string, issue func(deviceID string) (serial string, notAfter time.Time, err error)) (string, error) {
	return r.state.RedeemCode(ctx, codeKey(secret), r.now(), func(deviceID string) (hubstate.Certificate, error) {
		serial, notAfter, err := issue(deviceID)
		return hubstate.Certificate{Serial: serial, NotAfter: notAfter}, err
	})
}

// Revoke marks deviceID revoked; its certificate is refused from then on.
func (r *Registry) Revoke(ctx context.Context, deviceID string) error {
	if err := r.state.RevokeDevice(ctx, deviceID, r.now()); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	return nil
}

// Check tells whether the device with this certificate serial may connect: it must be
// enrolled, active, and the certificate must be the one the hub issued it last.
func (r *Registry) Check(ctx context.Context, deviceID, serial string) error {
	d, err := r.state.Device(ctx, deviceID)
	switch {
	case errors.Is(err, hubstate.ErrNotFound):
		return ErrUnknownDevice
	case err != nil:
		return err
	case d.State == StateRevoked:
		return ErrRevoked
	case d.State != StateActive:
		return ErrUnknownDevice
	case d.Serial != serial:
		return fmt.Errorf("certificate %s was replaced by a later enrolment: %w", serial, ErrRevoked)
	}
	return nil
}

// Devices lists every device in ID order.
func (r *Registry) Devices(ctx context.Context) ([]Device, error) { return r.state.Devices(ctx) }
