package sfu_test

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/service"
	"lifeline/stream/sfu"
)

// Example shows how the hub mounts the SFU: boxes are named by their mTLS identity
// (here a stand-in for trust.DeviceFrom), viewers by whatever signed them in, every
// vitals message is stored, and a doctor's control message is forwarded to the crew.
func Example() {
	deviceOf := func(r *http.Request) (string, bool) { return r.Header.Get("X-Device"), r.Header.Get("X-Device") != "" }
	var s *sfu.SFU
	s, err := sfu.New(sfu.Config{
		Listen: "127.0.0.1:8445",
		AuthorizePublisher: func(r *http.Request) (string, error) {
			if id, ok := deviceOf(r); ok {
				return id, nil
			}
			return "", errors.New("no enrolled box certificate")
		},
		AuthorizeViewer: func(r *http.Request, device string) (string, error) {
			return "", errors.New("sign in first") // the ED screen's sessions decide
		},
		OnPublisherMessage: func(device, label string, data []byte) []byte {
			return nil // store data durably; return an acknowledgement if the box wants one
		},
		OnViewerControl: func(v sfu.ViewerInfo, data []byte) {
			// Once the ED screen has checked the doctor's role: text to the crew, or
			// push-to-talk (and s.Talkback(v.Device, "") when released).
			_ = s.SendToPublisher(v.Device, sfu.ControlLabel, data)
			_ = s.Talkback(v.Device, v.Session)
		},
		OnEvent:    func(e sfu.Event) { slog.Info(string(e.Kind), "device", e.Device, "viewer", e.Viewer) },
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/whip", s.WHIP())  // behind the hub's RequireDevice
	mux.Handle("/whip/", s.WHIP()) // PATCH and DELETE of a box's session
	mux.Handle("/whep/", s.WHEP())

	sup := service.NewSupervisor(slog.Default(), prometheus.NewRegistry(), service.DefaultBackoff)
	sup.Add(s.Service()) // binds the media port when the supervisor runs
	// Output:
}
