package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"lifeline/appliance"
)

// runEdgeRenew forces a renewal of the box's certificate: through the running box's
// API, so that the box presents the new certificate from its next connection on, or
// with --offline directly in the data directory of a box that is not running.
func runEdgeRenew(args []string) int {
	fs := newFlags("edge renew", "edge renew [--config FILE] [--offline [--data DIR] [--hub URL]]")
	configPath := fs.String("config", "", "the box's TOML configuration `file` (http.listen of the running box; hub.url with --offline)")
	offline := fs.Bool("offline", false, "renew in --data directly, for a box that is not running")
	dataDir := fs.String("data", defaultEdgeData, "the box's state `directory` (with --offline)")
	hubURL := fs.String("hub", "", "the hub's `URL` (with --offline; default: hub.url of --config)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var ans appliance.RenewAnswer
	if *offline {
		cfg, err := appliance.LoadEdgeConfig(*configPath)
		if err != nil {
			return fail(os.Stderr, "edge renew", err)
		}
		if *hubURL == "" {
			*hubURL = cfg.Hub.URL
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		id, err := appliance.EdgeRenew(ctx, *hubURL, *dataDir)
		if err != nil {
			return fail(os.Stderr, "edge renew", err)
		}
		ans = appliance.RenewAnswer{Device: id.DeviceID, Serial: id.Leaf.SerialNumber.Text(16), NotAfter: id.Leaf.NotAfter}
	} else {
		box, err := newBoxAPI(*configPath)
		if err != nil {
			return fail(os.Stderr, "edge renew", err)
		}
		if err := box.call(http.MethodPost, appliance.CertificateRenewPath, &ans); err != nil {
			return fail(os.Stderr, "edge renew", fmt.Errorf("%w (a box that is not running renews with --offline)", err))
		}
	}
	fmt.Printf("renewed the certificate of %s: serial %s, valid until %s\n", ans.Device, ans.Serial, ans.NotAfter.Format("2006-01-02 15:04:05 MST"))
	return exitOK
}
