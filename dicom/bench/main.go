// Command bench measures the box's DICOM receiver against references in the same run:
// the same storescu sends the same CT-sized instances on loopback to our SCP (a child
// process with its spool and durable index, as the box wires them), to Orthanc with its
// defaults (which fsyncs every file), and to DCMTK's storescp (which never fsyncs), all
// into the same file system; and the disk's own rate for writing the same instances
// durably one by one (write and fsync per instance to its own new file). It does so on
// one association and on four in parallel, several runs each, syncing before each timed
// run and alternating which side goes first, and prints min / median / max of each side
// and of our ratio to each reference. The method and results are in README.md.
//
//	go run ./dicom/bench [-n 2000] [-runs 3] [-dir DIR] [-nagle]
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
	"runtime/pprof"
	"sort"
	"syscall"
	"time"

	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/durable"
)

func main() {
	n := flag.Int("n", 2000, "instances to send")
	rows := flag.Int("size", 512, "rows and columns of each 16-bit image (512: ~520 KB, a CT slice)")
	base := flag.String("dir", "", "work directory on the disk to test (default: a new temporary directory)")
	runs := flag.Int("runs", 3, "timed runs of each side in each scenario (min / median / max)")
	nagle := flag.Bool("nagle", false, "also measure one association with DCMTK as shipped (Nagle on)")
	serve := flag.String("serve", "", "internal: run the receiver with its state in this directory")
	flag.Parse()
	if *serve != "" {
		os.Exit(runReceiver(*serve))
	}
	if *runs < 1 {
		*runs = 1
	}
	if err := run(*n, *rows, *runs, *base, *nagle); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// side is one measured receiver in a scenario, with its times over the runs.
type side struct {
	r     receiver
	disk  int // writers: the disk's own rate instead of a receiver
	times []time.Duration
	rss   int64           // largest peak RSS seen, KiB
	cpu   []time.Duration // the receiver process's CPU time in each run
}

// scenario is one way of sending: how many associations in parallel, which sides.
type scenario struct {
	title string
	parts []string
	env   []string
	sides []*side
}

func run(n, rows, runs int, base string, nagle bool) error {
	for _, p := range []string{"storescu", "storescp", "Orthanc"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s is not installed (make peers: Debian packages dcmtk, orthanc)", p)
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
	files, parts, total, err := writeSource(base, n, rows, 4)
	if err != nil {
		return err
	}
	mb := float64(total) / 1e6
	fmt.Printf("%d instances of %d bytes (%.0f MB) on loopback; receivers write to %s; %d runs, sides alternating\n",
		n, total/int64(n), mb, base, runs)
	nodelay := []string{"TCP_NODELAY=1"}
	one := &scenario{title: "one association (storescu, TCP_NODELAY=1 for DCMTK and Orthanc)", parts: parts[:1], env: nodelay,
		sides: []*side{{r: lifelineReceiver()}, {r: orthancReceiver()}, {disk: 1}, {r: storescpReceiver(false)}}}
	four := &scenario{title: "4 parallel associations (4 storescu, a quarter each; storescp --fork)", parts: parts[1:], env: nodelay,
		sides: []*side{{r: lifelineReceiver()}, {r: storescpReceiver(true)}, {r: orthancReceiver()}, {disk: 4}}}
	scenarios := []*scenario{one, four}
	if nagle {
		scenarios = append(scenarios, &scenario{title: "one association, DCMTK as shipped (Nagle on)", parts: parts[:1],
			sides: []*side{{r: lifelineReceiver()}, {r: storescpReceiver(false)}}})
	}
	for _, sc := range scenarios {
		for i := 0; i < runs; i++ {
			// Alternate which side goes first: each run starts one further on.
			for j := range sc.sides {
				sd := sc.sides[(i+j)%len(sc.sides)]
				var el time.Duration
				var u usage
				var err error
				if sd.disk > 0 {
					el, err = diskRate(base, files, sd.disk)
				} else {
					el, u, err = measure(base, sd.r, sc.parts, sc.env)
				}
				if err != nil {
					return err
				}
				sd.times = append(sd.times, el)
				sd.rss = max(sd.rss, u.rss)
				sd.cpu = append(sd.cpu, u.cpu)
				fmt.Printf("  run %d %-40s %-10s %6.1f MB/s\n", i+1, sc.title[:min(40, len(sc.title))], sd.name(), mb/el.Seconds())
			}
		}
	}
	report(scenarios, mb)
	return nil
}

func (s *side) name() string {
	switch {
	case s.disk == 1:
		return "disk"
	case s.disk > 1:
		return fmt.Sprintf("disk x%d", s.disk)
	}
	return s.r.name
}

// rates returns min, median and max MB/s over the runs.
func (s *side) rates(mb float64) (lo, med, hi float64) {
	r := make([]float64, len(s.times))
	for i, t := range s.times {
		r[i] = mb / t.Seconds()
	}
	sort.Float64s(r)
	return r[0], r[len(r)/2], r[len(r)-1]
}

// cpuPerGB returns the median CPU seconds the receiver process spent per GB received.
func (s *side) cpuPerGB(mb float64) float64 {
	c := make([]float64, len(s.cpu))
	for i, d := range s.cpu {
		c[i] = d.Seconds() / (mb / 1000)
	}
	sort.Float64s(c)
	return c[len(c)/2]
}

// ratios returns min, median and max of a's rate over b's, run by run.
func ratios(a, b *side) (lo, med, hi float64) {
	r := make([]float64, len(a.times))
	for i := range a.times {
		r[i] = b.times[i].Seconds() / a.times[i].Seconds()
	}
	sort.Float64s(r)
	return r[0], r[len(r)/2], r[len(r)-1]
}

func report(scenarios []*scenario, mb float64) {
	goals := map[string]float64{"Orthanc": 1.0, "disk": 0.9}
	for k, sc := range scenarios {
		fmt.Printf("\n%s — MB/s min / median / max:\n", sc.title)
		for _, sd := range sc.sides {
			lo, med, hi := sd.rates(mb)
			rss := ""
			if sd.rss > 0 {
				rss = fmt.Sprintf("  peak RSS %5.1f MB  CPU %.1f s per GB (median)", float64(sd.rss)/1024, sd.cpuPerGB(mb))
			}
			fmt.Printf("  %-10s %6.1f / %6.1f / %6.1f%s\n", sd.name(), lo, med, hi, rss)
		}
		ours := sc.sides[0]
		for _, ref := range sc.sides[1:] {
			lo, med, hi := ratios(ours, ref)
			goal := ""
			if g, ok := goals[ref.name()]; ok && k == 0 {
				goal = fmt.Sprintf(" (goal >= %.1fx)", g)
			} else if ref.name() == "storescp" && k == 1 {
				goal = " (goal >= 1.0x)"
			}
			fmt.Printf("  lifeline / %-9s %.2fx / %.2fx / %.2fx per run%s\n", ref.name(), lo, med, hi, goal)
		}
	}
}

// writeSource writes n CT-sized instances into base/source/partK (K < parts), then
// syncs, so that no timed run competes with the source's write-back. It returns the
// files, the folders to send (the whole source first, then each part) and the bytes.
func writeSource(base string, n, rows, parts int) ([]string, []string, int64, error) {
	src := filepath.Join(base, "source")
	dirs := []string{src}
	for k := 0; k < parts; k++ {
		d := filepath.Join(src, fmt.Sprintf("part%d", k))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, nil, 0, err
		}
		dirs = append(dirs, d)
	}
	var files []string
	var total int64
	for i := 0; i < n; i++ {
		data := phantom.File(phantom.Spec{StudyUID: "2.25.4242", SOPInstanceUID: phantom.UID("2.25.4242", i),
			Rows: rows, Columns: rows, Fill: byte(i), DefinedLengths: true})
		total += int64(len(data))
		p := filepath.Join(dirs[1+i%parts], fmt.Sprintf("ct%05d.dcm", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, nil, 0, err
		}
		files = append(files, p)
	}
	syscall.Sync()
	return files, dirs, total, nil
}

var port = flag.String("port", "", "internal: the receiver's port")

// runReceiver is the child: the SCP and spool exactly as the box wires them.
func runReceiver(dir string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if p := os.Getenv("LIFELINE_BENCH_CPUPROFILE"); p != "" {
		// Where the receiver's CPU goes: set the variable to a file for pprof.
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
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
	sp.Instances(func(spool.Instance) error { count++; return nil }) // after every acknowledged one is indexed
	sp.Close()
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
