package sfu

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Limits on a trickle-ice-sdpfrag body. A box sends a handful of candidates per
// restart; anything far beyond that is a mistake or an attack.
const (
	maxFragmentLines      = 512
	maxFragmentCandidates = 64
	maxFragmentLineLen    = 1024
)

// errBadFragment is wrapped by every error of ParseFragment, so handlers can answer
// 400 for all of them.
var errBadFragment = errors.New("bad trickle-ice-sdpfrag")

// Fragment is an SDP fragment of media type application/trickle-ice-sdpfrag
// (RFC 8840 §9), as a WHIP or WHEP client sends it in a PATCH to trickle candidates or
// to restart ICE with new credentials.
type Fragment struct {
	// Ufrag and Pwd are the ICE credentials the fragment applies to; new ones mean an
	// ICE restart. Session-level values apply to every media section that has none.
	Ufrag, Pwd string
	// Candidates are the a=candidate values (without "a="), in order.
	Candidates []FragmentCandidate
	// EndOfCandidates reports an a=end-of-candidates line.
	EndOfCandidates bool
}

// FragmentCandidate is one trickled candidate and the media section it was listed in.
type FragmentCandidate struct {
	Mid        string // the a=mid of its media section, "" at session level
	MLineIndex int    // index of its media section, -1 at session level
	Value      string // "candidate:…", as in an a= line without "a="
}

// ParseFragment parses a trickle-ice-sdpfrag body. It accepts CRLF or LF line ends,
// ignores attributes it does not need (ice-options, group, extmap…) and rejects
// bodies beyond the package's bounds, credentials that differ between media
// sections, and credentials with characters ICE does not allow.
func ParseFragment(body []byte) (*Fragment, error) {
	f := &Fragment{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 256), maxFragmentLineLen)
	mline, mid, lines := -1, "", 0
	for sc.Scan() {
		lines++
		if lines > maxFragmentLines {
			return nil, fmt.Errorf("%w: more than %d lines", errBadFragment, maxFragmentLines)
		}
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fmt.Errorf("%w: line %d is not an SDP line: %.40q", errBadFragment, lines, line)
		}
		switch line[0] {
		case 'm':
			mline++
			mid = ""
			continue
		case 'a':
		default:
			continue
		}
		attr, value, _ := strings.Cut(line[2:], ":")
		switch attr {
		case "mid":
			mid = value
		case "ice-ufrag":
			if err := setCredential(&f.Ufrag, value, "ice-ufrag", 4); err != nil {
				return nil, err
			}
		case "ice-pwd":
			if err := setCredential(&f.Pwd, value, "ice-pwd", 22); err != nil {
				return nil, err
			}
		case "candidate":
			if len(f.Candidates) == maxFragmentCandidates {
				return nil, fmt.Errorf("%w: more than %d candidates", errBadFragment, maxFragmentCandidates)
			}
			if value == "" {
				return nil, fmt.Errorf("%w: line %d: empty candidate", errBadFragment, lines)
			}
			f.Candidates = append(f.Candidates, FragmentCandidate{Mid: mid, MLineIndex: mline, Value: "candidate:" + value})
		case "end-of-candidates":
			f.EndOfCandidates = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v (lines are limited to %d bytes)", errBadFragment, err, maxFragmentLineLen)
	}
	if (f.Ufrag == "") != (f.Pwd == "") {
		return nil, fmt.Errorf("%w: ice-ufrag and ice-pwd must come together", errBadFragment)
	}
	return f, nil
}

// setCredential stores an ICE credential, refusing a second, different value: one
// transport is bundled, so every media section must carry the same credentials.
func setCredential(dst *string, value, name string, minLen int) error {
	if len(value) < minLen || len(value) > 256 {
		return fmt.Errorf("%w: %s must be %d to 256 characters, got %d", errBadFragment, name, minLen, len(value))
	}
	for i := 0; i < len(value); i++ {
		if !isICEChar(value[i]) {
			return fmt.Errorf("%w: %s has a character ICE does not allow at offset %d", errBadFragment, name, i)
		}
	}
	if *dst != "" && *dst != value {
		return fmt.Errorf("%w: two different %s values", errBadFragment, name)
	}
	*dst = value
	return nil
}

// isICEChar reports whether c may appear in ICE credentials (RFC 8839 §5.4: ALPHA,
// DIGIT, "+" and "/").
func isICEChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

// Marshal writes the fragment as a trickle-ice-sdpfrag body: credentials at session
// level, then the candidates under the media section they belong to.
func (f *Fragment) Marshal() []byte {
	var b bytes.Buffer
	if f.Ufrag != "" {
		fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", f.Ufrag, f.Pwd)
	}
	lastMid, started := "", false
	for _, c := range f.Candidates {
		if !started || c.Mid != lastMid {
			fmt.Fprintf(&b, "m=audio 9 RTP/AVP 0\r\na=mid:%s\r\n", c.Mid)
			lastMid, started = c.Mid, true
		}
		fmt.Fprintf(&b, "a=%s\r\n", c.Value)
	}
	if f.EndOfCandidates {
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.Bytes()
}
