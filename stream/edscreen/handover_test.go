package edscreen

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// TestBoxAtAnotherHubGivesTheHandover: a box live at another hub (Hub set) is given
// the hand-over's URL in its view's JSON; a box live here is not; a hand-over pattern
// without {device} is refused.
func TestBoxAtAnotherHubGivesTheHandover(t *testing.T) {
	list := []BoxSummary{{Device: "amb-07", Live: true, Hub: "hub-a.example:8443"}, {Device: "amb-08", Live: true}}
	s, err := New(Config{Boxes: func(context.Context) ([]BoxSummary, error) { return list, nil }, HandoverPattern: "/api/v1/handover/{device}", Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	for device, want := range map[string]string{"amb-07": "/api/v1/handover/amb-07", "amb-08": ""} {
		res, body := get(t, srv.URL+"/ed/api/box/"+device)
		var v BoxView
		if err := json.Unmarshal([]byte(body), &v); err != nil || res.StatusCode != 200 {
			t.Fatalf("box %s: %d %s %v", device, res.StatusCode, body, err)
		}
		if v.Handover != want {
			t.Errorf("box %s: hand-over %q, want %q (%s)", device, v.Handover, want, body)
		}
	}
	res, body := get(t, srv.URL+"/ed/api/boxes")
	var b Board
	if err := json.Unmarshal([]byte(body), &b); err != nil || res.StatusCode != 200 || len(b.Boxes) != 2 {
		t.Fatalf("board: %d %s %v", res.StatusCode, body, err)
	}
	for _, box := range b.Boxes {
		if box.Device == "amb-07" && box.Hub != "hub-a.example:8443" {
			t.Errorf("the board's amb-07 is at %q, want hub-a.example:8443", box.Hub)
		}
	}
	if _, err := New(Config{Boxes: func(context.Context) ([]BoxSummary, error) { return nil, nil }, HandoverPattern: "/api/v1/handover"}); err == nil {
		t.Error("a hand-over pattern without {device} was taken")
	}
}
