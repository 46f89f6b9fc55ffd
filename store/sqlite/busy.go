package sqlite

import (
	"errors"
	"strings"
	"time"

	"github.com/spoolrun/spool/store"
)

// errNoOneWaits ends a wait for the write lock once every op of the group
// has its answer (their contexts ended); it reaches no caller.
var errNoOneWaits = errors.New("spool: sqlite: no op of the group still waits")

// begin takes the database write lock for group, waiting out other
// connections that hold it: it tries again after busyFirst, doubling up to
// busyMax, and between tries it gives up when the writer is closing (the
// group's ops get store.ErrClosed) and answers the ops whose context ended
// with their context's error (through decide, which marks them final). It
// keeps trying while some op of the group still wants to run, warning every
// busyWarn.
func (w *writer) begin(group []*op, final []bool, decide func(i int, err error)) error {
	start := time.Now()
	warned := time.Duration(0)
	delay := busyFirst
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		_, err := w.conn.ExecContext(bg, "BEGIN IMMEDIATE")
		if err == nil || !isBusy(err) {
			return err
		}
		select {
		case <-w.closing:
			return store.ErrClosed
		default:
		}
		waiting := 0
		for i, o := range group {
			switch {
			case final[i]:
			case o.ctx.Err() != nil:
				decide(i, o.ctx.Err())
			default:
				waiting++
			}
		}
		if waiting == 0 {
			return errNoOneWaits
		}
		if waited := time.Since(start); waited-warned >= w.busyWarn {
			warned = waited
			w.log.Warn("spool: sqlite database is locked by another connection; still waiting", "err", err, "waited", waited.Round(time.Millisecond), "ops", waiting)
		}
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-timer.C:
		case <-w.closing:
		}
		delay = min(2*delay, busyMax)
	}
}

func isBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}
