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
	fs := newFlags("demo", "demo [--data DIR | --keep] [--random-ports]")
	dataDir := fs.String("data", "", "`directory` for all demo state, kept when the demo stops (default: a new temporary directory, removed when it stops)")
	keep := fs.Bool("keep", false, "keep the temporary directory when the demo stops, to look at its state")
	randomPorts := fs.Bool("random-ports", false, "use free loopback ports instead of the defaults (8443, 8781, 8780, 11112)")
	logLevel := fs.String("log-level", "warn", "log `level` of hub and box on stderr: debug, info, warn, error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	temporary := *dataDir == ""
	if temporary {
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
	// Hub and box have stopped when RunDemo returns (or the process exits right after
	// one did not), so nothing writes there any more.
	if temporary && !*keep {
		if rmErr := os.RemoveAll(*dataDir); rmErr != nil {
			fmt.Fprintf(os.Stderr, "lifeline demo: could not remove its temporary state %s: %v\n", *dataDir, rmErr)
		}
	}
	if err != nil {
		return fail(os.Stderr, "demo", err)
	}
	if temporary && !*keep {
		fmt.Fprintln(os.Stderr, "demo stopped; its temporary state is removed (--keep keeps it)")
	} else {
		fmt.Fprintln(os.Stderr, "demo stopped; its state is kept in", *dataDir)
	}
	return exitOK
}
