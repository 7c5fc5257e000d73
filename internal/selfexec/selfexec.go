// Package selfexec lets a test run its own test binary again as a child process in
// another role (a receiver, a box, a writer), so that the test can kill a real
// process with SIGKILL in the middle of its work and check what survived.
//
// The role is chosen by an environment variable: TestMain hands it to Main, which
// runs the role in a child and the tests in the parent; the parent starts children
// with Command.
package selfexec

import (
	"os"
	"os/exec"
	"testing"
)

// Role is what a child does: it runs with the value of its environment variable
// (a directory, usually) and returns the process's exit code.
type Role func(arg string) int

// Main is the body of a package's TestMain: when the environment names one of roles
// (by its variable, set to a non-empty value), the process plays that role and
// exits; otherwise it runs the tests.
func Main(m *testing.M, roles map[string]Role) {
	for env, run := range roles {
		if arg := os.Getenv(env); arg != "" {
			os.Exit(run(arg))
		}
	}
	os.Exit(m.Run())
}

// Command returns a command that runs this test binary in the role of env with arg,
// and no tests. More variables for the child (NAME=value) may follow.
func Command(env, arg string, more ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env+"="+arg), more...)
	return cmd
}
