package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"lifeline/appliance"
)

// newFlags returns a flag set that prints its usage to stderr and returns errors
// instead of exiting, so every command maps bad flags to exit status 2.
func newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: lifeline %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and reports the exit status to use when parsing failed.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "lifeline %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

// fail prints one line for the operator and returns the exit status for err: 2 for
// configuration problems, 1 for everything else.
func fail(w io.Writer, cmd string, err error) int {
	fmt.Fprintf(w, "lifeline %s: %v\n", cmd, err)
	var ce *appliance.ConfigError
	if errors.As(err, &ce) {
		return exitUsage
	}
	return exitFailure
}

// signalContext ends when the process is asked to stop (SIGTERM from systemd, or ^C).
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}
