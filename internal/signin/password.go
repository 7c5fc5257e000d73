package signin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are argon2id's cost parameters.
type PasswordParams struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultPasswordParams are RFC 9106's second recommended option (section 4): t=3,
// m=64 MiB, p=4. The first option (2 GiB) does not fit a hub that may run on a small
// server beside its archive; 64 MiB still makes each guess on a GPU cost as much
// memory as the whole hash, and takes about half a second on this project's shared
// 2-core test machine, which a doctor signing in once a shift does not mind. The hub hashes at most maxHashing
// passwords at once, so sign-in floods cost at most that many times 64 MiB.
var DefaultPasswordParams = PasswordParams{Time: 3, Memory: 64 << 10, Threads: 4}

// Bounds on what a stored or submitted hash may ask for, so that a hash handed to the
// admin socket cannot make the hub spend a gigabyte or a minute on one sign-in.
const (
	maxMemoryKiB = 256 << 10
	maxTime      = 10
	maxThreads   = 16
	saltLen      = 16
	keyLen       = 32
	maxEncoded   = 256
)

// Password length bounds. The upper one bounds the work a stranger's sign-in request
// can cause before the hash; passphrases fit easily.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 1024
)

// CheckPasswordPolicy tells whether pw may become a password.
func CheckPasswordPolicy(pw string) error {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLen:
		return fmt.Errorf("signin: a password needs at least %d characters, this one has %d", MinPasswordLen, n)
	case len(pw) > MaxPasswordLen:
		return fmt.Errorf("signin: a password may have at most %d bytes", MaxPasswordLen)
	}
	return nil
}

// HashPassword returns pw hashed with argon2id under p (zero: DefaultPasswordParams)
// and a fresh 16-byte salt, in the PHC string format every argon2 tool reads:
// $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>, both in unpadded standard base64.
func HashPassword(pw string, p PasswordParams) (string, error) {
	if err := CheckPasswordPolicy(pw); err != nil {
		return "", err
	}
	if p == (PasswordParams{}) {
		p = DefaultPasswordParams
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("signin: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen)
	return encodeHash(p, salt, key), nil
}

func encodeHash(p PasswordParams, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// passwordHash is a parsed PHC string.
type passwordHash struct {
	params PasswordParams
	salt   []byte
	key    []byte
}

// parsePasswordHash reads an argon2id PHC string, refusing other algorithms and
// versions and parameters beyond the bounds above.
func parsePasswordHash(encoded string) (passwordHash, error) {
	var h passwordHash
	if len(encoded) > maxEncoded {
		return h, errors.New("password hash is too long")
	}
	// The base64 decoder skips line breaks; a stored hash has none.
	if strings.ContainsAny(encoded, "\r\n") {
		return h, errors.New("password hash has a line break")
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return h, errors.New("password hash is not a PHC string $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	if parts[1] != "argon2id" {
		return h, fmt.Errorf("password hash uses %q, not argon2id", parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, fmt.Errorf("password hash has version %q, want v=%d", parts[2], argon2.Version)
	}
	var err error
	if h.params, err = parseParams(parts[3]); err != nil {
		return h, err
	}
	// Strict: one string per salt and hash, so that what is stored is what is parsed.
	b64 := base64.RawStdEncoding.Strict()
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return h, errors.New("password hash: the salt is not 8 to 64 bytes of unpadded base64")
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return h, errors.New("password hash: the hash is not 16 to 64 bytes of unpadded base64")
	}
	return h, nil
}

// parseParams reads "m=65536,t=3,p=4" in that order, as the PHC format writes them.
func parseParams(s string) (PasswordParams, error) {
	var p PasswordParams
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return p, fmt.Errorf("password hash parameters %q are not m=…,t=…,p=…", s)
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(fields[i], name)
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || n == 0 || strconv.FormatUint(n, 10) != v {
			return p, fmt.Errorf("password hash parameter %q is not %s followed by a positive number", fields[i], name)
		}
		vals[i] = n
	}
	if vals[0] < 8*vals[2] {
		return p, fmt.Errorf("password hash parameters %q: argon2 needs m of at least 8 KiB per thread", s)
	}
	if vals[0] > maxMemoryKiB || vals[1] > maxTime || vals[2] > maxThreads {
		return p, fmt.Errorf("password hash parameters %q exceed m=%d,t=%d,p=%d", s, maxMemoryKiB, maxTime, maxThreads)
	}
	return PasswordParams{Memory: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2])}, nil
}

// CheckPasswordHash tells whether encoded is an argon2id hash this hub can verify,
// e.g. one that came through the admin socket.
func CheckPasswordHash(encoded string) error {
	_, err := parsePasswordHash(encoded)
	return err
}

// verifyPassword tells whether pw matches encoded. The comparison takes the same time
// wherever the keys differ.
func verifyPassword(pw, encoded string) (bool, error) {
	h, err := parsePasswordHash(encoded)
	if err != nil {
		return false, err
	}
	if len(pw) > MaxPasswordLen {
		return false, nil
	}
	key := argon2.IDKey([]byte(pw), h.salt, h.params.Time, h.params.Memory, h.params.Threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}
