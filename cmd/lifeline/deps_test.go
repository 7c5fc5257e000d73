package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShippedBinaryLinksNoTestFixture lists what the binary links: a package made for
// tests (pacstest, audittest, rtsptest…) must never ship in a medical appliance, and
// would pull the test-only code and its assumptions into the box.
func TestShippedBinaryLinksNoTestFixture(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 10 {
		t.Fatalf("go list -deps listed only %v", pkgs)
	}
	for _, p := range pkgs {
		if strings.HasPrefix(p, "lifeline/") && (strings.HasSuffix(p, "test") || strings.Contains(p, "test/")) {
			t.Errorf("the shipped binary links the test package %s", p)
		}
	}
}
