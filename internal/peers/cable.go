package peers

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// Cable is a null-modem cable made in software: socat joins two ptys, reachable under
// two links in the test's temporary folder. The box opens one end as it opens a serial
// device; a simulated device (monitor, GNSS receiver, modem) or a real program opens the
// other. It is the one socat cable of the tests.
type Cable struct {
	BoxEnd    string // link to the box's pty
	DeviceEnd string // link to the device's pty

	cmd    *exec.Cmd
	pulled sync.Once
}

// PlugCable starts socat (skipping or failing the test as Need says when it is missing)
// and returns once both ends exist. The cable is pulled at the end of the test.
func PlugCable(t testing.TB) *Cable {
	t.Helper()
	socat := Need(t, "socat")[0]
	dir := t.TempDir()
	c := &Cable{BoxEnd: filepath.Join(dir, "box"), DeviceEnd: filepath.Join(dir, "device")}
	c.cmd = exec.Command(socat, "pty,raw,echo=0,link="+c.BoxEnd, "pty,raw,echo=0,link="+c.DeviceEnd)
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start socat for a pty pair: %v", err)
	}
	t.Cleanup(c.Pull)
	// socat creates the links only once both ptys are open; opening one before that
	// finds nothing.
	wait.For(t, 10*time.Second, "socat to create both ends of the pty pair", func() bool {
		_, e1 := os.Stat(c.BoxEnd)
		_, e2 := os.Stat(c.DeviceEnd)
		return e1 == nil && e2 == nil
	})
	return c
}

// Pull takes the cable out: socat dies and both ptys hang up under whoever holds them
// open. socat killed hard leaves its links behind; they are removed, as the device node
// of an unplugged USB adapter goes away. Pulling twice is harmless.
func (c *Cable) Pull() {
	c.pulled.Do(func() {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		os.Remove(c.BoxEnd)
		os.Remove(c.DeviceEnd)
	})
}
