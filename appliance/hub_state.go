package appliance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lifeline/internal/hubstate"
	"lifeline/internal/hubstate/boltstate"
	"lifeline/internal/hubstate/pgstate"
)

// StateSection chooses the engine that holds the hub's state (devices, codes,
// uploads, study tracking, accounts). Unset, the embedded bbolt file in the data
// directory, for a hub that runs alone; with Postgres, a PostgreSQL database that
// several hubs share. Nothing else in the hub knows which is in use.
type StateSection struct {
	// Postgres is a connection string, e.g. postgres://lifeline@db.example:5432/lifeline.
	Postgres string `toml:"postgres"`
	// SharedDir is a directory every hub on the database mounts at this same path
	// (NFS, CephFS, a SAN's cluster file system). Set, the uploads' staged bytes and
	// the archive live there, so that an upload begun at a hub that died resumes at
	// another and any hub delivers what another archived (docs/multi-hub.md).
	// Unset, each hub keeps them in its data directory.
	SharedDir string `toml:"shared_dir"`
}

// stateConnectTimeout bounds connecting to a shared database and bringing its schema
// forward at start, so that a hub whose database is unreachable says so and exits
// instead of hanging.
const stateConnectTimeout = 30 * time.Second

// state checks the [state] section.
func (c *checker) state(s StateSection) {
	switch {
	case s.SharedDir != "" && s.Postgres == "":
		c.fail("state.shared_dir", "needs state.postgres: hubs share a directory only when they share their state")
	case s.SharedDir != "" && !filepath.IsAbs(s.SharedDir):
		c.fail("state.shared_dir", "must be an absolute path, the same on every hub, got %q", s.SharedDir)
	}
	if s.Postgres == "" {
		return
	}
	if err := pgstate.Check(s.Postgres); err != nil {
		c.fail("state.postgres", "%v", err)
	}
}

// openHubState opens the hub's state: the shared PostgreSQL database when the config
// names one, else the embedded engine in dataDir, which only its owner may read.
// lockWait bounds the wait for another process holding the embedded engine's file;
// a shared database is never held by one process.
func openHubState(dataDir string, st StateSection, lockWait time.Duration) (hubstate.Store, error) {
	if st.Postgres != "" {
		ctx, cancel := context.WithTimeout(context.Background(), stateConnectTimeout)
		defer cancel()
		store, err := pgstate.Open(ctx, st.Postgres)
		if err != nil {
			return nil, err
		}
		return store.InArchive(archiveName(dataDir, st)).ClaimingAs(hubName(dataDir)), nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dataDir, err)
	}
	return boltstate.Open(hubStorePath(dataDir), lockWait)
}

// archiveName names this hub's archive among the hubs of a shared state: its machine
// and archive directory, where the files of the instances it archives are, so that
// it alone is offered their deliveries to the PACS; or, with a shared directory, that
// directory, so that every hub mounting it is offered them.
func archiveName(dataDir string, st StateSection) string {
	if st.SharedDir != "" {
		return "shared:" + ingestArchiveDir(dataDir, st)
	}
	host, _ := os.Hostname()
	return host + ":" + absolute(hubArchiveDir(dataDir))
}

// hubName names this hub in its claims on deliveries: its machine and data
// directory, its own among the hubs and the same after it restarts.
func hubName(dataDir string) string {
	host, _ := os.Hostname()
	return host + ":" + absolute(dataDir)
}

// ingestArchiveDir is where the hub stages uploads and archives instances: the
// shared directory's archive when the hubs share one, else the data directory's.
func ingestArchiveDir(dataDir string, st StateSection) string {
	if st.SharedDir != "" {
		return filepath.Join(absolute(st.SharedDir), "archive")
	}
	return hubArchiveDir(dataDir)
}

// sharedDirMounted refuses a shared directory that is not there: a hub whose
// network file system did not mount would otherwise stage and archive on its own
// disk under the mount point, where no other hub finds the bytes.
func sharedDirMounted(st StateSection) error {
	if st.SharedDir == "" {
		return nil
	}
	fi, err := os.Stat(st.SharedDir)
	if err != nil {
		return fmt.Errorf("state.shared_dir %s: %w (is it mounted?)", st.SharedDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state.shared_dir %s: not a directory", st.SharedDir)
	}
	return nil
}

func absolute(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
