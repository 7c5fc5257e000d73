package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"lifeline/internal/linkemu"
)

func init() {
	registerSimulator("link", "run a command across an emulated 5G/4G link (profiles: "+
		strings.Join(linkemu.ProfileNames(), ", ")+"; needs root)", runSimLink)
}

const simLinkUsage = `sim link [flags] [-- CMD [ARG...]]

Runs CMD in the "box" network namespace, joined to a "hub" namespace by a shaped link,
and exits with CMD's status. The hub is at $LIFELINE_LINK_HUB (10.202.0.1) from the box;
start the hub's side with --hub-cmd, or from another shell with
  ip netns exec $LIFELINE_LINK_HUB_NETNS PROGRAM
(the names are printed at start). Without CMD the link stays up until ^C.
CMD and --hub-cmd see LIFELINE_LINK_HUB, LIFELINE_LINK_BOX, LIFELINE_LINK_BOX_NETNS and
LIFELINE_LINK_HUB_NETNS. Signals to this process are passed on to CMD.`

func runSimLink(args []string) int {
	fs := newFlags("sim link", simLinkUsage)
	profile := fs.String("profile", "5g-urban", "link profile: "+strings.Join(linkemu.ProfileNames(), ", "))
	rtt := fs.Duration("rtt", 0, "override the round-trip time (split evenly)")
	loss := fs.Float64("loss", -1, "override the random loss probability in both directions (0…1)")
	up := fs.String("up", "", "override the uplink (box → hub) rate, e.g. 20M, 3000k, 0 for no limit")
	down := fs.String("down", "", "override the downlink (hub → box) rate")
	noOutages := fs.Bool("no-outages", false, "drop the profile's scheduled outages")
	hubCmd := fs.String("hub-cmd", "", "shell command to run in the hub namespace while CMD runs")
	hubWait := fs.Duration("hub-wait", 500*time.Millisecond, "time to give --hub-cmd to start before CMD")
	linger := fs.Duration("linger", time.Second, "keep the link and --hub-cmd up this long after CMD ends, so data it left in flight lands (cut short when --hub-cmd exits)")
	seed := fs.Uint64("seed", 0, "seed for loss and jitter (0: random)")
	statsEvery := fs.Duration("stats", 0, "print the link's counters this often (0: only at exit)")
	verbose := fs.Bool("v", false, "log every link event")
	control := fs.String("control", "", "serve link controls on this address, e.g. 127.0.0.1:8790: GET /stats, GET /metrics, POST /outage?for=3s, POST /handover?for=3s, POST /down, POST /up")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	p, err := simLinkProfile(*profile, *rtt, *loss, *up, *down, *noOutages)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifeline sim link: %v\n", err)
		return exitUsage
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// Signals are caught from here on, so that the link is always torn down.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	reg := prometheus.NewRegistry()
	l, err := linkemu.Start(context.Background(), p, linkemu.Options{Logger: log, Seed: *seed, Registerer: reg})
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifeline sim link: %v\n", err)
		return exitFailure
	}
	if *control != "" {
		ln, err := net.Listen("tcp", *control)
		if err != nil {
			l.Close()
			fmt.Fprintf(os.Stderr, "lifeline sim link: --control: %v\n", err)
			return exitUsage
		}
		// Control requests are tiny; the bounds keep a stuck client from holding
		// the simulator's control port.
		srv := &http.Server{Handler: linkControl(l, reg), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(os.Stderr, "lifeline sim link: controls on http://%s/\n", ln.Addr())
	}
	defer func() {
		st := l.Stats()
		l.Close()
		fmt.Fprintf(os.Stderr, "lifeline sim link: done; %s\n", formatLinkStats(st))
	}()
	env := append(os.Environ(),
		"LIFELINE_LINK_HUB="+l.HubAddr().String(),
		"LIFELINE_LINK_BOX="+l.BoxAddr().String(),
		"LIFELINE_LINK_BOX_NETNS="+l.Namespace(linkemu.Box),
		"LIFELINE_LINK_HUB_NETNS="+l.Namespace(linkemu.Hub))
	fmt.Fprintf(os.Stderr, "lifeline sim link: profile %s (up %s, down %s, RTT %v, loss %g/%g, outages %v)\n"+
		"  box %v in netns %s\n  hub %v in netns %s (ip netns exec %s PROGRAM)\n",
		p.Name, fmtRate(p.Up.RateBps), fmtRate(p.Down.RateBps), p.RTT(), p.Up.Loss, p.Down.Loss, p.Outages,
		l.BoxAddr(), l.Namespace(linkemu.Box), l.HubAddr(), l.Namespace(linkemu.Hub), l.Namespace(linkemu.Hub))

	var ticker <-chan time.Time
	if *statsEvery > 0 {
		t := time.NewTicker(*statsEvery)
		defer t.Stop()
		ticker = t.C
	}

	var hub *exec.Cmd
	var hubDone chan error
	if *hubCmd != "" {
		hub = l.Command(linkemu.Hub, "sh", "-c", *hubCmd)
		hub.Env, hub.Stdout, hub.Stderr = env, os.Stderr, os.Stderr
		hub.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := hub.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "lifeline sim link: start --hub-cmd: %v\n", err)
			return exitFailure
		}
		hubDone = make(chan error, 1)
		go func() { hubDone <- hub.Wait() }()
		defer stopProcess(hub, hubDone)
		select {
		case err := <-hubDone:
			hubDone <- err // for stopProcess
			fmt.Fprintf(os.Stderr, "lifeline sim link: --hub-cmd ended before CMD started: %v\n", exitText(err))
			return exitFailure
		case <-time.After(*hubWait):
		}
	}

	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "lifeline sim link: link up; ^C to stop")
		for {
			select {
			case <-sigs:
				return exitOK
			case <-ticker:
				fmt.Fprintf(os.Stderr, "lifeline sim link: %s\n", formatLinkStats(l.Stats()))
			}
		}
	}
	cmd := l.Command(linkemu.Box, fs.Arg(0), fs.Args()[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "lifeline sim link: start %s: %v\n", fs.Arg(0), err)
		return exitFailure
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			cmd.Process.Signal(s)
		case <-ticker:
			fmt.Fprintf(os.Stderr, "lifeline sim link: %s\n", formatLinkStats(l.Stats()))
		case err := <-done:
			// The command's last bytes may still be crossing the link: give them time
			// unless the hub side has already finished with them.
			select {
			case herr := <-hubDone: // nil channel without --hub-cmd: waits for linger
				hubDone <- herr
			case <-time.After(*linger):
			}
			return exitStatus(err)
		}
	}
}

