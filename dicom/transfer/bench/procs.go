package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"lifeline/internal/linkemu"
	"lifeline/internal/wait"
)

// proc is a peer or product process the benchmark started, with its output in a file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // valid after done is closed
}

// startProc starts cmd with its output appended to dir/name.log.
func startProc(name, dir string, cmd *exec.Cmd) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end (SIGTERM), and kills it after grace.
func (p *proc) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process at once.
func (p *proc) kill() {
	if p == nil || p.exited() {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	data, _ := os.ReadFile(p.log)
	if len(data) > 1500 {
		data = data[len(data)-1500:]
	}
	return strings.TrimSpace(string(data))
}

// nsClient is an HTTP client whose connections are made inside side's namespace, to
// reach services that listen on that namespace's loopback.
func nsClient(link *linkemu.Link, side linkemu.Side) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := link.In(side, func() (err error) {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		MaxIdleConnsPerHost: 2,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// buildLifeline builds cmd/lifeline into dir, from the module the working directory
// is in.
func buildLifeline(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lifeline")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/lifeline")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/lifeline: %v\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the lifeline module (no go.mod above the working directory); run from the repository or pass -lifeline")
		}
		dir = parent
	}
}

// waitUntil waits until cond holds, the context ends or timeout passes, checking cond
// as internal/wait does (often at first, then every 80 ms). Unlike wait.Until it reports
// why the condition did not hold: the last error cond gave.
func waitUntil(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error)) error {
	var last error
	err := wait.Until(timeout, func() bool {
		if ctx.Err() != nil {
			return true
		}
		ok, err := cond()
		if err != nil {
			last = err
		}
		return ok
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil:
		return nil
	case last != nil:
		return fmt.Errorf("%s: not within %v: %w", what, timeout, last)
	}
	return fmt.Errorf("%s: not within %v", what, timeout)
}
