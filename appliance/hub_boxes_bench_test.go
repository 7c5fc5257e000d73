//go:build bench

package appliance

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lifeline/internal/peers"
	"lifeline/internal/selfexec"
	"lifeline/internal/trust"
)

// How many boxes one hub holds before the p99 latency of an upload append doubles.
// The hub runs in this process (its CPU is this process's); the boxes run in a child
// process, the test binary started again in the box fleet's role, so that their own
// CPU (pion, the box's stores, making and hashing instances) is not counted as the
// hub's. Both share this machine's two cores, as does PostgreSQL.
//
// Time is compressed for the studies only: each box sends 100-instance CT studies at
// boxesScale times "one study an hour", the vitals at the real rate. The first step is
// one box; N doubles until the p99 append latency is at least twice that of N = 1 in
// the same run. `make bench-hub` runs it:
//
//	go test -tags bench -run TestBenchHubBoxes -v -count 1 ./appliance
//
// LIFELINE_BENCH_RUNS (default 3), LIFELINE_BENCH_SCALE (default 120: a study every
// 30 s, 3.3 instances or 14 Mbit/s a second per box, so that one box's baseline has
// 200 appends in 60 s), LIFELINE_BENCH_STEP (seconds measured per step, default 30;
// twice that for N = 1), LIFELINE_BENCH_MAXBOXES (default 64),
// LIFELINE_BENCH_ENGINES ("bolt,postgres") and LIFELINE_BENCH_ALLSTEPS (1: go on to
// MAXBOXES past the doubling, to read the hub's CPU per box) change it.

// boxFleetEnv carries the child's orders: a JSON boxFleetOrder.
const boxFleetEnv = "LIFELINE_BOX_FLEET"

type boxFleetOrder struct {
	HubURL  string            `json:"hub_url"`
	Codes   map[string]string `json:"codes"` // device → enrolment code
	Dir     string            `json:"dir"`
	Rate    float64           `json:"rate"` // instances per second per box
	Warmup  time.Duration     `json:"warmup"`
	Measure time.Duration     `json:"measure"`
}

// boxFleetResult is what the child prints on its last line.
type boxFleetResult struct {
	LatencyMS []float64 `json:"latency_ms"`
	Instances int64     `json:"instances"`
	Studies   int64     `json:"studies"`
	Failures  int64     `json:"failures"`
	Busy      int64     `json:"busy"` // requests the hub answered 429
	LastError string    `json:"last_error,omitempty"`
	CPU       float64   `json:"cpu_s"` // the child's CPU seconds in the window
}

// TestMain runs the box fleet when this binary was started as TestBenchHubBoxes's
// child, the tests otherwise.
func TestMain(m *testing.M) {
	selfexec.Main(m, map[string]selfexec.Role{boxFleetEnv: boxFleetChild})
}

// boxFleetChild runs the boxes raw (a JSON boxFleetOrder) orders and prints START and
// STOP around the measured window, then RESULT and its boxFleetResult.
func boxFleetChild(raw string) int {
	var o boxFleetOrder
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		fmt.Fprintln(os.Stderr, "box fleet:", err)
		return 2
	}
	res, err := runBoxFleet(o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "box fleet:", err)
		return 1
	}
	line, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", line)
	return 0
}

