package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// receiver is one side of the comparison: a process that accepts C-STORE into dir.
type receiver struct {
	name  string
	start func(dir, port string) (*exec.Cmd, error)
	ready func(port string) error // nil: the DICOM port answers
}

// lifelineReceiver is the box's SCP and spool with their defaults, in a child process
// (this program with -serve) so that its memory and files are its own.
func lifelineReceiver() receiver {
	return receiver{name: "lifeline", start: func(dir, port string) (*exec.Cmd, error) {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return exec.Command(self, "-serve", dir, "-port", port), nil
	}}
}

// storescpReceiver is DCMTK's storescp accepting every transfer syntax; it never
// fsyncs. With fork it serves each association in its own process, as a PACS serves
// parallel associations; without it storescp takes one association at a time.
func storescpReceiver(fork bool) receiver {
	return receiver{name: "storescp", start: func(dir, port string) (*exec.Cmd, error) {
		args := []string{"+xa", "-aet", "LIFELINE", "-od", dir}
		if fork {
			args = append(args, "--fork")
		}
		return exec.Command("storescp", append(args, port)...), nil
	}}
}

// orthancReceiver is Orthanc with its product defaults (SyncStorageArea fsyncs every
// file; its SQLite index commits every instance); the configuration sets only where
// it keeps its files, its ports and its AE title, and closes its REST API to others.
func orthancReceiver() receiver {
	httpPorts := map[string]string{}
	return receiver{name: "Orthanc", start: func(dir, port string) (*exec.Cmd, error) {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		httpPorts[port] = hp
		dp, _ := strconv.Atoi(port)
		hpn, _ := strconv.Atoi(hp)
		cfg, _ := json.Marshal(map[string]any{
			"Name":                  "lifeline-bench",
			"StorageDirectory":      filepath.Join(dir, "storage"),
			"IndexDirectory":        filepath.Join(dir, "index"),
			"HttpPort":              hpn,
			"DicomPort":             dp,
			"DicomAet":              "LIFELINE",
			"RemoteAccessAllowed":   false,
			"AuthenticationEnabled": false,
		})
		path := filepath.Join(dir, "orthanc.json")
		if err := os.WriteFile(path, cfg, 0o600); err != nil {
			return nil, err
		}
		cmd := exec.Command("Orthanc", path)
		if lf, err := os.Create(filepath.Join(dir, "orthanc.log")); err == nil {
			cmd.Stdout, cmd.Stderr = lf, lf // measure sets Stderr only when nil
		}
		return cmd, nil
	}, ready: func(port string) error {
		url := "http://127.0.0.1:" + httpPorts[port] + "/system"
		for i := 0; i < 1000; i++ {
			if r, err := http.Get(url); err == nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
				if r.StatusCode == 200 {
					return waitPort("127.0.0.1:" + port)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		return fmt.Errorf("orthanc did not answer on %s", url)
	}}
}

// usage is what a receiver process used in one run.
type usage struct {
	rss int64         // peak resident set, KiB
	cpu time.Duration // user + system time of the process itself (not its children)
}

// measure starts r, times storescu sending every part of the source (one association
// per part, in parallel), stops r and returns the time and what r used.
func measure(base string, r receiver, parts []string, env []string) (time.Duration, usage, error) {
	dir := filepath.Join(base, "recv-"+r.name)
	os.RemoveAll(dir) // each run starts empty, as a fresh box would
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, usage{}, err
	}
	port, err := freePort()
	if err != nil {
		return 0, usage{}, err
	}
	cmd, err := r.start(dir, port)
	if err != nil {
		return 0, usage{}, err
	}
	cmd.Env = append(os.Environ(), env...)
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // storescp --fork's children too
	if err := cmd.Start(); err != nil {
		return 0, usage{}, fmt.Errorf("start %s: %w", r.name, err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	ready := r.ready
	if ready == nil {
		ready = func(port string) error { return waitPort("127.0.0.1:" + port) }
	}
	if err := ready(port); err != nil {
		return 0, usage{}, fmt.Errorf("%s: %w", r.name, err)
	}
	syscall.Sync() // nothing of the last run or of the source competes with this one
	start := time.Now()
	errs := make(chan error, len(parts))
	for _, p := range parts {
		scu := exec.Command("storescu", "-aec", "LIFELINE", "+sd", "+r", "127.0.0.1", port, p)
		scu.Env = append(os.Environ(), env...)
		go func() {
			out, err := scu.CombinedOutput()
			if err == nil && strings.Contains(string(out), "E: ") {
				err = fmt.Errorf("errors reported")
			}
			if err != nil {
				err = fmt.Errorf("storescu to %s: %v\n%s", r.name, err, out)
			}
			errs <- err
		}()
	}
	for range parts {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	el := time.Since(start)
	if err != nil {
		return 0, usage{}, err
	}
	u := usage{rss: peakRSS(cmd.Process.Pid), cpu: cpuTime(cmd.Process.Pid)}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	return el, u, nil
}

// diskRate writes every source file to its own new file in a fresh directory and
// fsyncs it, one after another in each of writers goroutines (a share each), and
// nothing else: the disk's own rate for storing these instances durably one by one.
func diskRate(base string, files []string, writers int) (time.Duration, error) {
	dir := filepath.Join(base, "recv-disk")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	data := make([][]byte, len(files))
	for i, f := range files { // read first: the receivers get theirs over loopback
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		data[i] = b
	}
	syscall.Sync()
	start := time.Now()
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			for i := w; i < len(data); i += writers {
				if err := writeDurably(filepath.Join(dir, fmt.Sprintf("%05d.dcm", i)), data[i]); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var err error
	for w := 0; w < writers; w++ {
		err = cmp.Or(err, <-errs)
	}
	return time.Since(start), err
}

func writeDurably(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	err = cmp.Or(err, f.Sync())
	return cmp.Or(err, f.Close())
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
	for i := 0; i < 1000; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

// cpuTime returns a live process's user and system time (threads included, children
// not), 0 if unknown.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which may hold spaces: state is field 3, utime
	// and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

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
