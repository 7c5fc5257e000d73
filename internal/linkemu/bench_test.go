//go:build bench

package linkemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestBenchLink measures the emulator against the kernel's own shaper, tc tbf on a veth
// pair between two namespaces (kernel netem, which would add delay, is not available):
// a TCP bulk transfer by socat processes through each, the goodput of both and their
// ratio, and the CPU the emulator (this process; the socat ends are child processes)
// spends per second at that rate. Run with
//
//	go test -tags bench -run TestBenchLink -v -count=1 ./internal/linkemu
func TestBenchLink(t *testing.T) {
	peersNeedRoot(t)
	peers.Need(t, "socat", "tc", "timeout")
	const dur = 8 * time.Second
	fmt.Printf("%-9s %6s | %-22s | %-29s\n", "", "uplink", "whole profile (ours)", "rate only: ours vs tc tbf")
	fmt.Printf("%-9s %6s | %8s %6s %6s | %8s %8s %5s %5s\n", "profile", "Mbit/s", "Mbit/s", "user", "sys", "ours", "tbf", "ratio", "CPU")
	for _, p := range []Profile{FiveGUrban(), FourGRural(), {Name: "unlimited"}} {
		t.Run(p.Name, func(t *testing.T) {
			whole, user, sys := benchOurs(t, p, dur)
			bare := Profile{Name: p.Name + "-rate", Up: Shape{RateBps: p.Up.RateBps}, Down: Shape{RateBps: p.Down.RateBps}}
			rateOnly, bu, bs := benchOurs(t, bare, dur)
			ref := benchTBF(t, p.Up.RateBps, dur)
			fmt.Printf("%-9s %6.1f | %8.2f %5.0f%% %5.0f%% | %8.2f %8.2f %5.2f %4.0f%%\n", p.Name, float64(p.Up.RateBps)/1e6,
				whole/1e6, 100*user, 100*sys, rateOnly/1e6, ref/1e6, rateOnly/ref, 100*(bu+bs))
		})
	}
	fmt.Println("user/sys/CPU: this process's CPU time per second of wall time (sys includes the kernel's TCP/IP work for packets written into the TUN devices)")
}

// socatBulk sends zeros from the box to the hub namespace for dur and returns the
// goodput in bit/s counted by the receiver.
func socatBulk(t *testing.T, box, hub, hubAddr string, dur time.Duration) float64 {
	t.Helper()
	rx := exec.Command("ip", "netns", "exec", hub, "sh", "-c", "socat -u TCP4-LISTEN:5001,reuseaddr STDOUT | wc -c")
	var out strings.Builder
	rx.Stdout = &out
	if err := rx.Start(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the receiving socat to listen", func() bool { return listensTCP(rx.Process.Pid, 5001) })
	secs := strconv.Itoa(int(dur / time.Second))
	tx := exec.Command("ip", "netns", "exec", box, "timeout", secs, "socat", "-u", "OPEN:/dev/zero", "TCP4:"+hubAddr+":5001")
	start := time.Now()
	tx.Run() // timeout ends it with status 124
	rx.Wait()
	n, err := strconv.ParseFloat(strings.TrimSpace(out.String()), 64)
	if err != nil {
		t.Fatalf("receiver counted %q", out.String())
	}
	return n * 8 / time.Since(start).Seconds()
}

// listensTCP reports whether a TCP socket listens on port in the network namespace of
// process pid.
func listensTCP(pid, port int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line) // sl local_address rem_address st …
		if len(f) > 3 && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) && f[3] == "0A" {
			return true
		}
	}
	return false
}

func benchOurs(t *testing.T, p Profile, dur time.Duration) (bps, user, sys float64) {
	l, err := Start(context.Background(), p, Options{Logger: testLogger(t), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	bps = socatBulk(t, l.Namespace(Box), l.Namespace(Hub), l.HubAddr().String(), dur)
	wall := time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	u := time.Duration(after.Utime.Nano() - before.Utime.Nano())
	s := time.Duration(after.Stime.Nano() - before.Stime.Nano())
	return bps, u.Seconds() / wall.Seconds(), s.Seconds() / wall.Seconds()
}

// benchTBF runs the same transfer over a veth pair shaped by tc tbf at rate (0: none).
func benchTBF(t *testing.T, rate int64, dur time.Duration) float64 {
	box, hub := newNSNames()
	for _, ns := range []string{box, hub} {
		if err := createNS(ns); err != nil {
			t.Fatal(err)
		}
		defer deleteNS(ns)
	}
	steps := [][]string{
		{"link", "add", "vbox", "netns", box, "type", "veth", "peer", "name", "vhub", "netns", hub},
		{"-n", box, "addr", "add", "10.203.0.2/24", "dev", "vbox"},
		{"-n", hub, "addr", "add", "10.203.0.1/24", "dev", "vhub"},
		{"-n", box, "link", "set", "vbox", "up"},
		{"-n", hub, "link", "set", "vhub", "up"},
		{"-n", box, "link", "set", "lo", "up"},
		{"-n", hub, "link", "set", "lo", "up"},
	}
	if rate > 0 {
		// Same bottleneck buffer as ours: 100 ms of the rate.
		steps = append(steps, []string{"-n", box, "qdisc", "add", "dev", "vbox", "root", "tbf",
			"rate", strconv.FormatInt(rate, 10) + "bit", "burst", "16kb", "latency", "100ms"})
	}
	for _, s := range steps {
		if err := ipOrTC(s); err != nil {
			t.Fatal(err)
		}
	}
	return socatBulk(t, box, hub, "10.203.0.1", dur)
}

func ipOrTC(args []string) error {
	if len(args) > 2 && args[2] == "qdisc" {
		out, err := exec.Command("ip", append([]string{"netns", "exec", args[1], "tc"}, args[2:]...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("tc %v: %v: %s", args, err, out)
		}
		return nil
	}
	return ipCmd(args...)
}
