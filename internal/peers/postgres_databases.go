package peers

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresDatabases starts a throwaway PostgreSQL server for the test (Postgres) and
// returns a function that makes a fresh, empty database on it for each caller, named
// prefix1, prefix2, …, so that the server's start-up is paid once per test and not
// once per case.
func PostgresDatabases(t testing.TB, prefix string) func(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	dsn := Postgres(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the throwaway cluster: %v", err)
	}
	t.Cleanup(func() { admin.Close(ctx) })
	n := 0
	return func(t testing.TB) string {
		t.Helper()
		n++
		name := fmt.Sprintf("%s%d", prefix, n)
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			t.Fatalf("create database %s: %v", name, err)
		}
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		return u.String()
	}
}
