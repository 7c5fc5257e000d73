package appliance

import (
	"strings"
	"testing"
)

// TestSharedDirNeedsSharedState: a shared directory without a shared database, or
// named by a relative path (which each hub would resolve from its own working
// directory), is refused at load time, naming the key.
func TestSharedDirNeedsSharedState(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"[state]\nshared_dir = \"/srv/lifeline-shared\"\n", "needs state.postgres"},
		{"[state]\npostgres = \"postgres://lifeline@db.example:5432/lifeline\"\nshared_dir = \"srv/shared\"\n", "absolute path"},
	} {
		_, err := LoadHubConfig(writeConfig(t, c.conf))
		if err == nil || !strings.Contains(err.Error(), "state.shared_dir") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a refusal of state.shared_dir saying %q", c.conf, err, c.want)
		}
	}
	cfg, err := LoadHubConfig(writeConfig(t, "[state]\npostgres = \"postgres://lifeline@db.example:5432/lifeline\"\nshared_dir = \"/srv/lifeline-shared\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ingestArchiveDir("/var/lib/lifeline/hub", cfg.State); got != "/srv/lifeline-shared/archive" {
		t.Fatalf("archive with a shared directory: %s", got)
	}
	if got := archiveName("/var/lib/lifeline/hub", cfg.State); got != "shared:/srv/lifeline-shared/archive" {
		t.Fatalf("archive name with a shared directory: %s, want the same on every hub", got)
	}
	if err := sharedDirMounted(StateSection{SharedDir: t.TempDir() + "/not-mounted"}); err == nil || !strings.Contains(err.Error(), "mounted") {
		t.Fatalf("a shared directory that is not there: %v", err)
	}
}
