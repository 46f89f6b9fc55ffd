// Package pgtest gives a test package a PostgreSQL database of its own.
//
// Main, called from TestMain, finds a server in this order:
//
//  1. the URL in SPOOL_TEST_POSTGRES_URL, when set (it must answer);
//  2. a server at 127.0.0.1:5432 (user postgres), if one answers;
//  3. a throwaway cluster made with initdb and started with pg_ctl on a free
//     port, when the binaries exist (in /usr/lib/postgresql/*/bin or on
//     PATH); as root they run as the postgres user;
//
// and else leaves the tests to skip with a clear message — unless the CI
// environment variable is set, where a missing PostgreSQL fails the run.
// It creates a database named spool_test_<random> for the package, runs the
// tests, drops the database and stops any cluster it started.
//
// Tests call URL for the database's URL (skipping when there is none) and
// Schema for a schema of their own, dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

// EnvURL names the environment variable that points the tests at a server.
const EnvURL = "SPOOL_TEST_POSTGRES_URL"

// localURL is the server tried when EnvURL is not set.
const localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3"

var (
	dbURL      string // the package's database; empty when there is none
	skipReason string // why there is none
)

// MainLeakChecked is Main followed, when the tests passed, by a check that
// no test left a goroutine behind (goleak): a TestMain is then
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.MainLeakChecked(m)) }
func MainLeakChecked(m *testing.M) int {
	code := Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	return code
}

// Main runs m against a database of the package's own and returns the exit
// code for os.Exit. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	admin, stop, err := findServer(ctx)
	cancel()
	if err != nil {
		skipReason = err.Error()
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "pgtest: CI is set and no PostgreSQL is available: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL tests will skip: %v\n", err)
		return m.Run()
	}
	defer stop()
	name := "spool_test_" + randomHex(6)
	if err := adminExec(admin, "CREATE DATABASE "+name); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: create database: %v\n", err)
		return 1
	}
	dbURL = withDatabase(admin, name)
	code := m.Run()
	if err := adminExec(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: drop database: %v\n", err)
	}
	return code
}

// URL returns the URL of the package's database, or skips the test when
// Main found no PostgreSQL (or was not called).
func URL(tb testing.TB) string {
	tb.Helper()
	if dbURL == "" {
		reason := skipReason
		if reason == "" {
			reason = "pgtest.Main was not called from TestMain"
		}
		tb.Skipf("no PostgreSQL for this test: %s (set %s to point at one)", reason, EnvURL)
	}
	return dbURL
}

// Schema returns a new schema name, t_<random>, for one test's store, and
// drops the schema (if it was made) when the test ends.
func Schema(tb testing.TB) string {
	tb.Helper()
	u := URL(tb)
	name := "t_" + randomHex(8)
	tb.Cleanup(func() {
		if err := adminExec(u, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			tb.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})
	return name
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// adminExec runs one statement on its own connection.
func adminExec(u, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background()) //nolint:errcheck // nothing to do about it
	_, err = conn.Exec(ctx, sql)
	return err
}

// ping reports whether a server answers at u.
func ping(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // nothing to do about it
	return conn.Ping(ctx)
}

// withDatabase returns u pointing at database name.
func withDatabase(u, name string) string {
	if p, err := url.Parse(u); err == nil && (p.Scheme == "postgres" || p.Scheme == "postgresql") {
		p.Path = "/" + name
		return p.String()
	}
	return u + " dbname=" + name // key=value form: a later key wins
}

// findServer returns the URL of a server's maintenance database and a
// function that stops the server if this process started it.
func findServer(ctx context.Context) (string, func(), error) {
	if u := os.Getenv(EnvURL); u != "" {
		if err := ping(ctx, u); err != nil {
			return "", nil, fmt.Errorf("%s is set but does not answer: %w", EnvURL, err)
		}
		return u, func() {}, nil
	}
	localErr := ping(ctx, localURL)
	if localErr == nil {
		return localURL, func() {}, nil
	}
	bin, err := findBinaries()
	if err != nil {
		return "", nil, fmt.Errorf("nothing answers at 127.0.0.1:5432 (%w) and %w", localErr, err)
	}
	c, err := StartCluster(ctx, bin)
	if err != nil {
		return "", nil, fmt.Errorf("nothing answers at 127.0.0.1:5432 (%w) and a throwaway cluster did not start: %w", localErr, err)
	}
	return c.URL, c.Stop, nil
}

// Binaries returns the directory holding initdb and pg_ctl, for
// StartCluster: the newest /usr/lib/postgresql/*/bin, else the directory of
// those on PATH. It fails when there are none.
func Binaries() (string, error) { return findBinaries() }

// findBinaries returns the directory holding initdb and pg_ctl: the newest
// /usr/lib/postgresql/*/bin, else the directory of those on PATH.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	initdb, err1 := exec.LookPath("initdb")
	pgctl, err2 := exec.LookPath("pg_ctl")
	if err1 == nil && err2 == nil && filepath.Dir(initdb) == filepath.Dir(pgctl) {
		return filepath.Dir(initdb), nil
	}
	return "", errors.New("no initdb and pg_ctl were found (install postgresql)")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Cluster is a throwaway PostgreSQL cluster in a temporary directory.
type Cluster struct {
	URL string // of its postgres database, user postgres
	dir string
	bin string
	run func(ctx context.Context, name string, args ...string) *exec.Cmd
}

// StartCluster makes a cluster with the initdb of bin, starts it on a free
// port of 127.0.0.1 with trust authentication, and waits until it answers.
// As root, the server runs as the postgres user (PostgreSQL refuses root).
func StartCluster(ctx context.Context, bin string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "spool-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin}
	c.run = func(ctx context.Context, name string, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root and there is no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root and runuser is missing: %w", err)
		}
		c.run = func(ctx context.Context, name string, args ...string) *exec.Cmd {
			return exec.CommandContext(ctx, runuser, append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
	}
	port, err := freePort(ctx)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", port, dir)
	if out, err := c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %w: %s %s", err, out, log)
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := ping(ctx, c.URL); err != nil {
		c.stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

// Restart stops the server in mode ("fast": disconnect clients and shut
// down cleanly; "immediate": abort, as in a crash, with recovery on start)
// and starts it again on the same port and settings (pg_ctl keeps them in
// postmaster.opts), waiting until it accepts connections.
func (c *Cluster) Restart(ctx context.Context, mode string) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "server.log"), "-m", mode, "-w", "-t", "60", "restart").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl restart: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return ping(ctx, c.URL)
}

// Stop stops the server at once and removes its directory.
func (c *Cluster) Stop() { c.stop(context.Background()) }

func (c *Cluster) stop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: pg_ctl stop: %v: %s\n", err, strings.TrimSpace(string(out)))
	}
	os.RemoveAll(c.dir)
}

func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil //nolint:errcheck // a TCP listener's address is a *net.TCPAddr
}
