// Command bench is `make bench-stream`: the live stream's benchmark of issue 12. It runs
// the real binary (hub and box processes, on loopback or each in its end of an emulated
// 5G link from internal/linkemu, which needs root), the HL7 monitor simulator on a socat
// cable in this process, and a pion WHEP viewer (stream/bench/whepviewer) in this
// process on the hub's side, and prints one table with the goals, goals missed
// included. Everything runs at the product's defaults.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	bin := flag.String("lifeline", "", "lifeline binary to run (default: go build ./cmd/lifeline)")
	parts := flag.String("run", "a,b,e,d", "measurements to run, comma-separated: a (vitals latency), b (video path delay), e (box RSS at 1080p30), d (outages), c (hub fan-out), f (vitals to the pixel in the ED view), g (12-lead requests)")
	ecgN := flag.Int("ecg", 1000, "(g) how many 12-lead requests per profile (1000: enough to see one lost in a thousand)")
	dur := flag.Duration("for", 20*time.Second, "how long each steady-state measurement records")
	tunnel := flag.Duration("tunnel", 30*time.Second, "(d) the tunnel's outage (the profile's is 30 s)")
	outageProfiles := flag.String("outages", "handover,tunnel", "(d) the profiles whose outage is run")
	flag.BoolVar(&verbose, "v", false, "print the hub's and the box's stream log lines when each system stops")
	flag.Parse()
	if *bin == "" {
		dir, err := os.MkdirTemp("", "bench-stream-bin-")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(dir)
		*bin = filepath.Join(dir, "lifeline")
		build := exec.Command("go", "build", "-o", *bin, "./cmd/lifeline")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fatal(fmt.Errorf("build lifeline: %w", err))
		}
	}
	clips, err := os.MkdirTemp("", "bench-stream-clips-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(clips)
	b := &bench{bin: *bin, clips: clips, dur: *dur, tunnel: *tunnel, outageProfiles: strings.Split(*outageProfiles, ","), ecgN: *ecgN}
	for _, p := range strings.Split(*parts, ",") {
		switch strings.TrimSpace(p) {
		case "a":
			b.vitalsLatency()
		case "b":
			b.videoPath()
		case "e":
			b.boxRSS()
		case "d":
			b.outages()
		case "c":
			b.fanout()
		case "f":
			b.pixelLatency()
		case "g":
			b.ecgRequests()
		default:
			fatal(fmt.Errorf("unknown measurement %q", p))
		}
	}
	b.report(os.Stdout)
}

// verbose prints the processes' stream logs.
var verbose bool

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench-stream:", err)
	os.Exit(1)
}

// bench holds the rows measured so far.
type bench struct {
	bin, clips string
	dur        time.Duration
	tunnel     time.Duration
	// outageProfiles names the profiles (d) runs.
	outageProfiles []string
	ecgN           int // (g) requests per profile
	rows           []row
}

// row is one line of the table.
type row struct {
	what, where, measured, goal string
	met                         bool
	note                        string
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
	mark := "met"
	if !r.met {
		mark = "MISSED"
	}
	fmt.Fprintf(os.Stderr, "bench-stream: %s, %s: %s (goal %s: %s) %s\n", r.what, r.where, r.measured, r.goal, mark, r.note)
}

func (b *bench) failed(what, where string, err error) {
	b.add(row{what: what, where: where, measured: "failed", goal: "–", note: err.Error()})
}

func (b *bench) report(w *os.File) {
	fmt.Fprintln(w, "\nbench-stream: the real binary (hub + box processes); HL7 monitor simulator on a socat pty and a pion WHEP viewer (stream/bench/whepviewer) in the bench process, on the hub's side of the link.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measurement | where | measured | goal | met | note |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range b.rows {
		met := "yes"
		if !r.met {
			met = "**no**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.what, r.where, r.measured, r.goal, met, r.note)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
