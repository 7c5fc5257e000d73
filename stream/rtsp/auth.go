package rtsp

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Challenge is one WWW-Authenticate challenge of a 401 response (RFC 2617, RFC 7616).
type Challenge struct {
	Scheme string // "Basic" or "Digest"
	Params map[string]string
}

// ParseChallenge reads the value of a WWW-Authenticate field: a scheme and its
// comma-separated name=value parameters, values quoted or not.
func ParseChallenge(v string) (Challenge, error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if scheme == "" {
		return Challenge{}, fmt.Errorf("rtsp: empty WWW-Authenticate")
	}
	c := Challenge{Scheme: scheme, Params: map[string]string{}}
	rest = strings.TrimSpace(rest)
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return Challenge{}, fmt.Errorf("rtsp: WWW-Authenticate parameter without a value in %q", truncate(v))
		}
		name = strings.ToLower(strings.TrimSpace(name))
		var value string
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return Challenge{}, fmt.Errorf("rtsp: unterminated quoted value in %q", truncate(v))
			}
			value, after = after[1:1+end], after[2+end:]
		} else {
			value, after, _ = strings.Cut(after, ",")
			after = "," + after
		}
		c.Params[name] = strings.TrimSpace(value)
		after = strings.TrimSpace(after)
		after = strings.TrimPrefix(after, ",")
		rest = strings.TrimSpace(after)
	}
	return c, nil
}

// credentials answer a server's challenge on every request once it has asked.
type credentials struct {
	user, pass string
	challenge  Challenge
	nc         int // the Digest nonce count, per nonce
}

// pickChallenge chooses Digest over Basic among the challenges of a 401 response:
// Digest keeps the password off the wire.
func pickChallenge(values []string) (Challenge, error) {
	var basic *Challenge
	var lastErr error
	for _, v := range values {
		c, err := ParseChallenge(v)
		if err != nil {
			lastErr = err
			continue
		}
		switch {
		case strings.EqualFold(c.Scheme, "Digest"):
			if _, err := digestHash(c.Params["algorithm"]); err != nil {
				lastErr = err
				continue
			}
			if c.Params["nonce"] == "" {
				lastErr = fmt.Errorf("rtsp: Digest challenge without a nonce")
				continue
			}
			return c, nil
		case strings.EqualFold(c.Scheme, "Basic"):
			basic = &c
		}
	}
	if basic != nil {
		return *basic, nil
	}
	if lastErr != nil {
		return Challenge{}, lastErr
	}
	return Challenge{}, fmt.Errorf("rtsp: 401 with no Basic or Digest challenge (WWW-Authenticate %q)", values)
}

// digestHash returns the hash of a Digest algorithm: MD5 (the default, what cameras
// use) or SHA-256 (RFC 7616). The -sess variants hash the nonce into the key.
func digestHash(algorithm string) (func() hash.Hash, error) {
	switch strings.ToUpper(strings.TrimSuffix(strings.ToUpper(algorithm), "-SESS")) {
	case "", "MD5":
		return md5.New, nil
	case "SHA-256":
		return sha256.New, nil
	}
	return nil, fmt.Errorf("rtsp: Digest algorithm %q not supported (MD5 and SHA-256 are)", truncate(algorithm))
}

// md5Hash is the hash of Digest MD5.
var md5Hash = md5.New

func hexHash(h func() hash.Hash, parts ...string) string {
	d := h()
	d.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(d.Sum(nil))
}

// authorization returns the Authorization field for a request.
func (c *credentials) authorization(method, uri string) string {
	if strings.EqualFold(c.challenge.Scheme, "Basic") {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.pass))
	}
	p := c.challenge.Params
	h, _ := digestHash(p["algorithm"]) // checked in pickChallenge
	cnonce := newCnonce()
	ha1 := hexHash(h, c.user, p["realm"], c.pass)
	if strings.HasSuffix(strings.ToLower(p["algorithm"]), "-sess") {
		ha1 = hexHash(h, ha1, p["nonce"], cnonce)
	}
	ha2 := hexHash(h, method, uri)
	fields := []string{
		fmt.Sprintf(`username="%s"`, c.user),
		fmt.Sprintf(`realm="%s"`, p["realm"]),
		fmt.Sprintf(`nonce="%s"`, p["nonce"]),
		fmt.Sprintf(`uri="%s"`, uri),
	}
	var response string
	if qopOffers(p["qop"], "auth") {
		c.nc++
		nc := fmt.Sprintf("%08x", c.nc)
		response = hexHash(h, ha1, p["nonce"], nc, cnonce, "auth", ha2)
		fields = append(fields, "qop=auth", "nc="+nc, fmt.Sprintf(`cnonce="%s"`, cnonce))
	} else {
		response = hexHash(h, ha1, p["nonce"], ha2)
	}
	fields = append(fields, fmt.Sprintf(`response="%s"`, response))
	if a := p["algorithm"]; a != "" {
		fields = append(fields, "algorithm="+a)
	}
	if o := p["opaque"]; o != "" {
		fields = append(fields, fmt.Sprintf(`opaque="%s"`, o))
	}
	return "Digest " + strings.Join(fields, ", ")
}

// qopOffers reports whether the comma-separated qop list offers want.
func qopOffers(list, want string) bool {
	for q := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(q), want) {
			return true
		}
	}
	return false
}

func newCnonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail on Linux
	return hex.EncodeToString(b[:])
}
