package whip

import (
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// parseICEServerLinks reads the Link headers of a WHIP answer (RFC 9725 §4.6) and
// returns the STUN and TURN servers among them, e.g.
//
//	Link: <turn:turn.example.net?transport=udp>; rel="ice-server"; username="u"; credential="p"; credential-type="password"
//
// Links with another rel are ignored; an ice-server link that cannot be read is an
// error, because a TURN server silently dropped is a session that fails later for no
// visible reason.
func parseICEServerLinks(headers []string) ([]webrtc.ICEServer, error) {
	var servers []webrtc.ICEServer
	for _, h := range headers {
		links, err := splitLinks(h)
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			if !strings.EqualFold(l.params["rel"], "ice-server") {
				continue
			}
			if !strings.HasPrefix(l.target, "stun:") && !strings.HasPrefix(l.target, "stuns:") &&
				!strings.HasPrefix(l.target, "turn:") && !strings.HasPrefix(l.target, "turns:") {
				return nil, fmt.Errorf("ice-server link %q is neither STUN nor TURN", l.target)
			}
			if ct, ok := l.params["credential-type"]; ok && ct != "password" {
				return nil, fmt.Errorf("ice-server link %q: credential-type %q is not supported", l.target, ct)
			}
			if len(servers) == maxLinkHeaders {
				return nil, fmt.Errorf("more than %d ice-server links", maxLinkHeaders)
			}
			servers = append(servers, webrtc.ICEServer{
				URLs:       []string{l.target},
				Username:   l.params["username"],
				Credential: l.params["credential"],
			})
		}
	}
	return servers, nil
}

type link struct {
	target string
	params map[string]string
}

// splitLinks parses one Link header value (RFC 8288): comma-separated links, each a
// <target> followed by ;-separated parameters whose values may be quoted strings.
func splitLinks(h string) ([]link, error) {
	var out []link
	s := strings.TrimSpace(h)
	for s != "" {
		if s[0] != '<' {
			return nil, fmt.Errorf("link header %q: want <target>", h)
		}
		end := strings.IndexByte(s, '>')
		if end < 0 {
			return nil, fmt.Errorf("link header %q: unterminated <target>", h)
		}
		l := link{target: s[1:end], params: map[string]string{}}
		s = strings.TrimSpace(s[end+1:])
		for strings.HasPrefix(s, ";") {
			var key, val string
			var err error
			key, val, s, err = nextLinkParam(strings.TrimSpace(s[1:]))
			if err != nil {
				return nil, fmt.Errorf("link header %q: %w", h, err)
			}
			l.params[strings.ToLower(key)] = val
		}
		out = append(out, l)
		if s == "" {
			break
		}
		if s[0] != ',' {
			return nil, fmt.Errorf("link header %q: unexpected %q", h, s)
		}
		s = strings.TrimSpace(s[1:])
	}
	return out, nil
}

// nextLinkParam reads key=value or key="quoted value" and returns the rest.
func nextLinkParam(s string) (key, val, rest string, err error) {
	eq := strings.IndexAny(s, "=;,")
	if eq < 0 || s[eq] != '=' {
		// A parameter without a value.
		if eq < 0 {
			return strings.TrimSpace(s), "", "", nil
		}
		return strings.TrimSpace(s[:eq]), "", s[eq:], nil
	}
	key = strings.TrimSpace(s[:eq])
	s = strings.TrimSpace(s[eq+1:])
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				return key, b.String(), strings.TrimSpace(s[i+1:]), nil
			default:
				b.WriteByte(s[i])
			}
		}
		return "", "", "", fmt.Errorf("unterminated quoted value for %q", key)
	}
	end := strings.IndexAny(s, ";,")
	if end < 0 {
		return key, strings.TrimSpace(s), "", nil
	}
	return key, strings.TrimSpace(s[:end]), s[end:], nil
}
