package peers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// postgresUser is the unprivileged account a throwaway cluster runs as when the tests
// run as root, because PostgreSQL refuses to run as root. It is a system account of
// the tests' own, so that no other service's files or processes share it.
const postgresUser = "lifeline-test"

// Postgres starts a throwaway PostgreSQL cluster (Debian's package, initdb and pg_ctl)
// for the test and returns a connection string for its superuser "lifeline" on the
// database "postgres". The cluster listens on a free TCP port on 127.0.0.1 only, keeps
// its Unix socket in its own directory, trusts local connections (it holds nothing but
// test data), and is stopped and removed when the test ends. A missing PostgreSQL skips
// or fails the test as Need does.
//
// Running as root (as the tests do here), the cluster belongs to the system user
// lifeline-test, which is created with useradd when absent.
func Postgres(t testing.TB) string {
	t.Helper()
	return PostgresCluster(t).DSN
}

// PGCluster is a throwaway PostgreSQL cluster that a test may stop and start again,
// to see what its clients do while the database is gone.
type PGCluster struct {
	// DSN is the connection string for the superuser "lifeline" on "postgres".
	DSN string

	bin, dir, data string
	port           int
	cred           *syscall.Credential
}

// PostgresCluster starts a throwaway cluster as Postgres does and returns it.
func PostgresCluster(t testing.TB) *PGCluster {
	t.Helper()
	bin := postgresBin(t)
	cred := postgresCredential(t)
	// Not t.TempDir: its path holds the test's name, which can push the Unix socket's
	// path past the 107 bytes the kernel allows, and its parent is private to root,
	// which the cluster's own user could not enter.
	dir, err := os.MkdirTemp("", "lifeline-pg-")
	if err != nil {
		t.Fatalf("postgres: make the cluster's directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("postgres: give %s to %s: %v", dir, postgresUser, err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := postgresCmd(cred, dir, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "lifeline",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("postgres: initdb in %s: %v\n%s", data, err, out)
	}
	c := &PGCluster{bin: bin, dir: dir, data: data, cred: cred}
	c.port = postgresStart(t, bin, cred, dir, data)
	t.Cleanup(func() {
		if !c.running() {
			return
		}
		if out, err := c.ctl("-m", "fast", "-w", "stop").CombinedOutput(); err != nil {
			t.Errorf("postgres: stop the cluster in %s: %v\n%s", data, err, out)
		}
	})
	c.awaitTCP(t)
	c.DSN = "postgres://lifeline@" + c.addr() + "/postgres?sslmode=disable"
	return c
}

// Stop stops the cluster at once (pg_ctl's fast mode: open connections are ended),
// as a database server that went away would.
func (c *PGCluster) Stop(t testing.TB) {
	t.Helper()
	if out, err := c.ctl("-m", "fast", "-w", "stop").CombinedOutput(); err != nil {
		t.Fatalf("postgres: stop the cluster in %s: %v\n%s", c.data, err, out)
	}
}

// Start starts the stopped cluster again on its port, with its data.
func (c *PGCluster) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, c.dir)
	if out, err := c.ctl("-o", opts, "-l", filepath.Join(c.dir, "postgres.log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		t.Fatalf("postgres: start the cluster in %s again on port %d: %v\n%s", c.data, c.port, err, out)
	}
	c.awaitTCP(t)
}

func (c *PGCluster) ctl(args ...string) *exec.Cmd {
	return postgresCmd(c.cred, c.dir, filepath.Join(c.bin, "pg_ctl"), append([]string{"-D", c.data}, args...)...)
}

// running reports whether the cluster's server runs (pg_ctl status exits 0).
func (c *PGCluster) running() bool { return c.ctl("status").Run() == nil }

func (c *PGCluster) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// awaitTCP waits for the TCP listener the tests use: pg_ctl -w has seen the server
// accept connections on its socket, and the TCP listener opens in the same start-up,
// which is checked rather than assumed.
func (c *PGCluster) awaitTCP(t testing.TB) {
	t.Helper()
	addr := c.addr()
	wait.For(t, 30*time.Second, "postgres to accept TCP connections on "+addr, func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

// postgresStart starts the cluster on a free port and returns the port. Another
// process may take the port between our choosing and the server binding it, so a
// start that fails is tried again on a new one.
func postgresStart(t testing.TB, bin string, cred *syscall.Credential, dir, data string) int {
	t.Helper()
	logFile := filepath.Join(dir, "postgres.log")
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("postgres: find a free port: %v", err)
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, dir)
		out, err := postgresCmd(cred, dir, filepath.Join(bin, "pg_ctl"), "-D", data, "-o", opts, "-l", logFile,
			"-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			return port
		}
		log, _ := os.ReadFile(logFile)
		lastErr = fmt.Errorf("%v\n%s\n%s", err, out, log)
	}
	t.Fatalf("postgres: start the cluster in %s: %v", data, lastErr)
	return 0
}

// postgresBin finds the directory of Debian's PostgreSQL server programs, the newest
// major version if several are installed.
func postgresBin(t testing.TB) string {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		Missing(t, "PostgreSQL is not installed (Debian package postgresql)")
	}
	sort.Slice(found, func(i, j int) bool { return majorOf(found[i]) > majorOf(found[j]) })
	return filepath.Dir(found[0])
}

// majorOf reads the major version out of /usr/lib/postgresql/MAJOR/bin/initdb.
func majorOf(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// postgresCredential returns whom the cluster runs as: nil (the test's own user) when
// the test is not root, else lifeline-test, created if absent.
func postgresCredential(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(postgresUser)
	if err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			t.Fatalf("postgres: look up user %s: %v", postgresUser, err)
		}
		out, addErr := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", postgresUser).CombinedOutput()
		// Another test package may have added it at the same moment; the lookup
		// after decides.
		if u, err = user.Lookup(postgresUser); err != nil {
			t.Fatalf("postgres: create system user %s to run the cluster as: %v\n%s", postgresUser, addErr, out)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("postgres: user %s has ids %q/%q: %v", postgresUser, u.Uid, u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

// postgresCmd runs a PostgreSQL program in dir as cred (nil: as ourselves), with a
// plain C locale so that it needs no generated locales.
func postgresCmd(cred *syscall.Credential, dir, program string, args ...string) *exec.Cmd {
	cmd := exec.Command(program, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + dir}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}

// freePort asks the kernel for a port free on 127.0.0.1 now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
