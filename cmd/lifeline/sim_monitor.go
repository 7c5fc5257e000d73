package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
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

func runSimMonitor(args []string) int {
	fs := flag.NewFlagSet("sim monitor", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), simMonitorUsage()); fs.PrintDefaults() }
	proto := fs.String("protocol", "", strings.Join(protocols.Names(), ", "))
	portPath := fs.String("port", "", "serial device or pty to open (default: create a pty)")
	connect := fs.String("connect", "", "network protocols (hl7): connect to a box listening on HOST:PORT instead of a serial port")
	hr := fs.Float64("hr", 78, "sinus heart rate, /min")
	vtAt := fs.Duration("vt-at", 0, "start a ventricular tachycardia episode after this long (0: none)")
	vtFor := fs.Duration("vt-for", 20*time.Second, "length of the VT episode")
	desatAt := fs.Duration("desat-at", 0, "start an SpO2 desaturation after this long (0: none)")
	desatTo := fs.Float64("desat-to", 85, "SpO2 the desaturation falls to, %")
	nibpEvery := fs.Duration("nibp-every", time.Minute, "NIBP cuff cycle interval")
	noise := fs.Float64("noise", 0, "fault injection: probability of noise bytes per frame/message")
	drop := fs.Float64("drop", 0, "fault injection: probability of dropping a frame/message")
	twelve := fs.Bool("12-lead", false, "hl7/intellivue: send all twelve ECG leads (needs a TCP or fast link)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sc := &physio.Scenario{HR: *hr, VTAt: *vtAt, NIBPEvery: *nibpEvery}
	if *vtAt > 0 {
		sc.VTFor = *vtFor
	}
	if *desatAt > 0 {
		sc.DesatAt, sc.DesatOver, sc.DesatTo = *desatAt, 30*time.Second, *desatTo
	}

	if *proto == "" {
		fmt.Fprintf(os.Stderr, "lifeline sim monitor: --protocol is required (%s)\n", strings.Join(protocols.Names(), ", "))
		return exitUsage
	}
	p, ok := protocols.Lookup(*proto)
	if !ok {
		fmt.Fprintf(os.Stderr, "lifeline sim monitor: unknown protocol %q (%s)\n", *proto, strings.Join(protocols.Names(), ", "))
		return exitUsage
	}
	if *connect != "" && !p.Network {
		fmt.Fprintf(os.Stderr, "lifeline sim monitor: --connect is for network protocols only; %s is serial\n", p.Name)
		return exitUsage
	}
	mode := p.NewDriver(telemetry.DriverConfig{}).Serial()
	sim := p.NewSimulator(telemetry.SimConfig{Logger: log, Scenario: sc, Faults: telemetry.LineFaults{Noise: *noise, Drop: *drop}, TwelveLead: *twelve})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var port telemetry.Port
	var closer io.Closer
	switch {
	case *connect != "":
		var c net.Conn
		for c == nil {
			var err error
			if c, err = hl7.Dial(ctx, *connect); err != nil {
				if ctx.Err() != nil {
					return exitOK
				}
				log.Warn("box not reachable yet; retrying", "addr", *connect, "err", err)
				time.Sleep(time.Second)
			}
		}
		port, closer = hl7.ConnPort(c), c
		fmt.Printf("monitor (%s) connected to %s\n", *proto, *connect)
	case *portPath != "":
		p, err := serialport.Open(*portPath, serialport.Mode{Baud: mode.Baud, DataBits: mode.DataBits, Parity: mode.Parity.String()[0], StopBits: mode.StopBits})
		if err != nil {
			fmt.Fprintf(os.Stderr, "lifeline sim monitor: %v\n", err)
			return exitFailure
		}
		port, closer = p, p
		fmt.Printf("monitor (%s, %s) on %s\n", *proto, mode, *portPath)
	default:
		master, slave, err := pty.Open()
		if err != nil {
			fmt.Fprintf(os.Stderr, "lifeline sim monitor: create pty: %v\n", err)
			return exitFailure
		}
		// Keep the slave open so the pty stays up while the box has not opened it yet.
		defer slave.Close()
		m, err := pollableFile(master)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lifeline sim monitor: %v\n", err)
			return exitFailure
		}
		port, closer = lossyPort{telemetry.DeadlinePort(m, 50*time.Millisecond)}, m
		fmt.Printf("monitor (%s, %s) on pty %s\n", *proto, mode, slave.Name())
	}
	defer closer.Close()
	if err := sim.Run(ctx, port); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "lifeline sim monitor: %v\n", err)
		return exitFailure
	}
	return exitOK
}

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
