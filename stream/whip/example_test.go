package whip_test

import (
	"context"
	"log"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/service"
	"lifeline/internal/trust"
	"lifeline/stream/camera"
	"lifeline/stream/whip"
)

// The appliance publishes to the enrolled hub with the box's identity, attaches the
// vitals channels, and lets the camera side follow keyframe requests and the budget.
func Example() {
	id, err := trust.LoadIdentity("/var/lib/lifeline/edge/identity")
	if err != nil {
		log.Fatal(err)
	}
	zero := uint16(0)
	p, err := whip.New(whip.Config{
		Endpoint: "https://hub.example:8443/whip",
		TLS:      id.ClientTLS(),
		Audio:    camera.Opus,
		DataChannels: []whip.DataChannel{
			{Label: "vitals-wave", Ordered: false, MaxRetransmits: &zero,
				OnOpen: func(send func([]byte) error) { /* hand send to the waveform writer */ }},
			{Label: "vitals", Ordered: true},
			{Label: "control", Ordered: true, OnMessage: func(msg []byte) { log.Printf("from the ED: %s", msg) }},
		},
		OnKeyframeRequest: func() { /* ask the camera for an IDR, if it can */ },
		OnVideoBudget:     func(bps int) { /* pick the camera's main or sub stream */ },
	})
	if err != nil {
		log.Fatal(err)
	}
	sup := service.NewSupervisor(slog.Default(), prometheus.NewRegistry(), service.DefaultBackoff)
	sup.Add(p.Service("live-stream"))
	// The camera's goroutine calls p.WriteVideo(frame) and p.WriteAudio(frame).
	_ = sup.Run(context.Background(), 10*time.Second)
}
