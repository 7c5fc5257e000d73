package transfer

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// Tests of issue 16 item 9: a file the hub acknowledged must not vanish with a
// directory entry that was never made durable.

// syscallEvent is one file system call of a traced process, its path resolved.
type syscallEvent struct {
	call, path, flags string
}

var (
	straceLine = regexp.MustCompile(`^(\d+)\s+(.*)$`)
	straceCall = regexp.MustCompile(`^(\w+)\((.*)\)\s+=\s+(-?\d+)`)
	quoted     = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
)

// readTrace turns strace's output into calls in order, with each fsync given the
// path its descriptor was opened with. Calls that strace split across threads
// ("<unfinished ...>", "<... resumed>") are joined first.
func readTrace(t *testing.T, path string) []syscallEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pending := map[string]string{}
	fds := map[string]string{}
	var out []syscallEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := straceLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, rest := m[1], m[2]
		if head, ok := strings.CutSuffix(rest, " <unfinished ...>"); ok {
			pending[pid] = head
			continue
		}
		if i := strings.Index(rest, " resumed>"); strings.HasPrefix(rest, "<... ") && i > 0 {
			rest = pending[pid] + rest[i+len(" resumed>"):]
			delete(pending, pid)
		}
		c := straceCall.FindStringSubmatch(rest)
		if c == nil || strings.HasPrefix(c[3], "-") {
			continue
		}
		call, args, ret := c[1], c[2], c[3]
		paths := quoted.FindAllStringSubmatch(args, -1)
		switch call {
		case "openat":
			if len(paths) > 0 {
				fds[ret] = paths[0][1]
				out = append(out, syscallEvent{call: call, path: paths[0][1], flags: args})
			}
		case "mkdirat", "renameat", "renameat2", "rename":
			if len(paths) > 0 {
				out = append(out, syscallEvent{call: call, path: paths[len(paths)-1][1], flags: args})
			}
		case "fsync", "fdatasync":
			fd := strings.TrimSpace(strings.SplitN(args, ",", 2)[0])
			out = append(out, syscallEvent{call: "fsync", path: fds[fd]})
		}
	}
	return out
}

// fsyncedAfter reports whether dir is fsynced after the first event that matches.
func fsyncedAfter(events []syscallEvent, match func(syscallEvent) bool, dir string) bool {
	return fsyncedBetween(events, match, func(syscallEvent) bool { return false }, dir)
}

// fsyncedBetween reports whether dir is fsynced after the first event that matches
// from and before the next one that matches until.
func fsyncedBetween(events []syscallEvent, from, until func(syscallEvent) bool, dir string) bool {
	seen := false
	for _, e := range events {
		switch {
		case !seen:
			seen = from(e)
		case until(e):
			return false
		case e.call == "fsync" && filepath.Clean(e.path) == filepath.Clean(dir):
			return true
		}
	}
	return false
}

// TestHubFsyncsNewDirectories traces a hub process's file system calls (strace)
// while a box forwards a study into a new study directory: the uploads directory is
// fsynced after each new partial file is created and before anything more is done
// with it (its offset is recorded and acknowledged, it is moved), the studies
// directory after the new study directory is made, and that directory after an
// instance is moved in.
func TestHubFsyncsNewDirectories(t *testing.T) {
	strace := peers.Need(t, "strace")[0]
	p := newPKI(t)
	tlsA := p.enroll(t, "AMB-A")
	p.release()
	trace := filepath.Join(t.TempDir(), "strace.txt")
	_, url := startHubProcessWith(t, p.dir, strace, "-f", "-qq", "-o", trace,
		"-e", "trace=openat,mkdirat,renameat,renameat2,rename,fsync,fdatasync")
	box := newBox(t, tlsA, ForwarderConfig{HubURL: url, Parallel: 1})
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(1901), Instances: 2, Seed: 1901}, "CT1")
	box.start()
	wait.For(t, time.Minute, "the study acknowledged", func() bool { return box.queueLen() == 0 })
	box.stop()

	events := readTrace(t, trace)
	archive := filepath.Join(p.dir, "archive")
	uploads, studies, study := filepath.Join(archive, "uploads"), filepath.Join(archive, "studies"), filepath.Join(archive, "studies", uid(1901))
	created := 0
	for _, e := range events {
		if e.call == "openat" && strings.HasSuffix(e.path, ".part") && strings.Contains(e.flags, "O_CREAT") {
			created++
			part := e.path
			created := func(x syscallEvent) bool { return x == e }
			movedOn := func(x syscallEvent) bool {
				return strings.HasPrefix(x.call, "rename") && strings.Contains(x.flags, `"`+part+`"`)
			}
			if !fsyncedBetween(events, created, movedOn, uploads) {
				t.Errorf("%s created, and %s not fsynced before the file was moved on", part, uploads)
			}
		}
	}
	if created != len(insts) {
		t.Fatalf("traced %d partial files created for %d instances", created, len(insts))
	}
	if !fsyncedAfter(events, func(e syscallEvent) bool { return e.call == "mkdirat" && e.path == study }, studies) {
		t.Errorf("study directory %s made, and %s not fsynced after it", study, studies)
	}
	for _, in := range insts {
		final := filepath.Join(study, in.SOPInstanceUID+".dcm")
		if !fsyncedAfter(events, func(e syscallEvent) bool { return strings.HasPrefix(e.call, "rename") && e.path == final }, study) {
			t.Errorf("%s moved into the archive, and %s not fsynced after it", final, study)
		}
	}
}
