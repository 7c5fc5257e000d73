package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"lifeline/hardware/modem"
)

func init() {
	registerSimulator("modem", "a Quectel RM520N's AT port on a serial port or pty: signal varying along a drive, network outages", runSimModem)
}

const simModemUsage = `sim modem [--port PATH] [flags]

Plays the AT port of a Quectel RM520N 5G module: AT+CPIN?, AT+COPS?, AT+CREG?/CEREG?/C5GREG?,
AT+QENG="servingcell" (NR5G-SA, NR5G-NSA, LTE) and AT+CSQ, with echo on as the module starts,
a signal that swings between a site and the gap between sites every --period, and an
optional outage. Without --port it creates a pty and prints the path for [modem] port.
`

func runSimModem(args []string) int {
	fs := flag.NewFlagSet("sim modem", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), simModemUsage); fs.PrintDefaults() }
	port := fs.String("port", "", "serial device or pty to answer on (default: create a pty)")
	baud := fs.Int("baud", 115200, "line rate of --port")
	period := fs.Duration("period", 2*time.Minute, "time from one cell site to the next")
	outageAt := fs.Duration("outage-at", 0, "lose the network after this long (0: never)")
	outageFor := fs.Duration("outage-for", 30*time.Second, "length of the outage")
	noSIM := fs.Bool("no-sim", false, "play a module without a SIM")
	urcEvery := fs.Duration("urc-every", 30*time.Second, "interleave a +QIND URC into an answer this often (0: never)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	var outages []modem.Outage
	if *outageAt > 0 {
		outages = append(outages, modem.Outage{After: *outageAt, For: *outageFor})
	}
	cfg := modem.SimConfig{Profile: modem.DriveProfile(*period, outages...), URCEvery: *urcEvery}
	if *noSIM {
		cfg.SIM = "NOT INSERTED"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rw, closer, err := openSimLine(*port, *baud, "modem AT port")
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifeline sim modem: %v\n", err)
		return exitFailure
	}
	defer closer.Close()
	if err := modem.Simulate(ctx, rw, cfg); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "lifeline sim modem: %v\n", err)
		return exitFailure
	}
	return exitOK
}
