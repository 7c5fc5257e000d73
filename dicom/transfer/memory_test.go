package transfer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"lifeline/dicom/spool"
	"lifeline/internal/durable"
	"lifeline/internal/hubstate/boltstate"
	"lifeline/internal/trust"
	"lifeline/internal/wait"
)

// Tests of issue 16 item 7: one enrolled box must not exhaust the hub's memory.

// envHubDir tells TestHubProcess where the hub's authority, registry and archive are.
const envHubDir = "LIFELINE_TRANSFER_HUB_DIR"

// TestHubProcess is not a test: it is the hub's transfer side in a process of its
// own, started by TestStalledAppendsBoundHubMemory so that the hub's peak memory can
// be measured apart from the boxes attacking it. It writes its address to the file
// "addr" in its directory and serves until it is killed.
func TestHubProcess(t *testing.T) {
	dir := os.Getenv(envHubDir)
	if dir == "" {
		t.Skip("run as a child of TestStalledAppendsBoundHubMemory")
	}
	auth, err := trust.OpenAuthority(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := boltstate.Open(filepath.Join(dir, "trust.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := trust.NewRegistry(store, auth)
	serverTLS, err := auth.ServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewIngest(IngestConfig{Authorize: reg.Authorize}, store, filepath.Join(dir, "archive"), nil, nil, testLog(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	srv, err := Listen("127.0.0.1:0", ServerConfig{TLS: serverTLS, Handler: in.Handler(), Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := durable.WriteFile(filepath.Join(dir, "addr"), []byte(srv.Addr()), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Serve(context.Background())
}

// startHubProcess runs TestHubProcess on the authority and registry in dir and
// returns its pid and URL.
func startHubProcess(t *testing.T, dir string) (int, string) {
	t.Helper()
	return startHubProcessWith(t, dir, os.Args[0])
}

// startHubProcessWith is startHubProcess through a wrapper: run is the program, and
// args its arguments before this test binary's (strace, say); run alone when it is
// this test binary.
func startHubProcessWith(t *testing.T, dir, run string, args ...string) (int, string) {
	t.Helper()
	if run != os.Args[0] {
		args = append(args, os.Args[0])
	}
	cmd := exec.Command(run, append(args, "-test.run=^TestHubProcess$")...)
	cmd.Env = append(os.Environ(), envHubDir+"="+dir)
	cmd.Stderr = os.Stderr
	// A group of its own, so that a wrapper's child is stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	var addr []byte
	wait.For(t, 30*time.Second, "the hub process to listen", func() bool {
		var err error
		addr, err = os.ReadFile(filepath.Join(dir, "addr"))
		return err == nil && len(addr) > 0
	})
	return cmd.Process.Pid, "https://" + string(addr)
}

// procKiB reads a "kB" field (VmHWM, VmRSS) of /proc/pid/status.
func procKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s of %d: %q: %v", field, pid, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// stalledBody is a chunk's body that delivers all but its last byte and then waits,
// as a box that stalls its appends does, until release is closed.
type stalledBody struct {
	left    int64
	release <-chan struct{}
	stalled func()
}

var zeros = make([]byte, 64<<10)

func (b *stalledBody) Read(p []byte) (int, error) {
	if b.left > 0 {
		n := copy(p, zeros[:min(int64(len(zeros)), b.left)])
		b.left -= int64(n)
		return n, nil
	}
	b.stalled()
	<-b.release
	return 0, errors.New("the box gave up its stalled chunk")
}

// stallAttack is requests whose bodies stall a byte short of their end, as a box
// that wants the hub to hold them does.
type stallAttack struct {
	release  chan struct{}
	settled  atomic.Int64 // appends answered or sent up to their stall
	mu       sync.Mutex
	answered map[int]int // status → count
	wg       sync.WaitGroup
}

func stallAppends(t *testing.T, tlsConf *tls.Config, uploadURL string, n int, size int64) *stallAttack {
	return stallRequests(t, tlsConf, http.MethodPatch, uploadURL, n, size, func(req *http.Request) {
		req.Header.Set("Content-Type", partialUploadType)
		req.Header.Set(hdrUploadOffset, "0")
		req.Header.Set(hdrUploadComplete, "?0")
		req.Header.Set(hdrContentDigest, ContentDigest(make([]byte, size)))
	})
}

// stallRequests is n requests of method to url with bodies of size bytes, all but
// the last byte sent, on up to 100 streams per connection, from one box; header sets
// each request's header fields.
func stallRequests(t *testing.T, tlsConf *tls.Config, method, url string, n int, size int64, header func(*http.Request)) *stallAttack {
	a := &stallAttack{release: make(chan struct{}), answered: map[int]int{}}
	var transports []*http3.Transport
	for i := 0; i < n; i++ {
		if i%100 == 0 {
			tr := &http3.Transport{TLSClientConfig: tlsConf.Clone()}
			transports = append(transports, tr)
			t.Cleanup(func() { tr.Close() })
		}
		client := &http.Client{Transport: transports[len(transports)-1]}
		var once sync.Once
		settle := func() { once.Do(func() { a.settled.Add(1) }) }
		body := &stalledBody{left: size - 1, release: a.release, stalled: settle}
		req, err := http.NewRequest(method, url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		header(req)
		a.wg.Go(func() {
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			a.mu.Lock()
			a.answered[resp.StatusCode]++
			a.mu.Unlock()
			settle()
		})
	}
	t.Cleanup(a.stop)
	return a
}

// count returns how many appends were answered with status; zero: with any.
func (a *stallAttack) count(status int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for s, c := range a.answered {
		if status == 0 || s == status {
			n += c
		}
	}
	return n
}

// stop lets every stalled body fail, as the box giving up would.
func (a *stallAttack) stop() {
	select {
	case <-a.release:
	default:
		close(a.release)
	}
	a.wg.Wait()
}

// waitRSSSettled waits until the process's resident memory has not changed by more
// than 1 MiB for a second: whatever the attack made it hold, it holds now.
func waitRSSSettled(t *testing.T, pid int) {
	t.Helper()
	last, since := procKiB(t, pid, "VmRSS"), time.Now()
	wait.For(t, time.Minute, "the hub's memory to settle", func() bool {
		if now := procKiB(t, pid, "VmRSS"); now-last > 1024 || last-now > 1024 {
			last, since = now, time.Now()
		}
		return time.Since(since) >= time.Second
	})
}

// TestStalledAppendsBoundHubMemory replays the report against a hub process: one
// enrolled box starts 300 appends of 4 MiB each and stalls every one a byte short
// of its end. The hub held each body in memory, 2.8 GB in all. Now it takes only the
// box's bound of appends at once, streams them to disk, and refuses the rest with
// 429; its peak resident memory (VmHWM) stays within a bound, another box uploads
// meanwhile, and the stalled box uploads again once it lets go.
func TestStalledAppendsBoundHubMemory(t *testing.T) {
	p := newPKI(t)
	tlsA, tlsB := p.enroll(t, "AMB-A"), p.enroll(t, "AMB-B")
	p.release() // the hub process opens the registry
	pid, url := startHubProcess(t, p.dir)
	ctx := context.Background()
	a := newTestClient(t, url, tlsA)
	b := newTestClient(t, url, tlsB)
	up, err := a.create(ctx, spool.Instance{SOPInstanceUID: uid(1701) + ".1", StudyUID: uid(1701), Size: 64 << 20,
		SHA256: strings.Repeat("ef", 32)})
	if err != nil {
		t.Fatal(err)
	}
	base := procKiB(t, pid, "VmHWM")

	const n = 300
	attack := stallAppends(t, tlsA, a.base()+up.url, n, MaxChunk)
	wait.For(t, 2*time.Minute, "every append answered or stalled", func() bool { return attack.settled.Load() == n })
	waitRSSSettled(t, pid)
	peak := procKiB(t, pid, "VmHWM")
	refused, held := attack.count(http.StatusTooManyRequests), n-attack.count(0)
	t.Logf("hub peak RSS %d KiB at rest, %d KiB under %d stalled 4 MiB appends from one box (%d held, %d refused with 429)",
		base, peak, n, held, refused)
	if refused < n-DefaultMaxAppendsPerBox {
		t.Errorf("%d of %d appends refused, want all but the box's bound of %d", refused, n, DefaultMaxAppendsPerBox)
	}
	// Unbounded, the hub grew by 2.8 GB; -race is included in this bound.
	const bound = 96 << 10 // KiB
	if peak-base > bound {
		t.Errorf("hub peak RSS grew by %d KiB under the stalled appends, bound %d KiB", peak-base, bound)
	}

	// Another box is served while the first holds its bound.
	upB, err := b.create(ctx, spool.Instance{SOPInstanceUID: uid(1702) + ".1", StudyUID: uid(1702), Size: 4 << 10,
		SHA256: strings.Repeat("ef", 32)})
	if err != nil {
		t.Fatal(err)
	}
	if st, _, err := b.appendChunk(ctx, "", upB.url, 0, make([]byte, 1<<10), false, false); err != nil || st.offset != 1<<10 {
		t.Fatalf("another box's append during the stall: %+v, %v", st, err)
	}
	// The stalled box itself is refused until it lets go, then served again.
	if _, _, err := a.appendChunk(ctx, "", up.url, 0, make([]byte, 1<<10), false, false); err == nil {
		t.Fatal("the stalled box got an append past its bound")
	} else if he, ok := asHubError(err); !ok || he.status != http.StatusTooManyRequests || !he.is(ProblemBusy) {
		t.Fatalf("append past the box's bound: %v, want 429 busy", err)
	}
	attack.stop()
	wait.For(t, 30*time.Second, "the box served again once its stalled appends ended", func() bool {
		st, _, err := a.appendChunk(ctx, "", up.url, 0, make([]byte, 1<<10), false, false)
		return err == nil && st.offset == 1<<10
	})
	scratch, _ := filepath.Glob(filepath.Join(p.dir, "archive", "uploads", scratchPrefix+"*"))
	if len(scratch) != 0 {
		t.Fatalf("scratch files left after the stalled appends ended: %v", scratch)
	}
}

// TestStalledManifestsBoundHubMemory is the same attack on the manifest handler,
// which holds a manifest (up to 16 MiB) in memory to parse it: 300 manifests of
// 16 MiB from one box, each stalled a byte short. The hub reads two per box at once
// and refuses the rest with 429; its peak resident memory stays within a bound.
func TestStalledManifestsBoundHubMemory(t *testing.T) {
	p := newPKI(t)
	tlsA := p.enroll(t, "AMB-A")
	p.release()
	pid, url := startHubProcess(t, p.dir)
	base := procKiB(t, pid, "VmHWM")
	const n = 300
	attack := stallRequests(t, tlsA, http.MethodPut, url+StudiesPath+"/"+uid(1801)+"/manifest", n, maxManifest,
		func(req *http.Request) { req.Header.Set("Content-Type", "application/json") })
	wait.For(t, 2*time.Minute, "every manifest answered or stalled", func() bool { return attack.settled.Load() == n })
	waitRSSSettled(t, pid)
	peak := procKiB(t, pid, "VmHWM")
	refused, held := attack.count(http.StatusTooManyRequests), n-attack.count(0)
	t.Logf("hub peak RSS %d KiB at rest, %d KiB under %d stalled 16 MiB manifests from one box (%d held, %d refused with 429)",
		base, peak, n, held, refused)
	if refused < n-manifestsPerBox {
		t.Errorf("%d of %d manifests refused, want all but the box's bound of %d", refused, n, manifestsPerBox)
	}
	// Two manifests held whole (32 MiB) and the QUIC buffers of the refused ones;
	// unbounded, 300 manifests would be 4.8 GB.
	bound := int64(64 << 10) // KiB
	if raceDetector {
		bound *= 5
	}
	if peak-base > bound {
		t.Errorf("hub peak RSS grew by %d KiB under the stalled manifests, bound %d KiB", peak-base, bound)
	}
	attack.stop()
	a := newTestClient(t, url, tlsA)
	m := Manifest{StudyUID: uid(1801), Instances: []ManifestInstance{{SOPInstanceUID: uid(1801) + ".1", Size: 1, SHA256: strings.Repeat("ab", 32)}}}
	wait.For(t, 30*time.Second, "the box's manifest taken once its stalled ones ended", func() bool {
		rc, err := a.putManifest(context.Background(), m)
		return err == nil && rc.Expected == 1
	})
}

// newTestClient is a box's protocol client to the hub at url.
func newTestClient(t *testing.T, url string, tlsConf *tls.Config) *client {
	t.Helper()
	c, err := newClient(url, tlsConf, 5*time.Second, 1, &limiter{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}
