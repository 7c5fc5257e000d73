package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"lifeline/dispatch/jt808"
)

func init() {
	registerSimulator("dispatch", "a small JT/T 808 dispatch platform: accepts terminals, logs reports as JSON lines, sends commands typed on stdin", runSimDispatch)
}

const simDispatchUsage = `sim dispatch [--listen ADDR] [--log FILE] [flags]

Runs a small JT/T 808 platform (2013 and 2019 editions): it registers and authenticates
terminals, answers every message, asks for missing sub-packages, and logs every location
report (live 0x0200, queried 0x0201, blind-zone 0x0704) as one JSON line. Commands to a
connected terminal, one per line on stdin:

  interval PHONE SECONDS          0x8103: default report interval
  server PHONE HOST:PORT          0x8103: main server address and TCP port
  query PHONE                     0x8201: location query
  track PHONE SECONDS VALIDITY    0x8202: temporary tracking
  text PHONE MESSAGE…             0x8300: text message for the crew
  params PHONE                    0x8104: query parameters
  list                            connected terminals
`

func runSimDispatch(args []string) int {
	fs := flag.NewFlagSet("sim dispatch", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), simDispatchUsage); fs.PrintDefaults() }
	listen := fs.String("listen", "127.0.0.1:7808", "address to accept terminals on")
	logPath := fs.String("log", "-", "file to append reports to as JSON lines (-: stdout)")
	auth := fs.String("auth-code", "LIFELINE", "authentication code handed out on registration")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	var reports io.Writer = os.Stdout
	if *logPath != "-" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lifeline sim dispatch: --log: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		reports = f
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifeline sim dispatch: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(os.Stderr, "dispatch platform (JT/T 808) on %s\n", ln.Addr())
	p := jt808.NewPlatform(jt808.PlatformConfig{AuthCode: *auth, ReportLog: reports, Log: log})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go readDispatchCommands(ctx, p, os.Stdin, log)
	if err := p.Serve(ctx, ln); err != nil {
		fmt.Fprintf(os.Stderr, "lifeline sim dispatch: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// readDispatchCommands sends the commands typed on in until it ends.
func readDispatchCommands(ctx context.Context, p *jt808.Platform, in io.Reader, log *slog.Logger) {
	sc := bufio.NewScanner(in)
	for sc.Scan() && ctx.Err() == nil {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := dispatchCommand(p, line); err != nil {
			log.Warn("sim dispatch: command not sent", "command", line, "err", err)
		}
	}
}

func dispatchCommand(p *jt808.Platform, line string) error {
	f := strings.Fields(line)
	if f[0] == "list" {
		fmt.Fprintf(os.Stderr, "terminals: %s\n", strings.Join(p.Terminals(), ", "))
		return nil
	}
	if len(f) < 2 {
		return errors.New("want COMMAND PHONE [ARGS]")
	}
	phone := f[1]
	ed, err := p.Edition(phone)
	if err != nil {
		return err
	}
	id, body, err := dispatchMessage(f, ed)
	if err != nil {
		return err
	}
	_, err = p.Send(phone, id, body)
	return err
}

// dispatchMessage builds the message for a command line's fields (COMMAND PHONE ARGS…).
func dispatchMessage(f []string, ed jt808.Edition) (id uint16, body []byte, err error) {
	num := func(i int) (uint32, error) {
		if len(f) <= i {
			return 0, fmt.Errorf("%s needs argument %d", f[0], i-1)
		}
		v, err := strconv.ParseUint(f[i], 10, 32)
		return uint32(v), err
	}
	switch f[0] {
	case "interval":
		v, err := num(2)
		if err != nil {
			return 0, nil, err
		}
		id, body = jt808.IDSetParams, jt808.SetParams{Params: []jt808.Param{jt808.DWORDParam(jt808.ParamReportInterval, v)}}.Marshal()
	case "server":
		if len(f) < 3 {
			return 0, nil, errors.New("server needs HOST:PORT")
		}
		host, port, err := net.SplitHostPort(f[2])
		if err != nil {
			return 0, nil, err
		}
		pn, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return 0, nil, err
		}
		id, body = jt808.IDSetParams, jt808.SetParams{Params: []jt808.Param{jt808.StringParam(jt808.ParamMainServer, host), jt808.DWORDParam(jt808.ParamServerTCPPort, uint32(pn))}}.Marshal()
	case "query":
		id = jt808.IDLocationQuery
	case "params":
		id = jt808.IDQueryParams
	case "track":
		iv, err := num(2)
		if err != nil {
			return 0, nil, err
		}
		va, err := num(3)
		if err != nil {
			return 0, nil, err
		}
		id, body = jt808.IDTemporaryTracking, jt808.TemporaryTracking{Interval: uint16(min(iv, 65535)), Validity: va}.Marshal()
	case "text":
		if len(f) < 3 {
			return 0, nil, errors.New("text needs a message")
		}
		id, body = jt808.IDTextMessage, jt808.TextMessage{Flags: 1 << 2, Type: 1, Text: strings.Join(f[2:], " ")}.Marshal(ed)
	default:
		return 0, nil, fmt.Errorf("unknown command %q", f[0])
	}
	return id, body, nil
}
