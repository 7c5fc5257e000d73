package edscreen_test

import (
	"context"
	"net/http"

	"lifeline/stream/edscreen"
)

// Example shows how the hub mounts the ED screen: Boxes reads what the hub knows of
// each box (live sessions from the SFU, ETA and mission from dispatch, the crew's
// patient card), and Wrap is the hub's sign-in, so that nothing of the screen is
// served to a browser that is not signed in. The WHEP and history handlers are
// mounted by the hub at the patterns the screen is told.
func Example() {
	requireSignIn := func(next http.Handler) http.Handler { return next } // the hub's sign-in middleware
	screen, err := edscreen.New(edscreen.Config{
		Boxes: func(ctx context.Context) ([]edscreen.BoxSummary, error) {
			return []edscreen.BoxSummary{{Device: "amb-07", Live: true, Mission: edscreen.MissionTransporting}}, nil
		},
		WHEPPattern:    "/whep/{device}",                  // sfu.Config.WHEPPath + "/{device}"
		HistoryPattern: "/api/v1/devices/{device}/vitals", // where vitals.Archive.HistoryHandler is mounted
		Wrap:           requireSignIn,
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ed/", screen.Handler())
	// Output:
}
