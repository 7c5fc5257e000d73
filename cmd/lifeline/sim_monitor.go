package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"

	"lifeline/hardware/serialport"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/physio"
	"lifeline/telemetry/protocols"
)

func init() {
	registerSimulator("monitor", "a patient monitor on a serial port or pty: --protocol "+strings.Join(protocols.Names(), "|"), runSimMonitor)
}

// simMonitorUsage is the usage text; the protocols come from telemetry/protocols.
func simMonitorUsage() string {
	var b strings.Builder
	fmt.Fprintf(&b, `sim monitor --protocol %s [--port PATH | --connect HOST:PORT] [flags]

Plays a patient monitor. With --port it opens that serial device or pty end (e.g. one end
of "socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B"); without it, it creates a pty and
prints the path for the box to open. --connect (network protocols only) makes the monitor
connect out to a box listening for MLLP over TCP (port = "tcp://HOST:PORT" in the box's
config).

Protocols:
`, strings.Join(protocols.Names(), "|"))
	for _, p := range protocols.All() {
		fmt.Fprintf(&b, "  %-11s %s\n", p.Name, p.Description)
	}
	return b.String()
}

// simMonitorFlags is what `lifeline sim monitor` was asked to play, and where.
type simMonitorFlags struct {
	protocol, port, connect string
	scenario                *physio.Scenario
	faults                  telemetry.LineFaults
	twelveLead              bool
}

// parseSimMonitorFlags reads the command line; false means a usage error was printed.
func parseSimMonitorFlags(args []string) (simMonitorFlags, bool) {
	fs := flag.NewFlagSet("sim monitor", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), simMonitorUsage()); fs.PrintDefaults() }
	var f simMonitorFlags
	fs.StringVar(&f.protocol, "protocol", "", strings.Join(protocols.Names(), ", "))
	fs.StringVar(&f.port, "port", "", "serial device or pty to open (default: create a pty)")
	fs.StringVar(&f.connect, "connect", "", "network protocols (hl7): connect to a box listening on HOST:PORT instead of a serial port")
	hr := fs.Float64("hr", 78, "sinus heart rate, /min")
	vtAt := fs.Duration("vt-at", 0, "start a ventricular tachycardia episode after this long (0: none)")
	vtFor := fs.Duration("vt-for", 20*time.Second, "length of the VT episode")
	desatAt := fs.Duration("desat-at", 0, "start an SpO2 desaturation after this long (0: none)")
	desatTo := fs.Float64("desat-to", 85, "SpO2 the desaturation falls to, %")
	nibpEvery := fs.Duration("nibp-every", time.Minute, "NIBP cuff cycle interval")
	fs.Float64Var(&f.faults.Noise, "noise", 0, "fault injection: probability of noise bytes per frame/message")
	fs.Float64Var(&f.faults.Drop, "drop", 0, "fault injection: probability of dropping a frame/message")
	fs.BoolVar(&f.twelveLead, "12-lead", false, "hl7/intellivue: send all twelve ECG leads (needs a TCP or fast link)")
	if err := fs.Parse(args); err != nil {
		return f, false
	}
	f.scenario = &physio.Scenario{HR: *hr, VTAt: *vtAt, NIBPEvery: *nibpEvery}
	if *vtAt > 0 {
		f.scenario.VTFor = *vtFor
	}
	if *desatAt > 0 {
		f.scenario.DesatAt, f.scenario.DesatOver, f.scenario.DesatTo = *desatAt, 30*time.Second, *desatTo
	}
	return f, true
}

func runSimMonitor(args []string) int {
	f, ok := parseSimMonitorFlags(args)
	if !ok {
		return exitUsage
	}
	if f.protocol == "" {
		fmt.Fprintf(os.Stderr, "lifeline sim monitor: --protocol is required (%s)\n", strings.Join(protocols.Names(), ", "))
		return exitUsage
	}
	p, ok := protocols.Lookup(f.protocol)
	if !ok {
		fmt.Fprintf(os.Stderr, "lifeline sim monitor: unknown protocol %q (%s)\n", f.protocol, strings.Join(protocols.Names(), ", "))
		return exitUsage
	}
	if f.connect != "" && !p.Network {
		fmt.Fprintf(os.Stderr, "lifeline sim monitor: --connect is for network protocols only; %s is serial\n", p.Name)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sim := p.NewSimulator(telemetry.SimConfig{Logger: log, Scenario: f.scenario, Faults: f.faults, TwelveLead: f.twelveLead})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	port, closer, err := attachMonitor(ctx, f, p.NewDriver(telemetry.DriverConfig{}).Serial(), log)
	if err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		fmt.Fprintf(os.Stderr, "lifeline sim monitor: %v\n", err)
		return exitFailure
	}
	defer closer.Close()
	if err := sim.Run(ctx, port); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "lifeline sim monitor: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// attachMonitor gives the simulated monitor its end of the link: a connection to a
// listening box (--connect, retried until the box answers or ctx ends), a serial device
// or pty end (--port), or a new pty whose path it prints for the box.
func attachMonitor(ctx context.Context, f simMonitorFlags, mode telemetry.SerialMode, log *slog.Logger) (telemetry.Port, io.Closer, error) {
	switch {
	case f.connect != "":
		for {
			c, err := hl7.Dial(ctx, f.connect)
			if err == nil {
				fmt.Printf("monitor (%s) connected to %s\n", f.protocol, f.connect)
				return hl7.ConnPort(c), c, nil
			}
			log.Warn("box not reachable yet; retrying", "addr", f.connect, "err", err)
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(time.Second):
			}
		}
	case f.port != "":
		p, err := serialport.Open(f.port, serialport.Mode{Baud: mode.Baud, DataBits: mode.DataBits, Parity: mode.Parity.String()[0], StopBits: mode.StopBits})
		if err != nil {
			return nil, nil, err
		}
		fmt.Printf("monitor (%s, %s) on %s\n", f.protocol, mode, f.port)
		return p, p, nil
	}
	master, slave, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("create pty: %w", err)
	}
	m, err := pollableFile(master)
	if err != nil {
		slave.Close()
		return nil, nil, err
	}
	fmt.Printf("monitor (%s, %s) on pty %s\n", f.protocol, mode, slave.Name())
	// The slave stays open with the master so the pty stays up while the box has not
	// opened it yet.
	return lossyPort{telemetry.DeadlinePort(m, 50*time.Millisecond)}, closeBoth{m, slave}, nil
}

// closeBoth closes a pty's two ends.
type closeBoth [2]io.Closer

func (c closeBoth) Close() error { return errors.Join(c[0].Close(), c[1].Close()) }

// lossyPort drops what nobody reads, as a monitor's UART does with no cable attached,
// instead of failing once the pty's buffer is full.
type lossyPort struct{ telemetry.Port }

func (p lossyPort) Write(b []byte) (int, error) {
	n, err := p.Port.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return len(b), nil
	}
	return n, err
}

// pollableFile re-opens a pty master as a non-blocking file on the runtime poller, so
// that reads and writes can time out.
func pollableFile(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("pty: dup: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("pty: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}
