package dispatch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/dispatch/jt808"
	"lifeline/internal/durable"
	"lifeline/internal/selfexec"
	"lifeline/internal/service"
	"lifeline/internal/wait"
)

// The dead-zone test runs this test binary as the box: a child process that reports
// one fix per second of GNSS time (an injected clock: the fixes carry their own
// times, so ten minutes of driving take seconds) to a platform it cannot reach until
// a flag file appears, prints a line for every fix it has offered, and is SIGKILLed
// once in the middle.
const (
	childDir      = "LIFELINE_DEADZONE_DIR"
	childPlatform = "LIFELINE_DEADZONE_PLATFORM"
	childUntil    = "LIFELINE_DEADZONE_UNTIL" // GNSS second to offer up to (exclusive) at full speed
	childLive     = "LIFELINE_DEADZONE_LIVE"  // then this many more at 50 ms each, as live driving
)

func TestMain(m *testing.M) {
	selfexec.Main(m, map[string]selfexec.Role{childDir: func(dir string) int {
		if err := runBoxChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}})
}

func runBoxChild(dir string) error {
	store, err := durable.Open(filepath.Join(dir, "edge.db"), 5*time.Second)
	if err != nil {
		return err
	}
	mission, err := NewMission(store, t0)
	if err != nil {
		return err
	}
	if mission.State() == Available {
		if err := mission.Set(Dispatched, t0); err != nil {
			return err
		}
		if err := mission.Set(EnRoute, t0); err != nil {
			return err
		}
	}
	reachable := filepath.Join(dir, "reachable")
	r, err := NewReporter(Config{
		Server: os.Getenv(childPlatform), Edition: jt808.Edition2019, Phone: "13800138000",
		Store: store, Mission: mission, ResponseTimeout: 3 * time.Second,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			if _, err := os.Stat(reachable); err != nil {
				return nil, errors.New("no coverage") // a tunnel: the platform is unreachable
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
	})
	if err != nil {
		return err
	}
	go r.Run(context.Background(), &service.Health{})
	until, _ := strconv.Atoi(os.Getenv(childUntil))
	live, _ := strconv.Atoi(os.Getenv(childLive))
	start := 0
	if last, ok := r.LastReport(); ok {
		start = int(last.Sub(t0)/time.Second) + 1 // resume after what the store has
	}
	out := bufio.NewWriter(os.Stdout)
	for sec := start; sec < until+live; sec++ {
		if sec >= until {
			time.Sleep(50 * time.Millisecond) // live driving after the dead zone
		}
		if _, err := r.Offer(fixAt(sec, 90)); err != nil {
			return err
		}
		fmt.Fprintf(out, "offered %d\n", sec)
		out.Flush()
	}
	select {} // keep sending until killed
}

// boxChild starts the child and returns it with a channel of the seconds it offered.
func boxChild(t *testing.T, dir, platform string, until, live int) (*exec.Cmd, <-chan int) {
	t.Helper()
	cmd := selfexec.Command(childDir, dir, childPlatform+"="+platform,
		childUntil+"="+strconv.Itoa(until), childLive+"="+strconv.Itoa(live))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	offered := make(chan int, 1024)
	go func() {
		defer close(offered)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "offered %d", &n); err == nil {
				offered <- n
			}
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, offered
}

// TestDeadZoneTenMinutesWithSIGKILL: ten minutes of 1 s reports with the platform
// unreachable, the box SIGKILLed once in the middle; when coverage returns every one
// of the ~600 reports reaches the platform exactly once, the blind-zone backlog in
// order, while live reports continue.
func TestDeadZoneTenMinutesWithSIGKILL(t *testing.T) {
	const deadZone, live = 600, 20
	p := startPlatform(t)
	dir := t.TempDir()

	// The first life of the box: killed at a random moment around the middle.
	killAt := 250 + rand.IntN(100)
	cmd, offered := boxChild(t, dir, p.addr, deadZone, 0)
	for n := range offered {
		if n >= killAt {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(p.reports()) != 0 {
		t.Fatal("the platform heard from the box inside the dead zone")
	}

	// The second life: the rest of the dead zone, then coverage returns.
	_, offered = boxChild(t, dir, p.addr, deadZone, live)
	for n := range offered {
		if n == deadZone-1 {
			break
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "reachable"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wait.For(t, 60*time.Second, "every report to reach the platform", func() bool { return len(p.reports()) >= deadZone+live })
	t.Logf("killed after second %d; %d reports reached the platform %v after coverage returned", killAt, len(p.reports()), time.Since(start))
	checkExactlyOnceInOrder(t, p.reports(), deadZone+live)
}

func checkExactlyOnceInOrder(t *testing.T, got []jt808.Report, want int) {
	t.Helper()
	seen := map[int]int{}
	var blind, liveSecs []int
	for _, r := range got {
		sec := int(r.Time.Sub(t0) / time.Second)
		seen[sec]++
		if r.Batch == "blind-zone" {
			blind = append(blind, sec)
		} else {
			liveSecs = append(liveSecs, sec)
		}
	}
	var dup, missing []string
	for sec := 0; sec < want; sec++ {
		switch seen[sec] {
		case 0:
			missing = append(missing, strconv.Itoa(sec))
		case 1:
		default:
			dup = append(dup, fmt.Sprintf("%d×%d", sec, seen[sec]))
		}
	}
	if len(missing) > 0 || len(dup) > 0 || len(got) != want {
		t.Fatalf("%d reports for %d seconds; missing %s; duplicated %s", len(got), want, strings.Join(missing, ","), strings.Join(dup, ","))
	}
	if !sort.IntsAreSorted(blind) || !sort.IntsAreSorted(liveSecs) {
		t.Errorf("out of order: blind zone %v, live %v", blind, liveSecs)
	}
	if len(blind) < 500 {
		t.Errorf("only %d reports came up as blind-zone batches", len(blind))
	}
}
