package whip

import (
	"errors"
	"fmt"
	"strings"
)

// iceParams are one side's ICE credentials and candidates, as an ICE restart
// exchanges them in application/trickle-ice-sdpfrag bodies (RFC 8840, RFC 9725 §4.3).
type iceParams struct {
	ufrag      string
	pwd        string
	candidates []string // values of a=candidate lines, without "a="
}

// maxFragCandidates bounds how many candidates an endpoint's restart answer may carry.
const maxFragCandidates = 64

// restartFragment is the body of the box's ICE restart PATCH: the new credentials and
// candidates of its restart offer, under the first media section's mid, which BUNDLE
// makes the transport of the whole session.
func restartFragment(offer string) (string, error) {
	p, err := readICEParams(offer)
	if err != nil {
		return "", fmt.Errorf("restart offer: %w", err)
	}
	var group, mline, mid string
	inFirstMedia := false
	for _, line := range sdpLines(offer) {
		switch {
		case strings.HasPrefix(line, "a=group:BUNDLE") && mline == "":
			group = line
		case strings.HasPrefix(line, "m="):
			if mline != "" {
				inFirstMedia = false
				continue
			}
			mline, inFirstMedia = line, true
		case inFirstMedia && strings.HasPrefix(line, "a=mid:") && mid == "":
			mid = line
		}
	}
	if mline == "" || mid == "" {
		return "", errors.New("restart offer: no media section with a mid")
	}
	var b strings.Builder
	b.WriteString("a=ice-ufrag:" + p.ufrag + "\r\n")
	b.WriteString("a=ice-pwd:" + p.pwd + "\r\n")
	if group != "" {
		b.WriteString(group + "\r\n")
	}
	// The fragment's m-line carries no port or formats that matter (RFC 8840 §9): a
	// discard port keeps it from looking like a real address.
	fields := strings.Fields(strings.TrimPrefix(mline, "m="))
	if len(fields) < 4 {
		return "", fmt.Errorf("restart offer: malformed m-line %q", mline)
	}
	b.WriteString("m=" + fields[0] + " 9 " + strings.Join(fields[2:], " ") + "\r\n")
	b.WriteString(mid + "\r\n")
	for _, c := range p.candidates {
		b.WriteString("a=" + c + "\r\n")
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String(), nil
}

// readICEParams takes the ICE credentials and candidates out of an SDP or an SDP
// fragment. Credentials may sit at session level or in a media section; with BUNDLE all
// media share one transport, so differing credentials are an error.
func readICEParams(sdp string) (iceParams, error) {
	var p iceParams
	for _, line := range sdpLines(sdp) {
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			v := strings.TrimPrefix(line, "a=ice-ufrag:")
			if p.ufrag != "" && p.ufrag != v {
				return p, errors.New("differing ice-ufrag values")
			}
			p.ufrag = v
		case strings.HasPrefix(line, "a=ice-pwd:"):
			v := strings.TrimPrefix(line, "a=ice-pwd:")
			if p.pwd != "" && p.pwd != v {
				return p, errors.New("differing ice-pwd values")
			}
			p.pwd = v
		case strings.HasPrefix(line, "a=candidate:"):
			if len(p.candidates) == maxFragCandidates {
				return p, fmt.Errorf("more than %d candidates", maxFragCandidates)
			}
			p.candidates = append(p.candidates, strings.TrimPrefix(line, "a="))
		}
	}
	// RFC 8839 §5.4: ufrag 4..256 characters, pwd 22..256.
	if len(p.ufrag) < 4 || len(p.ufrag) > 256 {
		return p, fmt.Errorf("ice-ufrag %q missing or of bad length", p.ufrag)
	}
	if len(p.pwd) < 22 || len(p.pwd) > 256 {
		return p, errors.New("ice-pwd missing or of bad length")
	}
	return p, nil
}

// withRemoteICE rewrites the session's answer with the endpoint's new ICE credentials
// and candidates from its restart answer, so that setting it as the remote description
// completes the box's restart offer. Everything else (codecs, DTLS fingerprint, data
// channel) stays as negotiated: an ICE restart changes nothing else.
func withRemoteICE(answer string, p iceParams) string {
	var out []string
	firstMedia := true
	sawMedia := false
	for _, line := range sdpLines(answer) {
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			line = "a=ice-ufrag:" + p.ufrag
		case strings.HasPrefix(line, "a=ice-pwd:"):
			line = "a=ice-pwd:" + p.pwd
		case strings.HasPrefix(line, "a=candidate:"), line == "a=end-of-candidates":
			continue
		case strings.HasPrefix(line, "m="):
			if sawMedia {
				firstMedia = false
			}
			sawMedia = true
		}
		out = append(out, line)
		if strings.HasPrefix(line, "a=mid:") && firstMedia {
			for _, c := range p.candidates {
				out = append(out, "a="+c)
			}
			out = append(out, "a=end-of-candidates")
		}
	}
	return strings.Join(out, "\r\n") + "\r\n"
}

// sdpLines splits an SDP into its lines, accepting CRLF or bare LF, dropping blanks.
func sdpLines(sdp string) []string {
	raw := strings.Split(strings.ReplaceAll(sdp, "\r\n", "\n"), "\n")
	out := raw[:0]
	for _, l := range raw {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}
