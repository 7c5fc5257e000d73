package signin

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHandoverSignsTheSameAccountInOnce: a doctor signed in here is handed over to
// another hub of the shared state (here, a second browser on the same accounts): the
// hand-over is audited with the box and the hub it goes to, signs in the same
// account once, is named in the sign-in's audit line, and expires within 30 s; with
// the audit log failing, none is made.
func TestHandoverSignsTheSameAccountInOnce(t *testing.T) {
	tg := startGate(t)
	doctor := tg.browser(t)
	if status, out := doctor.signIn("dr.li", "correct horse battery"); status != http.StatusOK {
		t.Fatalf("sign in: %d %s", status, out)
	}
	v := Viewer{User: "dr.li", Role: RoleDoctor, Session: "0123456789ab", Remote: "127.0.0.1:5000"}
	tok, err := tg.gate.IssueHandover(context.Background(), v, "hub-a:8443", map[string]any{"device": "AMB-1"})
	if err != nil {
		t.Fatal(err)
	}
	issued := tg.audit.Last("signin.handover_issued")
	if issued == nil || issued["user"] != "dr.li" || issued["device"] != "AMB-1" || issued["to"] != "hub-a:8443" || issued["session"] != "0123456789ab" {
		t.Fatalf("the hand-over's audit line: %v", issued)
	}
	if !tok.Expires.After(tg.clock.Now()) || tok.Expires.Sub(tg.clock.Now()) > HandoverLifetime {
		t.Fatalf("the hand-over expires at %v, want within %v of %v", tok.Expires, HandoverLifetime, tg.clock.Now())
	}

	there := tg.browser(t)
	body := `{"token":"` + tok.Token + `"}`
	if status, out := there.do("POST", LinkRedeemPath, body); status != http.StatusOK || !strings.Contains(out, `"user":"dr.li"`) {
		t.Fatalf("the hand-over at the other hub: %d %s", status, out)
	}
	if in := tg.audit.Last("signin"); in["user"] != "dr.li" || in["link"] != issued["link"] || in["link"] == nil {
		t.Fatalf("the sign-in's audit line %v does not name the hand-over %v", in, issued["link"])
	}
	if status, out := tg.browser(t).do("POST", LinkRedeemPath, body); status != http.StatusUnauthorized || !strings.Contains(out, "already used") {
		t.Fatalf("the hand-over used again: %d %s", status, out)
	}

	late, err := tg.gate.IssueHandover(context.Background(), v, "hub-a:8443", map[string]any{"device": "AMB-1"})
	if err != nil {
		t.Fatal(err)
	}
	tg.clock.advance(HandoverLifetime + time.Second)
	if status, out := tg.browser(t).do("POST", LinkRedeemPath, `{"token":"`+late.Token+`"}`); status != http.StatusUnauthorized || !strings.Contains(out, "expired") {
		t.Fatalf("a hand-over after %v: %d %s", HandoverLifetime+time.Second, status, out)
	}

	tg.audit.FailWith(errors.New("disk full"))
	if _, err := tg.gate.IssueHandover(context.Background(), v, "hub-a:8443", nil); !errors.Is(err, ErrNotAudited) {
		t.Fatalf("a hand-over with a failing audit log: %v, want ErrNotAudited", err)
	}
}
