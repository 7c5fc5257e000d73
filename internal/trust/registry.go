package trust

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"lifeline/internal/durable"
)

// DefaultCodeLifetime is how long an enrolment code stays valid.
const DefaultCodeLifetime = 24 * time.Hour

const (
	devicesBucket = "trust/devices"
	codesBucket   = "trust/codes"
)

// Errors that explain to an operator why a device or a code was refused.
var (
	ErrUnknownDevice = errors.New("device is not enrolled at this hub")
	ErrRevoked       = errors.New("device is revoked")
	ErrCodeInvalid   = errors.New("enrolment code is not valid at this hub")
	ErrCodeUsed      = errors.New("enrolment code was already used")
	ErrCodeExpired   = errors.New("enrolment code has expired")
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
type Device struct {
	ID         string    `json:"id"`
	State      string    `json:"state"` // "pending" (code issued), "active" or "revoked"
	Serial     string    `json:"serial,omitempty"`
	EnrolledAt time.Time `json:"enrolled_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	NotAfter   time.Time `json:"not_after,omitzero"`
}

// Device states.
const (
	StatePending = "pending"
	StateActive  = "active"
	StateRevoked = "revoked"
)

type codeRecord struct {
	Device  string    `json:"device"`
	Expires time.Time `json:"expires"`
	UsedAt  time.Time `json:"used_at,omitzero"`
}

// Registry keeps the hub's devices and enrolment codes in its durable store.
type Registry struct {
	store *durable.Store
	pin   string
	now   func() time.Time
}

// NewRegistry returns the registry in store for the authority with the given pin.
func NewRegistry(store *durable.Store, auth *Authority) *Registry {
	return &Registry{store: store, pin: auth.Pin(), now: time.Now}
}

// NewCode creates a one-time enrolment code for deviceID, valid for lifetime. The
// code carries the authority's pin, so the box can verify the hub it enrols with.
func (r *Registry) NewCode(deviceID string, lifetime time.Duration) (string, error) {
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
	rec := codeRecord{Device: deviceID, Expires: r.now().Add(lifetime)}
	err := r.store.Update(func(tx *durable.Tx) error {
		codes, err := durable.Bucket(tx, codesBucket)
		if err != nil {
			return err
		}
		devices, err := durable.Bucket(tx, devicesBucket)
		if err != nil {
			return err
		}
		if raw := devices.Get([]byte(deviceID)); raw != nil {
			var d Device
			if json.Unmarshal(raw, &d) == nil && d.State == StateRevoked {
				return fmt.Errorf("trust: device %s: %w; choose a new device ID", deviceID, ErrRevoked)
			}
		} else {
			d, _ := json.Marshal(Device{ID: deviceID, State: StatePending})
			if err := devices.Put([]byte(deviceID), d); err != nil {
				return err
			}
		}
		v, _ := json.Marshal(rec)
		return codes.Put(codeKey(secretText), v)
	})
	if err != nil {
		return "", err
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

func codeKey(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return []byte(hex.EncodeToString(sum[:]))
}

// Redeem uses the code once: it checks the code and, in the same transaction, marks it
// used and calls issue for the device it names. The device becomes active with the
// certificate issue returns. A failing issue leaves the code unused.
func (r *Registry) Redeem(secret string, issue func(deviceID string) (serial string, notAfter time.Time, err error)) (string, error) {
	var deviceID string
	err := r.store.Update(func(tx *durable.Tx) error {
		codes, err := durable.Bucket(tx, codesBucket)
		if err != nil {
			return err
		}
		raw := codes.Get(codeKey(secret))
		if raw == nil {
			return ErrCodeInvalid
		}
		var rec codeRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("trust: stored code: %w", err)
		}
		deviceID = rec.Device
		switch {
		case !rec.UsedAt.IsZero():
			return ErrCodeUsed
		case r.now().After(rec.Expires):
			return ErrCodeExpired
		}
		devices, err := durable.Bucket(tx, devicesBucket)
		if err != nil {
			return err
		}
		var dev Device
		if raw := devices.Get([]byte(rec.Device)); raw != nil {
			_ = json.Unmarshal(raw, &dev)
		}
		if dev.State == StateRevoked {
			return ErrRevoked
		}
		serial, notAfter, err := issue(rec.Device)
		if err != nil {
			return err
		}
		rec.UsedAt = r.now()
		dev = Device{ID: rec.Device, State: StateActive, Serial: serial, EnrolledAt: r.now(), NotAfter: notAfter}
		v, _ := json.Marshal(rec)
		d, _ := json.Marshal(dev)
		if err := codes.Put(codeKey(secret), v); err != nil {
			return err
		}
		return devices.Put([]byte(dev.ID), d)
	})
	return deviceID, err
}

// Revoke marks deviceID revoked; its certificate is refused from then on.
func (r *Registry) Revoke(deviceID string) error {
	return r.store.Update(func(tx *durable.Tx) error {
		devices, err := durable.Bucket(tx, devicesBucket)
		if err != nil {
			return err
		}
		raw := devices.Get([]byte(deviceID))
		if raw == nil {
			return fmt.Errorf("trust: revoke %s: %w", deviceID, ErrUnknownDevice)
		}
		var d Device
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("trust: stored device %s: %w", deviceID, err)
		}
		d.State, d.RevokedAt = StateRevoked, r.now()
		v, _ := json.Marshal(d)
		return devices.Put([]byte(deviceID), v)
	})
}

// Check tells whether the device with this certificate serial may connect: it must be
// enrolled, active, and the certificate must be the one the hub issued it last.
func (r *Registry) Check(deviceID, serial string) error {
	var d Device
	err := r.store.GetJSON(devicesBucket, deviceID, &d)
	switch {
	case errors.Is(err, durable.ErrNotFound):
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
func (r *Registry) Devices() ([]Device, error) {
	var out []Device
	err := r.store.ForEach(devicesBucket, func(_, v []byte) error {
		var d Device
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	return out, err
}
