package spooltest_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// store NewStore opens must be closed by its cleanup.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeT is a testing.TB that records failures instead of failing a test,
// so that tests can check that the assertions fail and what they say, and
// examples can run a test body without go test. It runs the body in a
// goroutine of its own, as go test does, so that FailNow ends the body;
// then it runs the cleanups, last registered first, and removes its
// temporary directory.
//
// It implements what spooltest and the tests use; the other methods of
// testing.TB panic (the embedded TB is nil).
type fakeT struct {
	testing.TB

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex // guards the fields below
	failed   bool
	log      []string // Log, Error and Fatal messages, in order
	cleanups []func()
	dir      string
}

// runT runs body with a fakeT and returns it once body and the cleanups
// have run.
func runT(body func(t testing.TB)) *fakeT {
	ft := &fakeT{}
	ft.ctx, ft.cancel = context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(ft)
	}()
	<-done
	ft.cancel() // as go test does, before the cleanups
	ft.mu.Lock()
	cleanups := ft.cleanups
	ft.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	if ft.dir != "" {
		os.RemoveAll(ft.dir)
	}
	return ft
}

func (ft *fakeT) Helper()                  {}
func (ft *fakeT) Name() string             { return "fakeT" }
func (ft *fakeT) Context() context.Context { return ft.ctx }

func (ft *fakeT) TempDir() string {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.dir == "" {
		dir, err := os.MkdirTemp("", "spooltest")
		if err != nil {
			panic(err)
		}
		ft.dir = dir
	}
	return ft.dir
}

func (ft *fakeT) Cleanup(f func()) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.cleanups = append(ft.cleanups, f)
}

func (ft *fakeT) record(failed bool, msg string) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.failed = ft.failed || failed
	ft.log = append(ft.log, msg)
}

func (ft *fakeT) Log(args ...any)                 { ft.record(false, fmt.Sprintln(args...)) }
func (ft *fakeT) Logf(format string, args ...any) { ft.record(false, fmt.Sprintf(format, args...)) }
func (ft *fakeT) Error(args ...any)               { ft.record(true, fmt.Sprintln(args...)) }
func (ft *fakeT) Errorf(format string, args ...any) {
	ft.record(true, fmt.Sprintf(format, args...))
}
func (ft *fakeT) Fatal(args ...any) {
	ft.Error(args...)
	ft.FailNow()
}
func (ft *fakeT) Fatalf(format string, args ...any) {
	ft.Errorf(format, args...)
	ft.FailNow()
}
func (ft *fakeT) Fail() { ft.record(true, "") }
func (ft *fakeT) FailNow() {
	ft.Fail()
	runtime.Goexit()
}

func (ft *fakeT) Failed() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.failed
}

// Said is everything the body logged and every failure message, one per
// line.
func (ft *fakeT) Said() string {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var b strings.Builder
	for _, m := range ft.log {
		if m = strings.TrimSuffix(m, "\n"); m != "" {
			b.WriteString(m + "\n")
		}
	}
	return b.String()
}

// mustFail runs body with a fakeT, fails t unless body failed it, and
// returns what it said.
func mustFail(t *testing.T, body func(t testing.TB)) string {
	t.Helper()
	ft := runT(body)
	if !ft.Failed() {
		t.Fatalf("the assertion passed; want it to fail the test. It said:\n%s", ft.Said())
	}
	return ft.Said()
}

// mustPass runs body with a fakeT and fails t if body failed it.
func mustPass(t *testing.T, body func(t testing.TB)) string {
	t.Helper()
	ft := runT(body)
	if ft.Failed() {
		t.Fatalf("the body failed the test:\n%s", ft.Said())
	}
	return ft.Said()
}

// wants fails t unless out contains every one of want.
func wants(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the message lacks %q; it is:\n%s", w, out)
		}
	}
}
