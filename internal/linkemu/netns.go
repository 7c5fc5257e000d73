package linkemu

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// nsDir is where `ip netns` keeps the bind mounts that name namespaces.
const nsDir = "/run/netns"

// nsPrefix starts the name of every namespace this package creates. The rest of the
// name is "PID-STARTTIME-SEQ-SIDE": the owning process, its start time (so that a
// reused PID is not mistaken for the owner) and a counter.
const nsPrefix = "lle-"

var nsSeq atomic.Uint64

// newNSNames returns fresh names for a link's box and hub namespaces.
func newNSNames() (box, hub string) {
	pid := os.Getpid()
	stem := fmt.Sprintf("%s%d-%d-%d", nsPrefix, pid, procStart(pid), nsSeq.Add(1))
	return stem + "-box", stem + "-hub"
}

// procStart returns the start time of process pid in clock ticks since boot (field 22
// of /proc/PID/stat), or 0 when the process does not exist.
func procStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces and parentheses; fields after the
	// last ')' are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(fields[19], 10, 64)
	return v
}

// ownerAlive reports whether the process that created namespace name still runs. Names
// that do not parse are treated as alive, so that nothing foreign is deleted.
func ownerAlive(name string) bool {
	parts := strings.Split(strings.TrimPrefix(name, nsPrefix), "-")
	if len(parts) != 4 {
		return true
	}
	pid, err1 := strconv.Atoi(parts[0])
	start, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return true
	}
	return procStart(pid) == start
}

// sweepStale deletes namespaces left by links whose process died without closing them
// (a killed test, a crashed `lifeline sim link`).
func sweepStale(log *slog.Logger) {
	entries, err := os.ReadDir(nsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, nsPrefix) || ownerAlive(name) {
			continue
		}
		if err := deleteNS(name); err != nil {
			log.Warn("linkemu: cannot delete stale network namespace", "netns", name, "err", err)
		} else {
			log.Info("linkemu: deleted stale network namespace of a dead process", "netns", name)
		}
	}
}

// createNS creates the named network namespace with `ip netns add`.
func createNS(name string) error {
	return ipCmd("netns", "add", name)
}

// deleteNS deletes the named network namespace. Processes still inside keep it alive
// but it loses its name.
func deleteNS(name string) error {
	return ipCmd("netns", "delete", name)
}

// ipCmd runs ip(8) and turns a failure into an error that carries its message.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// inNS runs fn on an OS thread that has entered the named network namespace, so that
// the sockets and devices fn creates belong to it (they keep it afterwards). Goroutines
// that fn starts run on other threads, outside the namespace. A panic in fn is
// re-raised in the caller.
func inNS(name string, fn func() error) error {
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread returns to the pool only if it is back in its own namespace;
		// otherwise the runtime discards it when this goroutine ends while locked.
		restored := false
		defer func() {
			if restored {
				runtime.UnlockOSThread()
			}
		}()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{err: fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(nsDir, name))
		if err != nil {
			done <- result{err: fmt.Errorf("open network namespace %s: %w", name, err)}
			return
		}
		err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		target.Close()
		if err != nil {
			restored = true
			done <- result{err: fmt.Errorf("enter network namespace %s: %w", name, err)}
			return
		}
		var r result
		func() {
			defer func() { r.panic = recover() }()
			r.err = fn()
		}()
		restored = unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil
		done <- r
	}()
	r := <-done
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

// writeSysctl writes value to /proc/sys/PATH in the named namespace. /proc/sys/net
// shows the namespace of the thread that opens it.
func writeSysctl(ns, path, value string) error {
	return inNS(ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", path), []byte(value), 0)
	})
}

// errClosed is returned by the operations of a closed link.
var errClosed = errors.New("linkemu: link is closed")
