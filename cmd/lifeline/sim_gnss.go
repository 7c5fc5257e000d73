package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"lifeline/hardware/gnss"
	"lifeline/hardware/serialport"
)

func init() {
	registerSimulator("gnss", "a GNSS receiver on a serial port or pty: replays an NMEA log (--replay) or drives a route (--route, --speed)", runSimGNSS)
}

// demoRoute crosses Guangzhou from Tianhe to the Provincial People's Hospital.
const demoRoute = "23.1375,113.3245;23.1302,113.3210;23.1290,113.3000;23.1275,113.2850;23.1270,113.2760"

const simGNSSUsage = `sim gnss [--port PATH] [--baud N] (--replay FILE | --route "LAT,LON;LAT,LON;…" --speed KMH) [flags]

Plays a GNSS receiver (NMEA 0183, GPS + BeiDou, NMEA 4.11). With --port it writes to that
serial device or pty end; without it, it creates a pty and prints the path for the box to
open as [gnss] port. --replay plays a log (gpsd's test logs work) one epoch per interval;
otherwise it drives the route (default: across Guangzhou) at --speed, with an optional
tunnel without a fix.
`

func runSimGNSS(args []string) int {
	fs := flag.NewFlagSet("sim gnss", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), simGNSSUsage); fs.PrintDefaults() }
	port := fs.String("port", "", "serial device or pty to write to (default: create a pty)")
	baud := fs.Int("baud", 9600, "line rate of --port")
	replay := fs.String("replay", "", "NMEA log to replay")
	route := fs.String("route", demoRoute, "route to drive: LAT,LON;LAT,LON;…")
	speed := fs.Float64("speed", 50, "driving speed, km/h")
	loop := fs.Bool("loop", true, "drive the route again from the start at its end")
	interval := fs.Duration("interval", time.Second, "time between epochs")
	tunnelAt := fs.Duration("tunnel-at", 0, "enter a tunnel (no fix) after this long (0: none)")
	tunnelFor := fs.Duration("tunnel-for", 30*time.Second, "length of the tunnel")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg := gnss.SimConfig{SpeedKmh: *speed, Loop: *loop, Interval: *interval}
	if *replay != "" {
		f, err := os.Open(*replay)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lifeline sim gnss: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		cfg.Replay = f
	} else {
		wps, err := parseRoute(*route)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lifeline sim gnss: --route: %v\n", err)
			return exitUsage
		}
		cfg.Route = wps
		if *tunnelAt > 0 {
			cfg.Tunnels = []gnss.Tunnel{{After: *tunnelAt, For: *tunnelFor}}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w, closer, err := openSimLine(*port, *baud, "GNSS receiver")
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifeline sim gnss: %v\n", err)
		return exitFailure
	}
	defer closer.Close()
	if err := gnss.Simulate(ctx, w, cfg); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "lifeline sim gnss: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// parseRoute reads "LAT,LON;LAT,LON;…".
func parseRoute(s string) ([]gnss.Waypoint, error) {
	var out []gnss.Waypoint
	for _, p := range strings.Split(s, ";") {
		ll := strings.Split(strings.TrimSpace(p), ",")
		if len(ll) != 2 {
			return nil, fmt.Errorf("point %q: want LAT,LON", p)
		}
		lat, err1 := strconv.ParseFloat(strings.TrimSpace(ll[0]), 64)
		lon, err2 := strconv.ParseFloat(strings.TrimSpace(ll[1]), 64)
		if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
			return nil, fmt.Errorf("point %q is not a latitude,longitude", p)
		}
		out = append(out, gnss.Waypoint{Lat: lat, Lon: lon})
	}
	if len(out) < 2 {
		return nil, errors.New("a route needs at least two points")
	}
	return out, nil
}

// openSimLine opens the simulated device's end of a line: the serial device or pty
// end at path, or a new pty whose path it prints. Writes to a new pty nobody reads
// are dropped after a second, as bytes on a serial line nobody listens to are lost.
func openSimLine(path string, baud int, what string) (io.ReadWriter, io.Closer, error) {
	if path != "" {
		p, err := serialport.Open(path, serialport.Mode{Baud: baud})
		if err != nil {
			return nil, nil, err
		}
		return p, p, nil
	}
	line, err := serialport.OpenSimulatedLine()
	if err != nil {
		return nil, nil, err
	}
	fmt.Printf("%s on pty %s\n", what, line.Path)
	return line, line, nil
}
