// Command bench is `make bench-forward`: it measures how long a study takes from a
// modality to a PACS across an emulated mobile uplink, two ways, in the same run:
//
//	(a) ours:   storescu → lifeline edge (C-STORE SCP, spool, forwarder)
//	            → HTTP/3 over QUIC across the link → lifeline hub (ingest) → Orthanc
//	(b) direct: storescu → Orthanc by C-STORE over TCP across the same link,
//	            which is what a clinic does today.
//
// Every path gets a fresh link (internal/linkemu), a fresh Orthanc in the hub
// namespace and, for (a), a freshly enrolled hub and box run as the real binaries.
// Outages of the handover profile are scheduled from the moment storescu starts, so
// both paths meet them at the same point. It needs root (network namespaces) and the
// real peers: DCMTK (storescu, dcmcjpeg) and Orthanc with its DICOMweb plugin.
//
//	go run ./dicom/transfer/bench -mb 300 -profiles 5g-urban,4g-rural,handover
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/linkemu"
)

// env is what every run needs: tools, settings, the outage schedule.
type env struct {
	lifeline, storescu, orthanc, dcmcjpeg string
	deliver                               string
	stall                                 time.Duration
	outages                               linkemu.Outages
}

// storescuArgs are the presentation-context options for a study, the same for both
// paths: DCMTK proposes only uncompressed syntaxes unless told.
func (e *env) storescuArgs(s *study) []string {
	if s.Short == "ct-jpeg" {
		return []string{"-xs"}
	}
	return nil
}

// timeout bounds one path's run: six times the study at link rate, plus two minutes.
func (e *env) timeout(s *study, p linkemu.Profile) time.Duration {
	ideal := time.Duration(float64(s.Bytes*8) / float64(p.Up.RateBps) * float64(time.Second))
	return 6*ideal + 2*time.Minute
}

// result is one path's measurement.
type result struct {
	path      string
	total     time.Duration // storescu start → Orthanc holds every instance
	outages   int           // outages that began before the study was complete
	link      linkemu.Stats
	resent    int64 // (a) forwarder's re-sent wire bytes; (b) bytes of instances cut mid-send
	verifyErr error
	// (a) only
	local               time.Duration
	ipBusy              time.Duration // first to last uplink packet of the forwarding
	ipBytes             int64         // uplink IP bytes in that time
	wire, restarts      int64
	duplicates, corrupt int64
	// (b) only
	attempts int
}

func main() {
	os.Exit(run())
}

func run() int {
	mb := flag.Float64("mb", 300, "size of each study in MB (10⁶ bytes of Part 10 files)")
	profiles := flag.String("profiles", "5g-urban,4g-rural,handover", "link profiles, comma-separated: "+strings.Join(linkemu.ProfileNames(), ", "))
	studies := flag.String("studies", "raw,jpeg", "studies: raw (uncompressed CT), jpeg (JPEG lossless CT)")
	deliver := flag.String("deliver", "cstore", "how the hub delivers to Orthanc: cstore or stow")
	stall := flag.Duration("stall", 10*time.Second, "(b) restart storescu with the missing instances after this long without a new instance in Orthanc")
	first := flag.Duration("outage-first", 0, "override when the first outage starts, from storescu's start (0: the profile's)")
	every := flag.Duration("outage-every", 0, "override the time between outages (0: the profile's)")
	lifeline := flag.String("lifeline", "", "lifeline binary to run (default: go build ./cmd/lifeline)")
	workDir := flag.String("dir", "", "working directory (default: a new one under $TMPDIR, removed unless -keep)")
	keep := flag.Bool("keep", false, "keep the working directory (studies, logs, data)")
	seed := flag.Uint64("seed", 1, "seed of the links' loss and jitter")
	verbose := flag.Bool("v", false, "show the link emulator's log")
	runs := flag.Int("runs", 3, "timed runs of each path per (study, profile); the table gives min/median/max")
	flag.Parse()

	if *deliver != "cstore" && *deliver != "stow" {
		fmt.Fprintf(os.Stderr, "bench-forward: -deliver must be cstore or stow, not %q\n", *deliver)
		return 2
	}
	var profs []linkemu.Profile
	for _, name := range strings.Split(*profiles, ",") {
		p, err := linkemu.ProfileByName(strings.TrimSpace(name))
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench-forward: %v\n", err)
			return 2
		}
		profs = append(profs, p)
	}
	e := &env{deliver: *deliver, stall: *stall}
	if err := preflight(e); err != nil {
		fmt.Fprintf(os.Stderr, "bench-forward: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir := *workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-forward-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench-forward: %v\n", err)
			return 1
		}
		dir = d
		if !*keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "bench-forward: %v\n", err)
		return 1
	}
	if *lifeline == "" {
		fmt.Fprintln(os.Stderr, "building cmd/lifeline …")
		bin, err := buildLifeline(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench-forward: %v\n", err)
			return 1
		}
		e.lifeline = bin
	} else {
		e.lifeline = *lifeline
	}

	var sts []*study
	target := int64(*mb * 1e6)
	for _, name := range strings.Split(*studies, ",") {
		var s *study
		var err error
		start := time.Now()
		switch strings.TrimSpace(name) {
		case "raw":
			s, err = makeUncompressedCT(filepath.Join(dir, "study-raw"), target, 1)
		case "jpeg":
			s, err = makeJPEGCT(filepath.Join(dir, "study-jpeg"), target, 2, e.dcmcjpeg)
		default:
			err = fmt.Errorf("unknown study %q (raw, jpeg)", name)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench-forward: make study: %v\n", err)
			return 1
		}
		ratio, err := zstdRatio(s, 512<<10)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench-forward: %v\n", err)
			return 1
		}
		s.zstd = ratio
		fmt.Fprintf(os.Stderr, "study %s: %d instances, %.1f MB, zstd as the forwarder sends it %.2f× (made in %v)\n",
			s.Name, len(s.Files), float64(s.Bytes)/1e6, ratio, time.Since(start).Round(time.Second))
		sts = append(sts, s)
	}

	logLevel := slog.LevelWarn
	if *verbose {
		logLevel = slog.LevelInfo
	}
	linkLog := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	var rows []row
	for _, s := range sts {
		for _, p := range profs {
			sched := p.Outages
			if sched.For > 0 && *first > 0 {
				sched.First = *first
			}
			if sched.For > 0 && *every > 0 {
				sched.Every = *every
			}
			e.outages = sched
			p.Outages = linkemu.Outages{} // scheduled from storescu's start instead
			rw := row{study: s, profile: p, sched: sched}
			for i := range *runs {
				// Alternate which path goes first, so that neither always meets the
				// other's leftovers (page cache, write-back, a warm CPU).
				order := []string{"ours", "direct"}
				if i%2 == 1 {
					order = []string{"direct", "ours"}
				}
				for _, path := range order {
					fmt.Fprintf(os.Stderr, "%s over %s, run %d: (%s) …\n", s.Short, p.Name, i+1, path)
					// Nothing of the previous run may still be on its way to the disk.
					if err := exec.CommandContext(ctx, "sync").Run(); err != nil {
						fmt.Fprintf(os.Stderr, "bench-forward: sync: %v\n", err)
						return 1
					}
					res, err := runPath(ctx, e, s, p, path, filepath.Join(dir, fmt.Sprintf("%s-%s-%s-%d", s.Short, p.Name, path, i+1)), linkLog, *seed+uint64(i))
					if err != nil {
						fmt.Fprintf(os.Stderr, "bench-forward: %s over %s, path %s: %v\n", s.Short, p.Name, path, err)
						if ctx.Err() != nil {
							return 1
						}
						rw.errs = append(rw.errs, fmt.Sprintf("%s run %d: %v", path, i+1, err))
						continue
					}
					fmt.Fprintf(os.Stderr, "  %s: %v\n", path, res.total.Round(10*time.Millisecond))
					if path == "ours" {
						rw.ours = append(rw.ours, res)
					} else {
						rw.direct = append(rw.direct, res)
					}
				}
			}
			rows = append(rows, rw)
		}
	}
	report(os.Stdout, rows, e, *mb)
	for _, rw := range rows {
		if len(rw.errs) > 0 || len(rw.ours) == 0 || len(rw.direct) == 0 {
			return 1
		}
		for _, r := range append(slices.Clone(rw.ours), rw.direct...) {
			if r.verifyErr != nil {
				return 1
			}
		}
	}
	return 0
}

