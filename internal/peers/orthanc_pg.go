package peers

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Where Debian's orthanc-postgresql package puts its plugins.
const (
	OrthancPGIndexPlugin   = "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"
	OrthancPGStoragePlugin = "/usr/share/orthanc/plugins/libOrthancPostgreSQLStorage.so"
)

// OrthancNode is one Orthanc process of an OrthancCluster, serving on loopback.
type OrthancNode struct {
	HTTPURL string // REST API, e.g. http://127.0.0.1:41234
	STOWURL string // DICOMweb root, e.g. http://127.0.0.1:41234/dicom-web
	DIMSE   string // C-STORE target, ORTHANC@127.0.0.1:PORT
}

// OrthancCluster starts n Orthanc processes that share one PostgreSQL database, as
// the Orthanc Book describes for a PACS cluster: Debian's orthanc-postgresql plugins
// keep both the index and the DICOM files in the database, the plugins' lock that
// reserves a database to one Orthanc is off, and every node accepts C-STORE and
// STOW-RS (DICOMweb). An instance stored through one node is held once and read
// through every other. dsn is a PostgreSQL server's connection string (Postgres, or a
// PGCluster's DSN); the cluster gets a database of its own on it, named database.
// The processes are stopped when the test ends. A missing Orthanc or plugin skips or
// fails the test as Need does.
func OrthancCluster(t testing.TB, dsn, database string, n int) []OrthancNode {
	t.Helper()
	bin := Need(t, "Orthanc")[0]
	for _, plugin := range []string{OrthancPGIndexPlugin, OrthancPGStoragePlugin, OrthancDICOMwebPlugin} {
		if _, err := os.Stat(plugin); err != nil {
			Missing(t, "Orthanc plugin %s is not installed (Debian packages orthanc-postgresql, orthanc-dicomweb)", plugin)
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("orthanc cluster: PostgreSQL connection string: %v", err)
	}
	createDatabase(t, dsn, database)
	nodes := make([]OrthancNode, n)
	for i := range nodes {
		nodes[i] = startOrthancNode(t, bin, u, database, i)
	}
	return nodes
}

// createDatabase makes an empty database on the server dsn names, with psql.
func createDatabase(t testing.TB, dsn, database string) {
	t.Helper()
	psql := filepath.Join(postgresBin(t), "psql")
	if out, err := exec.Command(psql, dsn, "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE "+database).CombinedOutput(); err != nil {
		t.Fatalf("orthanc cluster: create database %s: %v\n%s", database, err, out)
	}
}

// startOrthancNode starts node i on free loopback ports and waits until it answers.
func startOrthancNode(t testing.TB, bin string, pg *url.URL, database string, i int) OrthancNode {
	t.Helper()
	dir := t.TempDir()
	httpPort, err1 := freePort()
	dicomPort, err2 := freePort()
	if err1 != nil || err2 != nil {
		t.Fatalf("orthanc cluster: free ports: %v %v", err1, err2)
	}
	pgPort, _ := strconv.Atoi(pg.Port())
	cfg := OrthancConfig(fmt.Sprintf("lifeline-test-%d", i), dir, httpPort, dicomPort)
	// The files are in PostgreSQL; StorageDirectory stays unused.
	cfg["Plugins"] = []string{OrthancPGIndexPlugin, OrthancPGStoragePlugin, OrthancDICOMwebPlugin}
	cfg["PostgreSQL"] = map[string]any{
		"EnableIndex": true, "EnableStorage": true,
		"Host": pg.Hostname(), "Port": pgPort, "Database": database,
		"Username": pg.User.Username(), "Password": "",
		// Off so that several Orthancs share the database (the Orthanc Book's
		// "multiple writers"); on, the first would hold it alone.
		"Lock":                     false,
		"EnableSsl":                false,
		"MaximumConnectionRetries": 10,
		"ConnectionRetryInterval":  1,
		"IndexConnectionsCount":    2,
	}
	node := OrthancNode{HTTPURL: orthancURL(httpPort), DIMSE: fmt.Sprintf("ORTHANC@127.0.0.1:%d", dicomPort)}
	node.STOWURL = node.HTTPURL + "/dicom-web"
	RunOrthanc(t, bin, dir, node.HTTPURL, fmt.Sprintf("Orthanc node %d on PostgreSQL", i), cfg, 60*time.Second)
	return node
}
