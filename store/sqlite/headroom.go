package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/spoolrun/spool/store"
)

// headroom keeps room on disk for draining the store: past Config.MaxSize
// or below Config.MinFreeDisk it refuses ops that insert jobs (see
// opts.grows), while claims, settles, cancels, purges and retention go on.
// Workers then empty the store, retention deletes finished jobs, and
// enqueues resume by themselves.
//
// Measuring is cheap but not free (two pragmas on the connection and a
// statfs), so the verdict is cached: it is taken again once headroomEvery
// has passed or about headroomBytes were inserted since, whichever comes
// first, and on every check while the store is full (refusing is not the
// hot path, and this way enqueues resume as soon as there is room). Limits
// are therefore approximate by up to headroomBytes plus one commit.
type headroom struct {
	maxSize   int64 // bytes of database pages in use; 0: no limit
	minFree   int64 // bytes free on the file system; negative: no floor
	dir       string
	freeSpace func(dir string) (int64, error)
	log       *slog.Logger

	mu        sync.Mutex // guards the fields below
	checkedAt time.Time  // when the verdict was taken
	grown     int64      // estimated bytes inserted since
	full      error      // the verdict: nil, or an error matching store.ErrStoreFull
}

const (
	headroomEvery = 250 * time.Millisecond
	headroomBytes = 1 << 20
	// rowBytes is what a job row and its index entries take besides its
	// strings and payload, roughly; schedule firings count this much a run.
	rowBytes = 256
)

func (h *headroom) enabled() bool { return h.maxSize > 0 || h.minFree >= 0 }

// check returns nil when jobs may be inserted, else an error matching
// store.ErrStoreFull. used measures the bytes of database pages in use.
// A measurement that fails is logged and lets the insert through: the
// headroom is a safety margin, not a reason to stop work.
func (h *headroom) check(used func() (int64, error)) error {
	if !h.enabled() {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.full == nil && time.Since(h.checkedAt) < headroomEvery && h.grown < headroomBytes {
		return nil
	}
	was := h.full
	h.checkedAt, h.grown, h.full = time.Now(), 0, nil
	if h.maxSize > 0 {
		n, err := used()
		switch {
		case err != nil:
			h.log.Warn("spool: sqlite: cannot measure the database; not enforcing MaxSize", "err", err)
		case n >= h.maxSize:
			h.full = fmt.Errorf("%w: the database holds %s, at its limit of %s (MaxSize)", store.ErrStoreFull, mib(n), mib(h.maxSize))
		}
	}
	if h.full == nil && h.minFree >= 0 {
		free, err := h.freeSpace(h.dir)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
		case err != nil:
			h.log.Warn("spool: sqlite: cannot measure free disk space; not enforcing MinFreeDisk", "err", err)
		case free < h.minFree:
			h.full = fmt.Errorf("%w: %s free on the disk holding %s, below the floor of %s (MinFreeDisk)", store.ErrStoreFull, mib(free), h.dir, mib(h.minFree))
		}
	}
	switch {
	case h.full != nil && was == nil:
		h.log.Warn("spool: sqlite: store is full; refusing enqueues until workers drain it or space is freed", "err", h.full)
	case h.full == nil && was != nil:
		h.log.Info("spool: sqlite: store has room again; enqueues resume")
	}
	return h.full
}

// add counts n bytes inserted since the last measurement.
func (h *headroom) add(n int64) {
	if !h.enabled() {
		return
	}
	h.mu.Lock()
	h.grown += n
	h.mu.Unlock()
}

// grew counts what a committed group's growing ops inserted.
func (h *headroom) grew(group []*op, errs []error) {
	if !h.enabled() {
		return
	}
	var n int64
	for i, o := range group {
		switch {
		case errs[i] != nil || !o.grows:
		case o.ins != nil:
			n += jobBytes(o.ins.jobs)
		default:
			n += rowBytes
		}
	}
	if n > 0 {
		h.add(n)
	}
}

func jobBytes(jobs []store.EnqueueParams) int64 {
	var n int64
	for i := range jobs {
		p := &jobs[i]
		n += int64(rowBytes + len(p.Payload) + len(p.Kind) + len(p.Queue) + len(p.Tenant) + len(p.UniqueKey) + len(p.OrderingKey))
	}
	return n
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// usedSQL measures the bytes of database pages in use: the file's pages
// less its free list, as this connection sees them (the WAL included).
const usedSQL = `SELECT (c.page_count - f.freelist_count) * s.page_size
	FROM pragma_page_count() AS c, pragma_freelist_count() AS f, pragma_page_size() AS s`

func usedBytes(x execer) (int64, error) {
	var n int64
	err := x.queryRow(usedSQL).Scan(&n)
	return n, err
}

// admit refuses the group's growing ops past the headroom (see opts.grows).
// It runs inside the group's transaction.
func (w *writer) admit(x execer, group []*op, decide func(i int, err error)) {
	var err error
	checked := false
	for i, o := range group {
		if !o.grows {
			continue
		}
		if !checked {
			err, checked = w.room.check(func() (int64, error) { return usedBytes(x) }), true
		}
		if err != nil {
			decide(i, err)
		}
	}
}

// admitTx is the writer's refusals for an enqueue in a caller's
// transaction (EnqueueTx): a latched fsync failure, or a store past its
// headroom.
func (s *backend) admitTx(ctx context.Context, tx *sql.Tx, jobs []store.EnqueueParams) error {
	if err := s.writer.failure(); err != nil {
		return err
	}
	if err := s.writer.room.check(func() (int64, error) { return usedBytes(txExec{ctx, tx}) }); err != nil {
		return err
	}
	s.writer.room.add(jobBytes(jobs))
	return nil
}

// storeFull reports SQLite's own "database or disk is full" on an op that
// inserts jobs as store.ErrStoreFull.
func storeFull(err error) error {
	if err == nil || errors.Is(err, store.ErrStoreFull) {
		return err
	}
	var se *msqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return fmt.Errorf("%w: %w", store.ErrStoreFull, err)
	}
	return err
}