// runPath runs one path on a fresh link.
func runPath(ctx context.Context, e *env, s *study, p linkemu.Profile, path, dir string, log *slog.Logger, seed uint64) (*result, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	link, err := linkemu.Start(ctx, p, linkemu.Options{Logger: log, Seed: seed, Name: p.Name + "-" + path})
	if err != nil {
		return nil, err
	}
	defer link.Close()
	if path == "ours" {
		return runOurs(ctx, e, s, link, dir)
	}
	return runDirect(ctx, e, s, link, dir)
}

// preflight finds root and the real peers, or says clearly what is missing.
func preflight(e *env) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: the emulated link is a pair of network namespaces (run as root, e.g. sudo make bench-forward)")
	}
	var missing []string
	find := func(name, pkg string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
				if _, err := os.Stat(filepath.Join(d, name)); err == nil {
					return filepath.Join(d, name)
				}
			}
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", name, pkg))
		}
		return p
	}
	find("ip", "iproute2")
	e.storescu = find("storescu", "dcmtk")
	e.dcmcjpeg = find("dcmcjpeg", "dcmtk")
	e.orthanc = find("Orthanc", "orthanc")
	if _, err := exec.LookPath("go"); err != nil {
		missing = append(missing, "go (to build cmd/lifeline; or pass -lifeline)")
	}
	if _, err := os.Stat(pacstest.OrthancPlugin); err != nil {
		missing = append(missing, pacstest.OrthancPlugin+" (Debian package orthanc-dicomweb)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the real peers are missing: %s", strings.Join(missing, ", "))
	}
	return nil
}

// runCmd runs a short command to completion and returns its standard output.
func runCmd(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// outageRun takes the link down on a schedule that starts at t0, on a goroutine that
// stop ends.
type outageRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	n      atomic.Int32
}

func scheduleOutages(ctx context.Context, link *linkemu.Link, o linkemu.Outages, t0 time.Time) *outageRun {
	ctx, cancel := context.WithCancel(ctx)
	r := &outageRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if o.For <= 0 {
			return
		}
		for at := t0.Add(o.First); ; at = at.Add(o.Every) {
			t := time.NewTimer(time.Until(at))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if o.NewAddress {
				link.Handover(o.For)
			} else {
				link.Outage(o.For)
			}
			r.n.Add(1)
			if o.Every <= 0 {
				return
			}
		}
	}()
	return r
}

// stop ends the schedule and returns how many outages began.
func (r *outageRun) stop() int {
	r.cancel()
	<-r.done
	return int(r.n.Load())
}
