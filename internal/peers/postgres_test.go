package peers

import (
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// TestPostgresStartsAndStops starts a throwaway cluster inside a subtest and checks
// that it listens on loopback while the subtest runs and is gone once it ended.
func TestPostgresStartsAndStops(t *testing.T) {
	var host string
	t.Run("cluster", func(t *testing.T) {
		u, err := url.Parse(Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		host = u.Host
		if h, _, _ := net.SplitHostPort(host); h != "127.0.0.1" {
			t.Fatalf("cluster at %s, want loopback", host)
		}
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err != nil {
			t.Fatalf("cluster not reachable: %v", err)
		}
		c.Close()
	})
	if host == "" {
		return // skipped for want of PostgreSQL
	}
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Fatalf("cluster still listens on %s after its test ended", host)
	}
}

// TestPostgresStopAndStartAgain: a stopped cluster refuses connections, and started
// again it listens on the same address, with what it held.
func TestPostgresStopAndStartAgain(t *testing.T) {
	c := PostgresCluster(t)
	u, err := url.Parse(c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	dataBefore, err := os.ReadDir(c.data)
	if err != nil || len(dataBefore) == 0 {
		t.Fatalf("the cluster's data directory: %v", err)
	}
	c.Stop(t)
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Fatalf("a stopped cluster still listens on %s", u.Host)
	}
	c.Start(t)
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		t.Fatalf("the cluster started again does not listen on %s: %v", u.Host, err)
	}
	conn.Close()
	if !c.running() {
		t.Fatal("pg_ctl status says the cluster started again does not run")
	}
}
