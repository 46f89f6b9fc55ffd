package sqlite

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// changes wakes this store's waiters (Notifier.Available and Finished)
// when another connection commits to the file: another process, another
// Store on the same file, or the caller's *sql.DB behind EnqueueTx.
//
// A watcher goroutine is told by the operating system (inotify, kqueue)
// when the WAL file is written, and nudges the writer. The writer then reads
// PRAGMA data_version on its own connection, which changes only when some
// other connection committed: so this store's own commits, which write the
// WAL too, wake nobody. Reading it costs about 5µs standalone and nothing
// measurable inside a group's transaction, where the writer checks when a
// nudge came in while it was busy.
//
// A commit writes its WAL frames before it publishes them (right after,
// for a Spool writer; after an fsync, for a connection with
// synchronous=FULL), so a check just after a write may see nothing new.
// When a write is explained by no own commit, the writer checks again 2, 10
// and 42 ms after; when it may have been its own, once after 2 ms.
//
// Where the WAL cannot be watched (no such facility, or no watches left),
// the watcher instead nudges every pollEvery. Waking a goroutine costs far
// more than the check itself: on a small VM we measured a 10 ms ticker alone
// at 1.7% of a core, a 50 ms one at 0.5%, and an inotify watch at 0.01%
// idle, with the event arriving about 0.5 ms after a commit started.
type changes struct {
	walPath string
	poll    bool   // watch no file; poll instead
	fire    func() // wakes the store's waiters
	log     *slog.Logger

	// Set by the watcher goroutine, taken by the writer.
	wanted atomic.Int32  // seenNothing, seenPoll or seenWrite
	nudge  chan struct{} // capacity 1: wakes an idle writer

	// The writer goroutine's own.
	version int64 // the last data_version read
	own     bool  // the writer committed since the last check
	steps   int   // follow-up checks left
	delay   time.Duration
	timer   *time.Timer
	timerC  <-chan time.Time // timer.C while armed, else nil

	stop chan struct{}
	wg   sync.WaitGroup // the watcher goroutine
}

// What the writer is asked to check for, least news first.
const (
	seenNothing  int32 = iota
	seenPoll           // a poll tick: check, no follow-ups
	seenFollowUp       // a follow-up after a write that showed nothing new
	seenWrite          // the WAL was written
)

const (
	pollEvery   = 50 * time.Millisecond
	followFirst = 2 * time.Millisecond
	followSteps = 3 // 2, 8 and 32 ms after the write
)

func newChanges(walPath string, poll bool, fire func(), log *slog.Logger) *changes {
	return &changes{walPath: walPath, poll: poll, fire: fire, log: log, nudge: make(chan struct{}, 1), stop: make(chan struct{})}
}

// start reads the current data_version and starts the watcher. It runs
// before the writer's loop, on the writer's connection.
func (c *changes) start(w *writer) error {
	if err := (stmtExec{w}).queryRow("PRAGMA data_version").Scan(&c.version); err != nil {
		return err
	}
	var fw *fsnotify.Watcher
	if !c.poll {
		var err error
		if fw, err = fsnotify.NewWatcher(); err == nil {
			if err = fw.Add(c.walPath); err != nil {
				fw.Close()
				fw = nil
			}
		}
		if err != nil {
			c.log.Info("spool: sqlite: cannot watch the write-ahead log; polling for other processes' commits instead", "err", err, "every", pollEvery)
		}
	}
	c.wg.Go(func() { c.watch(fw) })
	return nil
}

// close stops the watcher and waits for it.
func (c *changes) close() {
	close(c.stop)
	c.wg.Wait()
}

// watch runs in the watcher goroutine until close: it nudges the writer on
// every write to the WAL, or every pollEvery without a watch.
func (c *changes) watch(fw *fsnotify.Watcher) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	var tick <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	poll := func() {
		ticker = time.NewTicker(pollEvery)
		tick = ticker.C
	}
	if fw != nil {
		defer fw.Close()
		events, errs = fw.Events, fw.Errors
	} else {
		poll()
	}
	for {
		select {
		case <-c.stop:
			return
		case ev, ok := <-events:
			if ok {
				c.seen(seenWrite)
			}
			if !ok || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// The WAL went away (the watch with it): keep waking, by polling.
				c.log.Info("spool: sqlite: the write-ahead log is no longer watched; polling for other processes' commits instead", "event", ev, "every", pollEvery)
				events, errs = nil, nil
				poll()
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				c.log.Warn("spool: sqlite: watching the write-ahead log", "err", err)
			}
			c.seen(seenWrite) // events may have been lost
		case <-tick:
			c.seen(seenPoll)
		}
	}
}

// seen records what the watcher saw and wakes the writer.
func (c *changes) seen(kind int32) {
	for {
		old := c.wanted.Load()
		if old >= kind || c.wanted.CompareAndSwap(old, kind) {
			break
		}
	}
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

// The methods below run on the writer goroutine.

func (c *changes) nudged() <-chan struct{}    { return c.nudge }
func (c *changes) followUp() <-chan time.Time { return c.timerC }

// onNudge checks after a nudge, on the idle writer.
func (c *changes) onNudge(x execer) { c.check(x, c.wanted.Swap(seenNothing)) }

// onFollowUp checks when a follow-up is due, on the idle writer.
func (c *changes) onFollowUp(x execer) {
	c.timerC = nil
	c.check(x, max(c.wanted.Swap(seenNothing), seenFollowUp))
}

// inTx checks inside a group's transaction when a write was seen or a
// follow-up is pending; there the check reads no file.
func (c *changes) inTx(x execer) {
	kind := c.wanted.Swap(seenNothing)
	if kind == seenNothing && c.timerC != nil {
		c.stopTimer()
		kind = seenFollowUp
	}
	c.check(x, kind)
}

// committed records that the writer committed.
func (c *changes) committed() { c.own = true }

func (c *changes) check(x execer, kind int32) {
	if kind == seenNothing {
		return
	}
	var v int64
	if err := x.queryRow("PRAGMA data_version").Scan(&v); err != nil {
		c.log.Debug("spool: sqlite: reading data_version", "err", err)
		c.fire() // cannot tell: a spurious wake-up costs one look
		return
	}
	own := c.own
	c.own = false
	if v != c.version {
		c.version = v
		c.steps = 0
		c.stopTimer()
		c.fire()
		return
	}
	switch kind {
	case seenWrite:
		c.delay, c.steps = followFirst, followSteps
		if own {
			c.steps = 1
		}
	case seenFollowUp:
		c.steps--
		c.delay *= 4
	default:
		return
	}
	if c.steps > 0 {
		c.arm(c.delay)
	}
}

func (c *changes) arm(d time.Duration) {
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
	c.timerC = c.timer.C
}

func (c *changes) stopTimer() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timerC = nil
}
