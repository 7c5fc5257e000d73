package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"time"

	"lifeline/internal/service"
	"lifeline/telemetry"
)

// DemoOptions sets up `lifeline demo`.
type DemoOptions struct {
	DataDir     string // all state: DataDir/hub and DataDir/edge
	RandomPorts bool   // loopback ports chosen by the system instead of the defaults
	Version     string
	Log         *slog.Logger
}

// demo is one run of the whole system on this machine: hub, box and the simulated
// devices, all on loopback.
type demo struct {
	opts DemoOptions
	hub  HubConfig
	edge EdgeConfig
	out  io.Writer
}

// RunDemo runs hub and box with simulated devices until ctx ends. It prints what runs
// where to out, and last a one-time sign-in link to the ED screen for a demo doctor.
func RunDemo(ctx context.Context, opts DemoOptions, out io.Writer) error {
	d := &demo{opts: opts, hub: DefaultHubConfig(), edge: DefaultEdgeConfig(), out: out}
	if opts.RandomPorts {
		if err := d.pickPorts(); err != nil {
			return err
		}
	}
	d.edge.Hub.URL = "https://" + d.hub.Server.Listen
	d.edge.DICOM.QuietPeriod = Duration{5 * time.Second}
	monitorAddr, err := freeLoopbackPort(false)
	if err != nil {
		return err
	}
	d.edge.Monitor = []MonitorConfig{{Port: telemetry.Endpoint{Kind: telemetry.EndpointListen, Addr: monitorAddr}.String(), Protocol: "hl7"}}
	// The camera is the clip built into the binary: a moving picture with its frame
	// number burnt in, and sound.
	d.edge.Camera = []CameraConfig{{URL: "clip:"}}
	// The doctor's push-to-talk plays on this machine's sound card when ALSA's aplay is
	// there.
	talkback := "off: install alsa-utils (aplay) to hear the doctor's push-to-talk"
	if _, err := exec.LookPath("aplay"); err == nil {
		d.edge.Stream.TalkbackSink = "aplay -q -t raw -f S16_LE -r 8000 -c 1"
		talkback = "the doctor's push-to-talk plays through aplay"
	}
	ambulance, err := d.startDemoAmbulance()
	if err != nil {
		return err
	}
	ambulanceRuns := false
	defer func() {
		if !ambulanceRuns {
			ambulance.close()
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hubData, edgeData := filepath.Join(opts.DataDir, "hub"), filepath.Join(opts.DataDir, "edge")
	hub, err := OpenHub(d.hub, hubData, opts.Version, opts.Log.With("process", "hub"))
	if err != nil {
		return fmt.Errorf("demo hub: %w", err)
	}
	errc := make(chan error, 2)
	go func() { errc <- hub.Run(ctx) }()
	if err := waitReady(ctx, errc, func() bool { return serviceState(hub.Status(), "hub-server") == service.Ready }); err != nil {
		return fmt.Errorf("demo hub: %w", err)
	}

	if err := d.enrol(ctx, hubData, edgeData); err != nil {
		return err
	}
	edge, err := OpenEdge(d.edge, edgeData, opts.Version, opts.Log.With("process", "edge"))
	if err != nil {
		return fmt.Errorf("demo box: %w", err)
	}
	go func() { errc <- edge.Run(ctx) }()
	if err := waitReady(ctx, errc, func() bool { return serviceState(edge.Status(), "status-http") == service.Ready }); err != nil {
		return fmt.Errorf("demo box: %w", err)
	}

	devLog := opts.Log.With("process", "simulated devices")
	go runDemoMonitor(ctx, monitorAddr, devLog)
	go ambulance.run(ctx, devLog)
	ambulanceRuns = true
	go runDemoModality(ctx, filepath.Join(opts.DataDir, "modality"), d.edge.DICOM.Listen, d.edge.DICOM.AETitle, devLog)

	link, err := hub.DemoSignInLink(ctx)
	if err != nil {
		return fmt.Errorf("demo sign-in link: %w", err)
	}
	fmt.Fprintf(d.out, "Lifeline demo: state in %s\n", opts.DataDir)
	fmt.Fprintf(d.out, "  hub:     https://%s for boxes (status http://%s/api/v1/status)\n", d.hub.Server.Listen, d.hub.Status.Listen)
	fmt.Fprintf(d.out, "  box:     enrolled as DEMO-AMB-1; status page http://%s/\n", d.edge.HTTP.Listen)
	fmt.Fprintf(d.out, "  monitor: simulated HL7 monitor → box on %s; vitals at http://%s/api/v1/vitals\n", monitorAddr, d.edge.HTTP.Listen)
	fmt.Fprintf(d.out, "  camera:  the built-in clip; the box streams it with the vitals to the hub over WHIP\n")
	fmt.Fprintf(d.out, "  talk:    %s; the crew's messages, patient card and 12-lead button are on the box's status page\n", talkback)
	fmt.Fprintf(d.out, "  route:   simulated GNSS (%s) and 5G modem (%s) drive across Guangzhou; the hub's board at http://%s/api/v1/boxes\n",
		ambulance.gnssLine.Path, ambulance.modemLine.Path, d.hub.Status.Listen)
	fmt.Fprintf(d.out, "  120:     simulated JT/T 808 dispatch platform on %s logs every report to %s\n", d.edge.Dispatch.Server, ambulance.reportLog)
	fmt.Fprintf(d.out, "  CT:      simulated modality sends a study to %s (AE %s) now and every %s; it goes on to the hub's archive\n",
		d.edge.DICOM.Listen, d.edge.DICOM.AETitle, demoStudyEvery)
	fmt.Fprintf(d.out, "  ED screen: %s (the hub's own certificate: the browser warns once; a hospital sets server.cert_file)\n", hub.ViewerURL())
	fmt.Fprintf(d.out, "Sign in as the demo doctor with this one-time link (valid %s):\n", d.hub.Viewer.LinkLifetime.Duration)
	fmt.Fprintln(d.out, link)

	select {
	case <-ctx.Done():
	case err := <-errc:
		cancel()
		if err != nil {
			return err
		}
	}
	cancel()
	var firstErr error
	for i := 0; i < 2; i++ {
		select {
		case err := <-errc:
			if err != nil && firstErr == nil {
				firstErr = err
			}
		case <-time.After(6 * time.Second):
			return errors.Join(firstErr, errors.New("demo did not stop within 6 s"))
		}
	}
	return firstErr
}

// enrol gets the demo box its identity from the demo hub, as an operator would.
func (d *demo) enrol(ctx context.Context, hubData, edgeData string) error {
	admin := HubAdmin{DataDir: hubData, Lifetime: time.Hour, Log: d.opts.Log}
	code, err := admin.Enrol("DEMO-AMB-1")
	if err != nil {
		return fmt.Errorf("demo enrolment code: %w", err)
	}
	if _, err := EdgeEnrol(ctx, "https://"+d.hub.Server.Listen, code.Code, edgeData); err != nil {
		return fmt.Errorf("demo enrolment: %w", err)
	}
	return nil
}

func (d *demo) pickPorts() error {
	var err error
	pick := func(udpToo bool) string {
		if err != nil {
			return ""
		}
		var addr string
		addr, err = freeLoopbackPort(udpToo)
		return addr
	}
	d.hub.Server.Listen = pick(true)
	d.hub.Status.Listen = pick(false)
	d.hub.Viewer.Listen = pick(false)
	d.hub.Stream.Listen = pick(true)
	d.edge.HTTP.Listen = pick(false)
	d.edge.DICOM.Listen = pick(false)
	return err
}

// freeLoopbackPort returns a loopback address whose port is free for TCP (and UDP).
func freeLoopbackPort(udpToo bool) (string, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		if !udpToo {
			return addr, nil
		}
		if pc, err := net.ListenPacket("udp", addr); err == nil {
			pc.Close()
			return addr, nil
		}
	}
	return "", errors.New("no free loopback port")
}

func serviceState(st Status, name string) service.State {
	for _, s := range st.Services {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

// waitReady waits until ready() holds, the process ends (errc), or 15 s pass. The
// error of a process that ended is put back in errc (it has room: one was just taken),
// so whoever waits for the process to end, as a deferred stop does, does not wait
// forever for a value waitReady took.
func waitReady(ctx context.Context, errc chan error, ready func() bool) error {
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		select {
		case err := <-errc:
			errc <- err
			if err == nil {
				err = errors.New("stopped before it was ready")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errors.New("not ready within 15 s")
		case <-tick.C:
		}
	}
	return nil
}