// linkControl serves the link's controls for scripts: counters as JSON and Prometheus
// text, outages, handovers and holding the link down.
func linkControl(l *linkemu.Link, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			Box, Hub string
			linkemu.Stats
		}{l.BoxAddr().String(), l.HubAddr().String(), l.Stats()})
	})
	timed := func(act func(time.Duration)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			d, err := time.ParseDuration(r.URL.Query().Get("for"))
			if err != nil || d <= 0 {
				http.Error(w, "want ?for=DURATION, e.g. ?for=3s", http.StatusBadRequest)
				return
			}
			act(d)
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("POST /outage", timed(l.Outage))
	mux.HandleFunc("POST /handover", timed(l.Handover))
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, r *http.Request) { l.SetDown(true); w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /up", func(w http.ResponseWriter, r *http.Request) { l.SetDown(false); w.WriteHeader(http.StatusNoContent) })
	return mux
}

// simLinkProfile returns the named profile with the command line's overrides.
func simLinkProfile(name string, rtt time.Duration, loss float64, up, down string, noOutages bool) (linkemu.Profile, error) {
	p, err := linkemu.ProfileByName(name)
	if err != nil {
		return p, err
	}
	if rtt > 0 {
		p = p.WithRTT(rtt)
	}
	if loss >= 0 {
		p = p.WithLoss(loss)
	}
	for _, o := range []struct {
		flag, v string
		rate    *int64
	}{{"--up", up, &p.Up.RateBps}, {"--down", down, &p.Down.RateBps}} {
		if o.v == "" {
			continue
		}
		r, err := parseRate(o.v)
		if err != nil {
			return p, fmt.Errorf("%s %q: %v", o.flag, o.v, err)
		}
		*o.rate = r
	}
	if noOutages {
		p.Outages = linkemu.Outages{}
	}
	return p, p.Validate()
}

// parseRate reads a rate in bit/s with an optional decimal suffix: 20M, 3000k, 1.5G,
// 64000 (also with "bit", "bps" or "bit/s" after the suffix).
func parseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, unit := range []string{"bit/s", "bps", "bit"} {
		t = strings.TrimSuffix(t, unit)
	}
	mult := 1.0
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1e3, t[:len(t)-1]
	case strings.HasSuffix(t, "m"):
		mult, t = 1e6, t[:len(t)-1]
	case strings.HasSuffix(t, "g"):
		mult, t = 1e9, t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, errors.New("want a rate in bit/s such as 20M or 3000k")
	}
	return int64(v * mult), nil
}

func fmtRate(bps int64) string {
	if bps == 0 {
		return "unlimited"
	}
	return strconv.FormatFloat(float64(bps)/1e6, 'f', -1, 64) + " Mbit/s"
}

func formatLinkStats(st linkemu.Stats) string {
	f := func(d linkemu.DirStats) string {
		return fmt.Sprintf("%d packets %d bytes, dropped queue %d loss %d outage %d stale %d",
			d.Packets, d.Bytes, d.DroppedQueue, d.DroppedLoss, d.DroppedOutage, d.DroppedStale)
	}
	return "uplink " + f(st.Up) + "; downlink " + f(st.Down)
}

// stopProcess asks a helper process to stop, then kills it if it lingers.
func stopProcess(cmd *exec.Cmd, done <-chan error) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// exitStatus maps how CMD ended to our exit status: its own, or 128+signal as a shell
// reports a process killed by a signal.
func exitStatus(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "lifeline sim link: %v\n", err)
	return exitFailure
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
