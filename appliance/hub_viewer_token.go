package appliance

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
	"lifeline/internal/trust"
)

// Viewer tokens let a standard WHEP player or a hospital system watch one box without
// a browser session: `lifeline hub viewer-token --device ID` prints a WHEP URL and a
// bearer token for it. A token names its device, who it was issued for and when it
// expires, and carries an HMAC-SHA256 under a key only the hub has, so the hub checks
// it without a lookup; it is short-lived because it cannot be revoked one by one
// (rotating the key file revokes them all).
//
// Hubs on one shared state sign with one key, copied between them as the
// certificate authority's is (docs/multi-hub.md), so that a token issued at any hub
// plays at the hub that holds the box's session; the state records the key's
// fingerprint, and a hub with another key is refused at start (adoptViewerKey).

// viewerTokenKeyPath is the key viewer tokens are signed with.
func viewerTokenKeyPath(dataDir string) string { return filepath.Join(dataDir, "viewer-token.key") }

// DefaultViewerTokenLifetime is how long a viewer token works when none is asked for:
// one transport.
const DefaultViewerTokenLifetime = time.Hour

// MaxViewerTokenLifetime bounds what an operator may ask for: a token is a password
// that works until it expires.
const MaxViewerTokenLifetime = 24 * time.Hour

// maxViewerTokenLen bounds what the hub reads of a presented token.
const maxViewerTokenLen = 1024

// ViewerClaim is what a viewer token says.
type ViewerClaim struct {
	Device  string    `json:"dev"`
	Subject string    `json:"sub"` // who it was issued for, for the audit
	Expires time.Time `json:"exp"`
	ID      string    `json:"jti"` // names the token in the audit log
}

// viewerTokens signs and checks viewer tokens with the hub's key.
type viewerTokens struct {
	path string
	once sync.Once
	key  []byte
	err  error
}

func newViewerTokens(dataDir string) *viewerTokens {
	return &viewerTokens{path: viewerTokenKeyPath(dataDir)}
}

// load reads the key, creating it (durably, 0600) on first use.
func (v *viewerTokens) load() ([]byte, error) {
	v.once.Do(func() {
		key, err := os.ReadFile(v.path)
		if errors.Is(err, os.ErrNotExist) {
			key = make([]byte, 32)
			if _, err = rand.Read(key); err == nil {
				err = durable.WriteFile(v.path, key, 0o600)
			}
		}
		if err == nil && len(key) != 32 {
			err = fmt.Errorf("%s holds %d bytes, not a 32-byte key; delete it to make a new one (all viewer tokens end)", v.path, len(key))
		}
		v.key, v.err = key, err
	})
	return v.key, v.err
}

