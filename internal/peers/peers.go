// Package peers finds the real programs that Lifeline's tests talk to (DCMTK, Orthanc,
// Chromium, socat, gpsfake, ffmpeg) and decides what a test does when one is missing:
// it skips with a message, or, when LIFELINE_REQUIRE_PEERS=1 (as in CI), it fails.
package peers

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing peers must fail tests instead of skipping them.
func Required() bool { return os.Getenv("LIFELINE_REQUIRE_PEERS") == "1" }

// Need returns the path of each named program, in order. If one is not on PATH the
// test is skipped, or failed under LIFELINE_REQUIRE_PEERS=1, naming the Debian package
// to install.
func Need(t testing.TB, programs ...string) []string {
	t.Helper()
	paths := make([]string, 0, len(programs))
	for _, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			Missing(t, "%s is not installed (Debian package %s)", p, Package(p))
		}
		paths = append(paths, path)
	}
	return paths
}

// Missing skips or fails the test (see Required) with the given reason.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("required peer missing: "+format, args...)
	}
	t.Skipf("peer missing: "+format, args...)
}

// NeedRoot skips or fails the test (see Required) when not running as root, for tests
// that create network namespaces or TUN devices.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "this test needs root to create network namespaces")
	}
}

// Package names the Debian package that provides program.
func Package(program string) string {
	switch program {
	case "storescu", "storescp", "echoscu", "dcmdump", "img2dcm", "dcmcjpeg", "dcmcjpls", "dcmcrle", "dcmconv", "dcmodify", "dcmdjpeg":
		return "dcmtk"
	case "Orthanc":
		return "orthanc"
	case "chromium":
		return "chromium"
	case "socat":
		return "socat"
	case "gpsfake":
		return "gpsd-clients"
	case "ffmpeg", "ffprobe":
		return "ffmpeg"
	case "ip":
		return "iproute2"
	case "nft":
		return "nftables"
	}
	return program
}
