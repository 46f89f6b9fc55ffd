package sqlite

import (
	"os"
)

// ack is a committed op waiting for the fsync that makes it durable.
type ack struct{ o *op }

// syncers is how many fsyncs of the WAL may be in flight at once. An fsync
// makes durable everything written before it began, so a second one can
// start as soon as new commits exist instead of waiting for the first to
// finish: an op then waits about one fsync after its commit, not one and a
// half.
const syncers = 2

// syncLoop makes commits durable: it fsyncs the WAL once for every commit
// that finished since it last looked, then answers their ops. Several run
// at once (see syncers); each acknowledges only ops committed before its own
// fsync began. Commits with synchronous=NORMAL plus this fsync are what
// synchronous=FULL does in WAL mode, with one difference: the writer goes on
// committing while an fsync runs, and one fsync covers every commit before
// it.
//
// A failed fsync is latched (see writer.latch). On Linux a failed fsync
// reports its error once and may drop the dirty pages it could not write, so
// a later fsync of the same file can succeed although WAL frames before it
// are lost, and SQLite's recovery stops at the first broken frame, losing
// the later commits too (PostgreSQL's "fsyncgate"). So after one failure no
// commit is acknowledged as durable again: the failing batch, every batch
// behind it and every later write get the latched error until the store is
// reopened, which recovers the WAL from what is really on disk. Batches are
// answered in the order they were taken, so a batch whose fsync succeeded
// waits for the verdict on the batches before it.
func (w *writer) syncLoop() {
	var wal *os.File
	defer func() {
		if wal != nil {
			wal.Close()
		}
	}()
	var batch []ack
	for {
		w.takeMu.Lock()
		first, ok := <-w.syncQ
		if !ok {
			w.takeMu.Unlock()
			return
		}
		batch = append(batch[:0], first...)
	drain:
		for {
			select {
			case more, ok := <-w.syncQ:
				if !ok {
					break drain
				}
				batch = append(batch, more...)
			default:
				break drain
			}
		}
		prev, mine := w.lastTaken, make(chan struct{})
		w.lastTaken = mine
		w.takeMu.Unlock()

		var err error
		if w.failure() == nil { // once latched, an fsync proves nothing
			if wal == nil {
				wal, err = os.OpenFile(w.walPath, os.O_RDWR, 0)
			}
			if err == nil {
				err = w.hooks.sync(wal)
			}
			w.stats.syncs.Add(1)
		}
		if prev != nil {
			<-prev
		}
		if err != nil {
			w.latch(err)
		}
		err = w.failure() // this fsync's failure, or an earlier batch's
		for _, a := range batch {
			if err == nil && a.o.after != nil {
				a.o.after()
			}
			a.o.done <- err
		}
		close(mine)
		clear(batch)
	}
}
