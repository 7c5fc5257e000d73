package whip

import (
	"strings"
	"testing"
	"time"
)

func TestICEServerLinks(t *testing.T) {
	servers, err := parseICEServerLinks([]string{
		`<stun:stun.example.net>; rel="ice-server", <https://hub.example/whep>; rel="alternate"`,
		`<turn:turn.example.net?transport=udp>; rel="ice-server"; username="box;1"; credential="p,a\"ss"; credential-type="password"`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 || servers[0].URLs[0] != "stun:stun.example.net" ||
		servers[1].URLs[0] != "turn:turn.example.net?transport=udp" ||
		servers[1].Username != "box;1" || servers[1].Credential != `p,a"ss` {
		t.Errorf("servers %+v", servers)
	}
	bad := []string{
		`<stun:x>; rel="ice-server"; username="open`,
		`stun:x; rel="ice-server"`,
		`<turn:x>; rel="ice-server"; credential-type="oauth"`,
		strings.Repeat(`<stun:x>; rel="ice-server", `, maxLinkHeaders) + `<stun:y>; rel="ice-server"`,
	}
	for _, h := range bad {
		if _, err := parseICEServerLinks([]string{h}); err == nil {
			t.Errorf("accepted %q", h)
		}
	}
}

// A restart offer as pion writes it, shortened.
const restartOffer = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:NEWufrag\r\na=ice-pwd:NEWpasswordNEWpassword12\r\n" +
	"a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:NEWufrag\r\na=ice-pwd:NEWpasswordNEWpassword12\r\n" +
	"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\na=ice-ufrag:NEWufrag\r\na=ice-pwd:NEWpasswordNEWpassword12\r\n"

func TestRestartFragment(t *testing.T) {
	frag, err := restartFragment(restartOffer)
	if err != nil {
		t.Fatal(err)
	}
	want := "a=ice-ufrag:NEWufrag\r\na=ice-pwd:NEWpasswordNEWpassword12\r\na=group:BUNDLE 0 1 2\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n"
	if frag != want {
		t.Errorf("fragment\n%q\nwant\n%q", frag, want)
	}
	if _, err := restartFragment(strings.ReplaceAll(restartOffer, "a=ice-pwd:NEWpasswordNEWpassword12\r\nm=application", "a=ice-pwd:OTHERpasswordOTHERpassword\r\nm=application")); err == nil {
		t.Error("differing credentials accepted")
	}
}

func TestRemoteICEApplied(t *testing.T) {
	answer := "v=0\r\na=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldpasswordoldpassword\r\n" +
		"a=candidate:9 1 udp 1 192.0.2.1 4000 typ host\r\na=end-of-candidates\r\na=fingerprint:sha-256 AB\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\na=ice-ufrag:old1\r\na=ice-pwd:oldpasswordoldpassword\r\n"
	p, err := readICEParams("a=ice-ufrag:new2\na=ice-pwd:newpasswordnewpassword\na=candidate:7 1 udp 5 198.51.100.2 5000 typ host\n")
	if err != nil {
		t.Fatal(err)
	}
	got := withRemoteICE(answer, p)
	want := "v=0\r\na=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n" +
		"a=candidate:7 1 udp 5 198.51.100.2 5000 typ host\r\na=end-of-candidates\r\n" +
		"a=ice-ufrag:new2\r\na=ice-pwd:newpasswordnewpassword\r\na=fingerprint:sha-256 AB\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\na=ice-ufrag:new2\r\na=ice-pwd:newpasswordnewpassword\r\n"
	if got != want {
		t.Errorf("answer\n%q\nwant\n%q", got, want)
	}
	for _, bad := range []string{
		"a=ice-pwd:newpasswordnewpassword\n",  // no ufrag
		"a=ice-ufrag:new2\na=ice-pwd:short\n", // pwd too short
		"a=ice-ufrag:new2\na=ice-pwd:newpasswordnewpassword\n" + strings.Repeat("a=candidate:1 1 udp 1 192.0.2.1 1 typ host\n", maxFragCandidates+1),
	} {
		if _, err := readICEParams(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestVideoGate feeds the gate a stream twice its budget for ten seconds: what passes
// stays within the budget and its burst, every run of passed frames starts with a
// keyframe, and a stream within budget passes whole.
func TestVideoGate(t *testing.T) {
	const budget = 1_000_000
	run := func(frameBytes, keyBytes int) (passedBytes int, passed, dropped int, waits int) {
		var g videoGate
		now := time.Unix(0, 0)
		g.setBudget(budget, now)
		broken := false
		for i := range 300 {
			now = now.Add(time.Second / 30)
			key := i%30 == 0
			size := frameBytes
			if key {
				size = keyBytes
			}
			ok, started := g.admit(now, size, key)
			if started {
				waits++
			}
			switch {
			case ok:
				if broken && !key {
					t.Fatalf("frame %d passed after a drop without a keyframe", i)
				}
				broken = false
				passed++
				passedBytes += size
			default:
				if !g.overBudget {
					t.Fatalf("frame %d dropped without the gate saying it was over budget", i)
				}
				broken = true
				dropped++
			}
		}
		return
	}
	// 2 Mbit/s of P-frames with 40 KB keyframes.
	bytes, passed, dropped, waits := run(8000, 40000)
	limit := budget/8*10 + budget/8 + 40000 // ten seconds, the burst, and one frame of debt
	if bytes > limit || passed == 0 || dropped == 0 || waits == 0 {
		t.Errorf("over budget: %d bytes passed (limit %d), %d frames passed, %d dropped, %d keyframe requests", bytes, limit, passed, dropped, waits)
	}
	// Half the budget passes whole.
	if _, _, dropped, _ := run(1500, 10000); dropped != 0 {
		t.Errorf("%d frames dropped from a stream within budget", dropped)
	}
}
