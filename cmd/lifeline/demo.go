package main

import (
	"fmt"
	"os"

	"lifeline/appliance"
)

func init() {
	registerCommand("demo", "run hub, box and simulated devices on this machine (loopback only)", runDemo)
}

func runDemo(args []string) int {
	fs := newFlags("demo", "demo [--data DIR] [--random-ports]")
	dataDir := fs.String("data", "", "`directory` for all demo state (default: a new temporary directory)")
	randomPorts := fs.Bool("random-ports", false, "use free loopback ports instead of the defaults (8443, 8781, 8780, 11112)")
	logLevel := fs.String("log-level", "warn", "log `level` of hub and box on stderr: debug, info, warn, error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *dataDir == "" {
		dir, err := os.MkdirTemp("", "lifeline-demo-")
		if err != nil {
			return fail(os.Stderr, "demo", err)
		}
		*dataDir = dir
	}
	log := appliance.NewLogger(appliance.LogSection{Level: *logLevel, Format: "auto"}, os.Stderr)
	ctx, stop := signalContext()
	defer stop()
	err := appliance.RunDemo(ctx, appliance.DemoOptions{DataDir: *dataDir, RandomPorts: *randomPorts, Version: version, Log: log}, os.Stdout)
	if err != nil {
		return fail(os.Stderr, "demo", err)
	}
	fmt.Fprintln(os.Stderr, "demo stopped; its state is kept in", *dataDir)
	return exitOK
}
