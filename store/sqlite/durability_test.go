package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// After one failed fsync of the WAL, nothing is acknowledged as durable
// again, though later fsyncs succeed (on Linux they may, after dropping the
// pages the failed one could not write): the failing batch gets the error, a
// batch whose fsync was running at the same time and succeeded gets it too,
// every later write is refused, reads go on, Close reports it, and the file
// opens again.
func TestFailedFsyncIsLatched(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	var calls atomic.Int32
	failing := int32(-1) // the call that fails
	started, release, second := make(chan struct{}), make(chan struct{}), make(chan struct{})
	s, err := sqlite.OpenWithHooks(path, sqlite.Config{}, sqlite.Hooks{Sync: func(f *os.File) error {
		switch n := calls.Add(1); n {
		case atomic.LoadInt32(&failing):
			close(started)
			<-release
			return syscall.EIO
		case atomic.LoadInt32(&failing) + 1:
			close(second)
		}
		return f.Sync()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	enqueue := func() error {
		_, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "q"}})
		return err
	}
	before, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "q"}})
	if err != nil {
		t.Fatal(err)
	}

	atomic.StoreInt32(&failing, calls.Load()+1)
	first := make(chan error, 1)
	go func() { first <- enqueue() }()
	<-started // the first batch's fsync is running (and will fail)
	next := make(chan error, 1)
	go func() { next <- enqueue() }()
	<-second // a second batch's fsync ran and succeeded
	close(release)
	if err := <-first; !errors.Is(err, store.ErrDurability) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("the batch whose fsync failed: got %v, want ErrDurability wrapping EIO", err)
	}
	if err := <-next; !errors.Is(err, store.ErrDurability) {
		t.Fatalf("the batch behind it, whose fsync succeeded: got %v, want ErrDurability", err)
	}

	// Later fsyncs would succeed; writes are refused all the same.
	if err := enqueue(); !errors.Is(err, store.ErrDurability) {
		t.Errorf("enqueue after the failure: got %v, want ErrDurability", err)
	}
	if _, err := s.Claim(ctx, store.ClaimParams{Queue: "q", Limit: 10, LockFor: time.Minute}); !errors.Is(err, store.ErrDurability) {
		t.Errorf("claim after the failure: got %v, want ErrDurability", err)
	}
	if _, err := s.Prune(ctx, store.PruneParams{CompletedBefore: time.Now()}); !errors.Is(err, store.ErrDurability) {
		t.Errorf("prune after the failure: got %v, want ErrDurability", err)
	}
	if _, err := s.Get(ctx, before[0].ID); err != nil {
		t.Errorf("a read after the failure: %v", err)
	}
	if err := s.Close(); !errors.Is(err, store.ErrDurability) {
		t.Errorf("Close: got %v, want ErrDurability", err)
	}

	s2, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if _, err := s2.Get(ctx, before[0].ID); err != nil {
		t.Errorf("the job acknowledged before the failure, after reopening: %v", err)
	}
	if _, err := s2.Enqueue(ctx, []store.EnqueueParams{{Kind: "k"}}); err != nil {
		t.Errorf("enqueue after reopening: %v", err)
	}
}