// issue returns a token for c.
func (v *viewerTokens) issue(c ViewerClaim) (string, error) {
	key, err := v.load()
	if err != nil {
		return "", fmt.Errorf("viewer token key: %w", err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	body := base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(signToken(key, body)), nil
}

// verify checks a presented token for device at now and returns its claim.
func (v *viewerTokens) verify(token, device string, now time.Time) (ViewerClaim, error) {
	var c ViewerClaim
	if len(token) > maxViewerTokenLen {
		return c, errors.New("viewer token too long")
	}
	key, err := v.load()
	if err != nil {
		return c, fmt.Errorf("viewer token key: %w", err)
	}
	body, sig, ok := strings.Cut(token, ".")
	mac, decErr := base64.RawURLEncoding.DecodeString(sig)
	if !ok || decErr != nil || !hmac.Equal(mac, signToken(key, body)) {
		return c, errors.New("viewer token not issued by this hub")
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return c, errors.New("viewer token malformed")
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, errors.New("viewer token malformed")
	}
	switch {
	case c.Device != device:
		return c, fmt.Errorf("viewer token %s is for box %q, not %q", c.ID, c.Device, device)
	case !now.Before(c.Expires):
		return c, fmt.Errorf("viewer token %s expired at %s", c.ID, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

// viewerKeyFingerprint names a viewer-token key in the shared state without giving
// it away: the key is 256 random bits, so its hash reveals nothing to guess from.
func viewerKeyFingerprint(key []byte) string {
	sum := sha256.Sum256(append([]byte("lifeline viewer-token key\n"), key...))
	return hex.EncodeToString(sum[:])
}

// adoptViewerKey makes dataDir's viewer-token key the one every hub on shared signs
// with. The first hub, or its first command, records the fingerprint of its key
// (making the key if it has none yet); a hub whose key differs, or that has none
// once one is recorded, is refused with the file to copy, so that no hub issues
// tokens the others cannot check.
func adoptViewerKey(ctx context.Context, shared hubstate.Shared, dataDir string) error {
	path := viewerTokenKeyPath(dataDir)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		recorded, err := shared.ViewerKey(ctx)
		switch {
		case err == nil:
			return fmt.Errorf("%w: this hub has none; copy viewer-token.key (mode 0600) from a hub of this state to %s (its fingerprint is %s)", hubstate.ErrOtherViewerKey, path, recorded)
		case !errors.Is(err, hubstate.ErrNotFound):
			return err
		}
	}
	key, err := newViewerTokens(dataDir).load()
	if err != nil {
		return fmt.Errorf("viewer token key: %w", err)
	}
	if err := shared.AdoptViewerKey(ctx, viewerKeyFingerprint(key)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func signToken(key []byte, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("lifeline viewer token v1\n"))
	m.Write([]byte(body))
	return m.Sum(nil)
}

// newTokenID names a token in the audit log without revealing it.
func newTokenID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// ViewerToken is what `lifeline hub viewer-token` prints: where to watch one box and
// the bearer token that lets a WHEP player do so until Expires.
type ViewerToken struct {
	Device  string    `json:"device"`
	WHEPURL string    `json:"whep_url"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	ID      string    `json:"id"`
}

// issueViewerToken makes a token for an enrolled, active device. Handing out access to
// a patient's live stream is a security action: its audit line is written first, and
// no token exists that the audit trail does not show.
func issueViewerToken(ctx context.Context, reg *trust.Registry, a trust.Auditor, tokens *viewerTokens, device, subject string, ttl time.Duration, by string) (ViewerToken, error) {
	switch {
	case ttl == 0:
		ttl = DefaultViewerTokenLifetime
	case ttl < 0 || ttl > MaxViewerTokenLifetime:
		return ViewerToken{}, fmt.Errorf("a viewer token lives at most %s, not %s", MaxViewerTokenLifetime, ttl)
	}
	if subject == "" {
		subject = by
	}
	devs, err := reg.Devices(ctx)
	if err != nil {
		return ViewerToken{}, err
	}
	i := slices.IndexFunc(devs, func(d trust.Device) bool { return d.ID == device })
	if i < 0 {
		return ViewerToken{}, fmt.Errorf("box %q is not enrolled at this hub", device)
	}
	if devs[i].State != hubstate.StateActive {
		return ViewerToken{}, fmt.Errorf("box %q is %s, not active", device, devs[i].State)
	}
	c := ViewerClaim{Device: device, Subject: subject, Expires: time.Now().Add(ttl).UTC().Truncate(time.Second), ID: newTokenID()}
	if err := a.Record("stream.viewer_token_issued", map[string]any{"device": device, "for": subject, "token": c.ID, "expires": c.Expires, "by": by}); err != nil {
		return ViewerToken{}, fmt.Errorf("no viewer token issued for %s: %w", device, err)
	}
	tok, err := tokens.issue(c)
	if err != nil {
		return ViewerToken{}, err
	}
	return ViewerToken{Device: device, Token: tok, Expires: c.Expires, ID: c.ID}, nil
}

// ViewerToken issues a viewer token for device, for subject (who will watch; the
// caller when empty), valid for ttl (DefaultViewerTokenLifetime when zero). whepBase
// is the viewer side's URL, from the configuration.
func (a HubAdmin) ViewerToken(device, subject string, ttl time.Duration, whepBase string) (ViewerToken, error) {
	var out ViewerToken
	form := url.Values{"device": {device}, "for": {subject}, "ttl": {ttl.String()}}
	err := a.do("viewer-token", form, &out, func(l hubLocal) error {
		var err error
		out, err = issueViewerToken(context.Background(), l.devices, l.audit, newViewerTokens(a.DataDir), device, subject, ttl, byLocal())
		return err
	})
	out.WHEPURL = whepBase + hubWHEPPath + "/" + url.PathEscape(device)
	return out, err
}
