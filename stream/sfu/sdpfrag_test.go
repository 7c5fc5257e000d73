package sfu

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// chromeRestart is a fragment as a WHIP client sends it for an ICE restart (RFC 9725
// §4.3.2 example, candidates from Chromium).
const chromeRestart = "a=ice-options:trickle ice2\r\n" +
	"a=group:BUNDLE 0 1\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
	"a=mid:0\r\n" +
	"a=ice-ufrag:ZjY9\r\n" +
	"a=ice-pwd:ixwz7hBwdFhGmCPwmYsvyJfP\r\n" +
	"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag ZjY9 network-id 1\r\n" +
	"a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag ZjY9 network-id 2\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" +
	"a=mid:1\r\n" +
	"a=ice-ufrag:ZjY9\r\n" +
	"a=ice-pwd:ixwz7hBwdFhGmCPwmYsvyJfP\r\n" +
	"a=end-of-candidates\r\n"

func TestParseFragment(t *testing.T) {
	f, err := ParseFragment([]byte(chromeRestart))
	if err != nil {
		t.Fatal(err)
	}
	if f.Ufrag != "ZjY9" || f.Pwd != "ixwz7hBwdFhGmCPwmYsvyJfP" || !f.EndOfCandidates {
		t.Errorf("credentials %q %q, end %v", f.Ufrag, f.Pwd, f.EndOfCandidates)
	}
	if len(f.Candidates) != 2 || f.Candidates[0].Mid != "0" || f.Candidates[0].MLineIndex != 0 ||
		!strings.HasPrefix(f.Candidates[1].Value, "candidate:3471623853 1 udp") {
		t.Errorf("candidates %+v", f.Candidates)
	}
	again, err := ParseFragment(f.Marshal())
	if err != nil || again.Ufrag != f.Ufrag || len(again.Candidates) != 2 || again.Candidates[1] != (FragmentCandidate{Mid: "0", MLineIndex: 0, Value: f.Candidates[1].Value}) {
		t.Errorf("round trip gave %+v, %v", again, err)
	}
	// LF line ends and a bare trickle of one candidate.
	if f, err := ParseFragment([]byte("a=mid:0\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\n")); err != nil || len(f.Candidates) != 1 || f.Ufrag != "" {
		t.Errorf("bare trickle: %+v, %v", f, err)
	}
}

func TestParseFragmentRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"not SDP":             "hello\r\n",
		"ufrag only":          "a=ice-ufrag:abcd\r\n",
		"short pwd":           "a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n",
		"bad character":       "a=ice-ufrag:ab;cd\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz\r\n",
		"two ufrags":          "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz\r\na=ice-ufrag:efgh\r\n",
		"empty candidate":     "a=candidate:\r\n",
		"line too long":       "a=candidate:" + strings.Repeat("x", 2000) + "\r\n",
		"too many candidates": strings.Repeat("a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n", 65),
		"too many lines":      strings.Repeat("a=x\r\n", 600),
	} {
		if _, err := ParseFragment([]byte(body)); !errors.Is(err, errBadFragment) {
			t.Errorf("%s: got %v, want a bad-fragment error", name, err)
		}
	}
}

// FuzzParseFragment: whatever a PATCH carries, the parser neither panics nor
// accepts something it cannot write back: a parsed fragment survives Marshal and a
// second parse with the same credentials and candidates.
func FuzzParseFragment(f *testing.F) {
	f.Add([]byte(chromeRestart))
	f.Add([]byte("a=end-of-candidates\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		frag, err := ParseFragment(body)
		if err != nil {
			return
		}
		again, err := ParseFragment(frag.Marshal())
		if err != nil {
			t.Fatalf("own output refused: %v\n%q", err, frag.Marshal())
		}
		if again.Ufrag != frag.Ufrag || again.Pwd != frag.Pwd || len(again.Candidates) != len(frag.Candidates) || again.EndOfCandidates != frag.EndOfCandidates {
			t.Fatalf("round trip changed the fragment: %+v → %+v", frag, again)
		}
		for i := range frag.Candidates {
			if again.Candidates[i].Value != frag.Candidates[i].Value || again.Candidates[i].Mid != frag.Candidates[i].Mid {
				t.Fatalf("candidate %d changed: %+v → %+v", i, frag.Candidates[i], again.Candidates[i])
			}
		}
	})
}

// FuzzH264Payload: any RTP payload is inspected without panicking, parameter sets
// it reports are really inside it, and a STAP-A made of them reads back the same.
func FuzzH264Payload(f *testing.F) {
	f.Add(stapA(testSPS, testPPS))
	f.Add(fuStart)
	f.Add([]byte{0x65, 0x88, 0x84})
	f.Add([]byte{0x78, 0x00, 0x05, 0x67})
	f.Fuzz(func(t *testing.T, payload []byte) {
		h := parseH264Payload(payload)
		for _, ps := range [][]byte{h.sps, h.pps} {
			if ps != nil && !bytes.Contains(payload, ps) {
				t.Fatalf("reported parameter set %x is not in the payload %x", ps, payload)
			}
		}
		if h.sps != nil && h.pps != nil {
			back := parseH264Payload(stapA(h.sps, h.pps))
			if !bytes.Equal(back.sps, h.sps) || !bytes.Equal(back.pps, h.pps) {
				t.Fatalf("STAP-A of %x and %x reads back %x and %x", h.sps, h.pps, back.sps, back.pps)
			}
		}
	})
}
