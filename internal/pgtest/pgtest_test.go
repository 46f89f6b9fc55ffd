package pgtest

import (
	"os"
	"testing"
)

// TestStartCluster: the fallback the tests use when no server answers
// makes, starts and removes a working cluster.
func TestStartCluster(t *testing.T) {
	bin, err := findBinaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set: %v", err)
		}
		t.Skipf("cannot test the throwaway cluster: %v", err)
	}
	c, err := StartCluster(t.Context(), bin)
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	if err := adminExec(c.URL, "CREATE DATABASE spool_probe"); err != nil {
		t.Errorf("cluster does not take statements: %v", err)
	}
	if u := withDatabase(c.URL, "spool_probe"); ping(t.Context(), u) != nil {
		t.Errorf("cannot reach the new database at %s", u)
	}
	c.Stop()
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s left behind (%v)", c.dir, err)
	}
	if ping(t.Context(), c.URL) == nil {
		t.Error("the cluster still answers after Stop")
	}
}

func TestWithDatabase(t *testing.T) {
	cases := map[string]string{
		"postgres://u@h:5/postgres?sslmode=disable": "postgres://u@h:5/x?sslmode=disable",
		"postgresql://h/": "postgresql://h/x",
		"host=h user=u":   "host=h user=u dbname=x",
	}
	for in, want := range cases {
		if got := withDatabase(in, "x"); got != want {
			t.Errorf("withDatabase(%q) = %q, want %q", in, got, want)
		}
	}
}
