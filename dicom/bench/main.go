// Command bench measures the box's DICOM receiver against DCMTK's storescp: the same
// storescu sends the same CT-sized instances on loopback, once to our SCP (running as
// a child process with its spool and durable index, fsyncing every instance) and once
// to `storescp +xa`, into the same file system. It prints both throughputs, their
// ratio and the peak RSS of each receiver.
//
//	go run ./dicom/bench [-n 2000] [-dir DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/durable"
)

func main() {
	n := flag.Int("n", 2000, "instances to send")
	rows := flag.Int("size", 512, "rows and columns of each 16-bit image (512: ~520 KB, a CT slice)")
	base := flag.String("dir", "", "work directory on the disk to test (default: a new temporary directory)")
	serve := flag.String("serve", "", "internal: run the receiver with its state in this directory")
	flag.Parse()
	if *serve != "" {
		os.Exit(runReceiver(*serve))
	}
	if err := run(*n, *rows, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n, rows int, base string) error {
	for _, p := range []string{"storescu", "storescp"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s is not installed (Debian package dcmtk)", p)
		}
	}
	if base == "" {
		d, err := os.MkdirTemp("", "lifeline-bench-dicom-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		base = d
	}
	src := filepath.Join(base, "source")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	var total int64
	for i := 0; i < n; i++ {
		data := phantom.File(phantom.Spec{StudyUID: "2.25.4242", SOPInstanceUID: phantom.UID("2.25.4242", i),
			Rows: rows, Columns: rows, Fill: byte(i), DefinedLengths: true})
		total += int64(len(data))
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("ct%05d.dcm", i)), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("%d instances of %d bytes (%.0f MB) on loopback; receivers write to %s\n", n, total/int64(n), float64(total)/1e6, base)

	mb := float64(total) / 1e6
	// DCMTK as shipped leaves Nagle's algorithm on, and writes each PDU header and
	// body separately, so storescu and storescp wait on each other's delayed ACKs;
	// our SCP acknowledges at once. DCMTK's own TCP_NODELAY=1 switch removes that
	// effect for a like-for-like comparison: that ratio is the one to quote.
	for _, sc := range []struct {
		name string
		env  []string
	}{
		{"DCMTK with TCP_NODELAY=1 (Nagle off in storescu and storescp)", []string{"TCP_NODELAY=1"}},
		{"DCMTK as shipped (Nagle on)", nil},
	} {
		fmt.Printf("\n%s:\n", sc.name)
		ours, oursRSS, err := measure(base, "lifeline", src, sc.env, func(dir, port string) *exec.Cmd {
			self, _ := os.Executable()
			return exec.Command(self, "-serve", dir, "-port", port)
		})
		if err != nil {
			return err
		}
		ref, refRSS, err := measure(base, "storescp", src, sc.env, func(dir, port string) *exec.Cmd {
			return exec.Command("storescp", "+xa", "-aet", "LIFELINE", "-od", dir, port)
		})
		if err != nil {
			return err
		}
		fmt.Printf("  lifeline SCP (fsync + index per instance): %6.1f MB/s  %6.1f instances/s  %6.1fs  peak RSS %5.1f MB\n",
			mb/ours.Seconds(), float64(n)/ours.Seconds(), ours.Seconds(), float64(oursRSS)/1024)
		fmt.Printf("  DCMTK storescp +xa (no fsync):             %6.1f MB/s  %6.1f instances/s  %6.1fs  peak RSS %5.1f MB\n",
			mb/ref.Seconds(), float64(n)/ref.Seconds(), ref.Seconds(), float64(refRSS)/1024)
		fmt.Printf("  ratio lifeline/storescp: %.2fx (goal >= 1.0x); lifeline peak RSS %.1f MB (goal < 100 MB)\n",
			ref.Seconds()/ours.Seconds(), float64(oursRSS)/1024)
	}
	return nil
}

// measure starts a receiver, times one storescu run of the whole source folder, stops
// the receiver and returns the elapsed time and the receiver's peak RSS in KiB.
func measure(base, name, src string, env []string, receiver func(dir, port string) *exec.Cmd) (time.Duration, int64, error) {
	dir := filepath.Join(base, name)
	os.RemoveAll(dir) // each run starts empty, as a fresh box would
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	cmd := receiver(dir, port)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start %s: %w", name, err)
	}
	defer cmd.Process.Kill()
	if err := waitPort("127.0.0.1:" + port); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", name, err)
	}
	start := time.Now()
	scu := exec.Command("storescu", "-aec", "LIFELINE", "+sd", "127.0.0.1", port, src)
	scu.Env = append(os.Environ(), env...)
	out, err := scu.CombinedOutput()
	el := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("storescu to %s: %v\n%s", name, err, out)
	}
	rss := peakRSS(cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	return el, rss, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

func waitPort(addr string) error {
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

var port = flag.String("port", "", "internal: the receiver's port")

// runReceiver is the child: the SCP and spool exactly as the box wires them.
func runReceiver(dir string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := durable.Open(filepath.Join(dir, "state.db"), 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer store.Close()
	sp, err := spool.Open(filepath.Join(dir, "spool"), store, spool.Config{}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scp, err := dimse.NewSCP(dimse.SCPConfig{}, sp, log, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signalContext()
	defer stop()
	go sp.Run(ctx)
	if err := scp.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	count := 0
	sp.Instances(func(spool.Instance) error { count++; return nil })
	fmt.Fprintf(os.Stderr, "lifeline receiver: %d instances in the spool\n", count)
	return 0
}

func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

var _ = dicom.CTImageStorage

// peakRSS returns a live process's peak resident set (VmHWM) in KiB, 0 if unknown.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}