func runBoxFleet(o boxFleetOrder, out *os.File) (boxFleetResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	pixels := make([]byte, boxSimCTRows*boxSimCTRows*2)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(pixels); i += 2 {
		v := uint16((i/2)%2048) + uint16(rng.IntN(16))
		pixels[i], pixels[i+1] = byte(v), byte(v>>8&0x0f)
	}
	w := &boxSimWindow{}
	var boxes []*simBox
	for device, code := range o.Codes {
		dir := filepath.Join(o.Dir, device)
		id, err := trust.Enroll(ctx, o.HubURL, code, dir)
		if err != nil {
			return boxFleetResult{}, fmt.Errorf("enrol %s: %w", device, err)
		}
		b, err := startSimBox(ctx, &wg, id, o.HubURL, dir, o.Rate, pixels, w)
		if err != nil {
			return boxFleetResult{}, fmt.Errorf("start %s: %w", device, err)
		}
		boxes = append(boxes, b)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !allConnected(boxes) {
		if time.Now().After(deadline) {
			return boxFleetResult{}, fmt.Errorf("not every box's live session connected within 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(o.Warmup)
	count := func() (inst, studies, failures, busy int64) {
		for _, b := range boxes {
			inst += b.instances.Load()
			studies += b.studies.Load()
			failures += b.failures.Load()
			busy += b.busy.Load()
		}
		return
	}
	inst0, studies0, fail0, busy0 := count()
	cpu0 := selfCPU()
	w.open.Store(true)
	fmt.Fprintln(out, "START")
	time.Sleep(o.Measure)
	w.open.Store(false)
	fmt.Fprintln(out, "STOP")
	cpu1 := selfCPU()
	inst1, studies1, fail1, busy1 := count()
	res := boxFleetResult{Instances: inst1 - inst0, Studies: studies1 - studies0, Failures: fail1 - fail0, Busy: busy1 - busy0, CPU: cpu1 - cpu0}
	w.mu.Lock()
	for _, d := range w.lat {
		res.LatencyMS = append(res.LatencyMS, float64(d.Microseconds())/1000)
	}
	w.mu.Unlock()
	for _, b := range boxes {
		if e, ok := b.lastErr.Load().(string); ok {
			res.LastError = e
		}
	}
	return res, nil
}

func allConnected(boxes []*simBox) bool {
	for _, b := range boxes {
		if b.pub.Status().State != "connected" {
			return false
		}
	}
	return true
}

// selfCPU is this process's CPU time so far, user and system, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// boxesStep is one step of a run: N boxes and what the hub did meanwhile.
type boxesStep struct {
	N             int
	P50, P99      float64 // ms
	Ratio         float64 // P99 over the same run's P99 at N = 1
	Samples       int
	HubCPU        float64 // cores
	BoxCPU        float64 // cores, all the simulated boxes
	DBCPU         float64 // cores, PostgreSQL's processes
	InstancesPerS float64
	VitalsPerS    float64 // vitals messages the hub's archive kept per second
	Failures      int64
	Busy          int64 // 429 answers (the box waited and sent again)
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestBenchHubBoxes(t *testing.T) {
	runs := benchEnv("LIFELINE_BENCH_RUNS", 3)
	scale := benchEnv("LIFELINE_BENCH_SCALE", 120)
	step := time.Duration(benchEnv("LIFELINE_BENCH_STEP", 30)) * time.Second
	maxBoxes := benchEnv("LIFELINE_BENCH_MAXBOXES", 64)
	engines := strings.Split(cmp.Or(os.Getenv("LIFELINE_BENCH_ENGINES"), "bolt,postgres"), ",")
	rate := float64(boxSimStudySize) / 3600 * float64(scale)
	t.Logf("each box: a %d-instance CT study every %.0f s (%d× one an hour, %.2f instances/s), 12-lead vitals at the real rate",
		boxSimStudySize, 3600/float64(scale), scale, rate)
	results := map[string][][]boxesStep{}
	for run := 1; run <= runs; run++ {
		for _, engine := range engines {
			steps := benchBoxesRun(t, engine, rate, step, maxBoxes, os.Getenv("LIFELINE_BENCH_ALLSTEPS") == "1")
			results[engine] = append(results[engine], steps)
			if t.Failed() {
				return
			}
		}
	}
	for _, engine := range engines {
		reportBoxes(t, engine, results[engine])
	}
}

// benchBoxesRun starts a hub on engine and doubles the boxes until p99 doubles.
func benchBoxesRun(t *testing.T, engine string, rate float64, step time.Duration, maxBoxes int, allSteps bool) []boxesStep {
	dir := t.TempDir()
	var st StateSection
	var db *pgx.Conn
	if engine == "postgres" {
		st.Postgres = peers.Postgres(t)
		var err error
		if db, err = pgx.Connect(context.Background(), st.Postgres); err != nil {
			t.Fatal(err)
		}
		defer db.Close(context.Background())
	}
	hub, cfg := startHubIn(t, filepath.Join(dir, "hub"), func(c *HubConfig) { c.State = st })
	hubURL := "https://" + cfg.Server.Listen
	var steps []boxesStep
	next := 0
	one := func(n int) boxesStep {
		codes := map[string]string{}
		for range n {
			next++
			device := "BOX-" + strconv.Itoa(next)
			code, err := hub.devices.NewCode(context.Background(), device, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			codes[device] = code
		}
		measure := step
		if n == 1 {
			measure = 2 * step // the baseline: as many appends as the next step
		}
		s, err := runBoxesStep(hub, db, boxFleetOrder{HubURL: hubURL, Codes: codes, Dir: filepath.Join(boxSimDir(t), strconv.Itoa(next)),
			Rate: rate, Warmup: 5 * time.Second, Measure: measure})
		if err != nil {
			t.Fatalf("%s, %d boxes: %v", engine, n, err)
		}
		s.Ratio = 1
		if n > 1 && steps[0].P99 > 0 {
			s.Ratio = s.P99 / steps[0].P99
		}
		t.Logf("%-8s N=%3d  appends %5d  p50 %6.1f ms  p99 %6.1f ms (%.2f× N=1)  hub %.2f cores  boxes %.2f  db %.2f  %5.1f inst/s  %6.0f vitals msg/s  429s %d  failures %d",
			engine, n, s.Samples, s.P50, s.P99, s.Ratio, s.HubCPU, s.BoxCPU, s.DBCPU, s.InstancesPerS, s.VitalsPerS, s.Busy, s.Failures)
		if s.Failures > 0 {
			t.Errorf("%s, %d boxes: %d uploads failed", engine, n, s.Failures)
		}
		// Every box's 12-lead stream is about 36 messages a second; a hub that kept
		// far fewer was not carrying them.
		if s.VitalsPerS < 15*float64(n) {
			t.Errorf("%s, %d boxes: the hub kept %.0f vitals messages/s, expected about %d", engine, n, s.VitalsPerS, 36*n)
		}
		return s
	}
	for n := 1; n <= maxBoxes; n *= 2 {
		steps = append(steps, one(n))
		if n > 1 && steps[len(steps)-1].Ratio >= 2 && !allSteps {
			// Doubling is coarse: one step between the last two narrows where it is.
			if n >= 4 {
				steps = append(steps, one(n*3/4))
			}
			break
		}
	}
	slices.SortFunc(steps, func(a, b boxesStep) int { return a.N - b.N })
	return steps
}

// boxSimDir is where the simulated boxes keep their stores: in memory when the
// machine has /dev/shm, so that their fsyncs do not queue with the hub's on the disk.
func boxSimDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "lifeline-boxes-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// runBoxesStep runs one child with o's boxes and measures the hub meanwhile.
func runBoxesStep(hub *Hub, db *pgx.Conn, o boxFleetOrder) (boxesStep, error) {
	order, _ := json.Marshal(o)
	cmd := selfexec.Command(boxFleetEnv, string(order))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return boxesStep{}, err
	}
	if err := cmd.Start(); err != nil {
		return boxesStep{}, err
	}
	var hubCPU0, db0, vitals0 float64
	var at0 time.Time
	s := boxesStep{N: len(o.Codes)}
	var res *boxFleetResult
	var lines []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "START":
			at0, hubCPU0, db0, vitals0 = time.Now(), selfCPU(), postgresCPU(db), archiveKept(hub)
		case line == "STOP":
			secs := time.Since(at0).Seconds()
			s.HubCPU = (selfCPU() - hubCPU0) / secs
			s.DBCPU = (postgresCPU(db) - db0) / secs
			s.VitalsPerS = (archiveKept(hub) - vitals0) / secs
		case strings.HasPrefix(line, "RESULT "):
			res = new(boxFleetResult)
			if err := json.Unmarshal([]byte(line[len("RESULT "):]), res); err != nil {
				return s, err
			}
		default:
			lines = append(lines, line)
		}
	}
	if err := cmd.Wait(); err != nil || res == nil {
		return s, fmt.Errorf("box fleet: %v: %s", err, strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
	lat := res.LatencyMS
	if expected := float64(len(o.Codes)) * o.Rate * o.Measure.Seconds(); len(lat) == 0 && expected >= 5 {
		return s, fmt.Errorf("no upload finished in the window, %.0f expected (last error: %s)", expected, res.LastError)
	}
	if len(lat) > 0 { // with studies too rare to sample, the step is read for its CPU
		slices.Sort(lat)
		s.Samples = len(lat)
		s.P50, s.P99 = percentile(lat, 0.50), percentile(lat, 0.99)
	}
	s.BoxCPU = res.CPU / o.Measure.Seconds()
	s.InstancesPerS = float64(res.Instances) / o.Measure.Seconds()
	s.Failures, s.Busy = res.Failures, res.Busy
	if res.Failures > 0 {
		fmt.Fprintf(os.Stderr, "box fleet: last upload error: %s\n", res.LastError)
	}
	return s, nil
}

// percentile of sorted values, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// archiveKept is how many vitals messages the hub's archive has kept, from its metrics.
func archiveKept(hub *Hub) float64 {
	mfs, err := hub.reg.Gather()
	if err != nil {
		return 0
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "lifeline_stream_vitals_archive_received_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// postgresCPU is the CPU seconds of the database's server processes that
// pg_stat_activity lists (backends and the background writers); 0 without a database.
func postgresCPU(db *pgx.Conn) float64 {
	if db == nil {
		return 0
	}
	rows, err := db.Query(context.Background(), "SELECT pid FROM pg_stat_activity")
	if err != nil {
		return 0
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0
	}
	var total float64
	for _, pid := range pids {
		total += processCPU(int(pid))
	}
	return total
}

// processCPU reads a process's user and system time from /proc, in seconds.
func processCPU(pid int) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// reportBoxes prints each N's p99 ratio to N = 1 over the runs (min/median/max) and
// the N at which each run's p99 doubled.
func reportBoxes(t *testing.T, engine string, runs [][]boxesStep) {
	byN := map[int][]boxesStep{}
	var ns []int
	var knees []float64
	for _, steps := range runs {
		for _, s := range steps {
			if _, ok := byN[s.N]; !ok {
				ns = append(ns, s.N)
			}
			byN[s.N] = append(byN[s.N], s)
		}
		knee := -float64(steps[len(steps)-1].N) // not reached by the last step
		for _, s := range steps[1:] {
			if s.Ratio >= 2 {
				knee = float64(s.N)
				break
			}
		}
		knees = append(knees, knee)
	}
	slices.Sort(ns)
	t.Logf("%s: p99 ratio to N=1 (min/median/max over the runs that reached N), p50/p99 ms and CPU medians", engine)
	for _, n := range ns {
		ss := byN[n]
		var ratio, p50, p99, hub, boxes, db, inst, vit []float64
		for _, s := range ss {
			ratio = append(ratio, s.Ratio)
			p50, p99, hub, boxes = append(p50, s.P50), append(p99, s.P99), append(hub, s.HubCPU), append(boxes, s.BoxCPU)
			db, inst, vit = append(db, s.DBCPU), append(inst, s.InstancesPerS), append(vit, s.VitalsPerS)
		}
		lo, med, hi := spread(ratio)
		t.Logf("  N=%3d runs %d  p99 ratio %.2f / %.2f / %.2f  p50 %.1f ms  p99 %.1f ms  hub %.2f cores  boxes %.2f  db %.2f  %.1f inst/s  %.0f vitals msg/s",
			n, len(ss), lo, med, hi, median(p50), median(p99), median(hub), median(boxes), median(db), median(inst), median(vit))
	}
	t.Logf("%s: N at which p99 ≥ 2× N=1, per run (negative: not reached by that N): %v", engine, knees)
}

func spread(v []float64) (lo, med, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[0], median(s), s[len(s)-1]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
