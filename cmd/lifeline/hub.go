package main

import (
	"encoding/json"
	"fmt"
	"os"

	"lifeline/appliance"
)

const defaultHubData = "/var/lib/lifeline/hub"

func init() {
	registerCommand("hub", "run the hospital hub; 'hub enroll|revoke|devices' manage its boxes", runHub)
}

func runHub(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "enroll", "revoke", "devices":
			return runHubAdmin(args[0], args[1:])
		}
	}
	fs := newFlags("hub", "hub [--config FILE] [--data DIR]")
	configPath := fs.String("config", "", "TOML configuration `file` (default: built-in defaults, loopback only)")
	dataDir := fs.String("data", defaultHubData, "`directory` for all of the hub's state")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := appliance.LoadHubConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "hub", err)
	}
	log := appliance.NewLogger(cfg.Log, os.Stderr)
	hub, err := appliance.OpenHub(cfg, *dataDir, version, log)
	if err != nil {
		return fail(os.Stderr, "hub", err)
	}
	ctx, stop := signalContext()
	defer stop()
	if err := hub.Run(ctx); err != nil {
		return fail(os.Stderr, "hub", err)
	}
	log.Info("hub stopped")
	return exitOK
}

func runHubAdmin(op string, args []string) int {
	usage := "hub " + op + " --device ID [--config FILE] [--data DIR]"
	if op == "devices" {
		usage = "hub devices [--config FILE] [--data DIR]"
	}
	fs := newFlags("hub "+op, usage)
	configPath := fs.String("config", "", "TOML configuration `file`")
	dataDir := fs.String("data", defaultHubData, "the hub's data `directory`")
	device := fs.String("device", "", "the box's device `ID`, e.g. AMB-0001")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if op != "devices" && *device == "" {
		fmt.Fprintf(os.Stderr, "lifeline hub %s: --device is required\n", op)
		return exitUsage
	}
	cfg, err := appliance.LoadHubConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "hub "+op, err)
	}
	admin := appliance.HubAdmin{DataDir: *dataDir, Lifetime: cfg.Enrol.CodeLifetime.Duration, Log: appliance.NewLogger(cfg.Log, os.Stderr)}
	switch op {
	case "enroll":
		code, err := admin.Enrol(*device)
		if err != nil {
			return fail(os.Stderr, "hub enroll", err)
		}
		fmt.Printf("enrolment code for %s, valid once until %s; on the box run:\n", code.Device, code.Expires.Format("2006-01-02 15:04 MST"))
		fmt.Printf("  lifeline edge enroll --hub https://HUB:PORT --code %s\n", code.Code)
		fmt.Println(code.Code)
	case "revoke":
		if err := admin.Revoke(*device); err != nil {
			return fail(os.Stderr, "hub revoke", err)
		}
		fmt.Printf("revoked %s: its certificate is refused from now on\n", *device)
	case "devices":
		devs, err := admin.Devices()
		if err != nil {
			return fail(os.Stderr, "hub devices", err)
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(devs)
	}
	return exitOK
}
