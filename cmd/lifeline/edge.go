package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"lifeline/appliance"
)

const defaultEdgeData = "/var/lib/lifeline/edge"

func init() {
	registerCommand("edge", "run the box (ambulance or clinic); 'edge enroll' gets it an identity from its hub", runEdge)
}

func runEdge(args []string) int {
	if len(args) > 0 && args[0] == "enroll" {
		return runEdgeEnrol(args[1:])
	}
	fs := newFlags("edge", "edge [--config FILE] [--data DIR]")
	configPath := fs.String("config", "", "TOML configuration `file` (default: built-in defaults, loopback only)")
	dataDir := fs.String("data", defaultEdgeData, "`directory` for all of the box's state")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := appliance.LoadEdgeConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "edge", err)
	}
	log := appliance.NewLogger(cfg.Log, os.Stderr)
	edge, err := appliance.OpenEdge(cfg, *dataDir, version, log)
	if err != nil {
		return fail(os.Stderr, "edge", err)
	}
	ctx, stop := signalContext()
	defer stop()
	if err := edge.Run(ctx); err != nil {
		return fail(os.Stderr, "edge", err)
	}
	log.Info("box stopped")
	return exitOK
}

func runEdgeEnrol(args []string) int {
	fs := newFlags("edge enroll", "edge enroll --code CODE [--hub URL] [--config FILE] [--data DIR]")
	configPath := fs.String("config", "", "TOML configuration `file`; its hub.url is used unless --hub is given")
	hubURL := fs.String("hub", "", "the hub's `URL`, e.g. https://hub.example:8443")
	code := fs.String("code", "", "the one-time enrolment `code` printed by 'lifeline hub enroll'")
	dataDir := fs.String("data", defaultEdgeData, "`directory` for all of the box's state")
	if status, ok := parseFlags(fs, args); !ok {
		return status
	}
	if *code == "" {
		fmt.Fprintln(os.Stderr, "lifeline edge enroll: --code is required")
		return exitUsage
	}
	cfg, err := appliance.LoadEdgeConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "edge enroll", err)
	}
	if *hubURL == "" {
		*hubURL = cfg.Hub.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := appliance.EdgeEnrol(ctx, *hubURL, *code, *dataDir)
	if err != nil {
		return fail(os.Stderr, "edge enroll", err)
	}
	fmt.Printf("enrolled as %s with hub %s; certificate valid until %s\n", id.DeviceID, *hubURL, id.Leaf.NotAfter.Format("2006-01-02"))
	return exitOK
}
