// Command lifeline is the one binary of the Lifeline appliance: the edge box
// (`lifeline edge`), the hospital hub (`lifeline hub`), simulators of every device the
// box talks to (`lifeline sim`), the whole system on one machine (`lifeline demo`),
// pushing studies into a box (`lifeline send`) and `lifeline version`.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit statuses shared by every subcommand.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad arguments, bad config, or a part that is not built yet
)

// command is one subcommand of lifeline.
type command struct {
	summary string
	run     func(args []string) int
}

// commands holds every subcommand. Files in this package add theirs in init, so that
// each capability wires its own command beside the others without editing this file.
var commands = map[string]command{}

// simulators holds the `lifeline sim KIND` simulators, added the same way.
var simulators = map[string]command{}

func registerCommand(name, summary string, run func(args []string) int) {
	commands[name] = command{summary: summary, run: run}
}

func registerSimulator(name, summary string, run func(args []string) int) {
	simulators[name] = command{summary: summary, run: run}
}

// planned names the parts that later work will add, so that asking for one says what
// it will do instead of pretending.
var planned = map[string]string{
	"sim camera": "serve a test H.264 stream over RTSP (live-stream work, next wave)",
}

func main() {
	registerCommand("version", "print the version", func([]string) int {
		fmt.Println("lifeline", version)
		return exitOK
	})
	registerCommand("sim", "run a simulated device: "+simList(), runSim)
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "lifeline: unknown command %q\n", args[0])
		usage(os.Stderr)
		return exitUsage
	}
	return cmd.run(args[1:])
}

func usage(w *os.File) {
	fmt.Fprintln(w, "usage: lifeline COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, name := range sortedKeys(commands) {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'lifeline COMMAND -h' for a command's flags.")
}

func runSim(args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(os.Stderr, "usage: lifeline sim KIND [flags]\nkinds: %s\n", simList())
		return exitUsage
	}
	if sim, ok := simulators[args[0]]; ok {
		return sim.run(args[1:])
	}
	if what, ok := planned["sim "+args[0]]; ok {
		fmt.Fprintf(os.Stderr, "lifeline sim %s: not built yet; it will %s\n", args[0], what)
		return exitUsage
	}
	fmt.Fprintf(os.Stderr, "lifeline sim: unknown simulator %q (kinds: %s)\n", args[0], simList())
	return exitUsage
}

func simList() string {
	names := sortedKeys(simulators)
	for k := range planned {
		if name, ok := strings.CutPrefix(k, "sim "); ok {
			if _, built := simulators[name]; !built {
				names = append(names, name+" (not built yet)")
			}
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func sortedKeys(m map[string]command) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
