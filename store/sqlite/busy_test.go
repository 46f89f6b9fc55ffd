package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// warnings is a slog handler that announces each warning.
type warnings chan string

func (w warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w warnings) Handle(_ context.Context, r slog.Record) error {
	select {
	case w <- r.Message:
	default:
	}
	return nil
}
func (w warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w warnings) WithGroup(string) slog.Handler      { return w }

// While another connection holds the write lock, an op whose context ends
// stops waiting with its context's error, and Close gives up on the ops
// still waiting (they get ErrClosed) instead of hanging.
func TestBusyWaitEndsWithContextAndClose(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	warned := make(warnings, 1)
	s, err := sqlite.Open(path, sqlite.Config{BusyTimeout: 100 * time.Millisecond, Logger: slog.New(warned)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := sql.Open("sqlite", sqlite.DSN(path, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.Begin() // BEGIN IMMEDIATE (see DSN): holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // only releases the lock

	within := func(what string, d time.Duration, done <-chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(d):
			t.Fatalf("%s did not return within %v while another connection held the write lock", what, d)
			return nil
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k"}})
		done <- err
	}()
	if err := within("an enqueue whose context ends", 10*time.Second, done); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enqueue with a short context: got %v, want DeadlineExceeded", err)
	}

	select {
	case <-warned: // from the first enqueue's wait
	default:
	}
	go func() {
		_, err := s.Enqueue(context.Background(), []store.EnqueueParams{{Kind: "k"}})
		done <- err
	}()
	<-warned // the writer is waiting for the lock
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := within("Close", 10*time.Second, closed); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := within("the waiting enqueue", 10*time.Second, done); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("the enqueue waiting when Close came: got %v, want ErrClosed", err)
	}
}
