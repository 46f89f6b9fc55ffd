package postgres

import (
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/store"
)

// Notification payloads on the schema's channel are "SENDER:a:QUEUE" (jobs
// may have become claimable in QUEUE; QUEUE may also be a topic's signal,
// store.TopicSignal, "$topic/NAME": the topic has new events, and NAME may
// hold ':' and '/', which the reader keeps), "SENDER:f:ID,ID,..." (those jobs
// finished; IDs in hex, 32 characters) and "SENDER:f" (some jobs finished,
// too many to name: every waiter looks). SENDER is the sending store's
// random ID, so a store skips its own notifications (it has already woken
// its waiters); notifications sent from a caller's transaction carry an
// empty sender, so every store acts on them.
const (
	noteAvailable = "a"
	noteFinished  = "f"
	// idsPerNote keeps a payload under PostgreSQL's 8000-byte limit.
	idsPerNote = 200
	// maxNamedFinished is the most finished jobs named per send; past it
	// one "f" wakes every waiter instead.
	maxNamedFinished = 2000
)

func availablePayload(sender, queue string) string { return sender + ":" + noteAvailable + ":" + queue }

// outbox collects changes to announce until the send loop takes them.
type outbox struct {
	interval time.Duration
	kick     chan struct{} // buffered 1: something is pending

	mu       sync.Mutex // guards queues, finished and overflow
	queues   map[string]bool
	finished []store.ID
	overflow bool // more than maxNamedFinished finished since the last send
}

func newOutbox(interval time.Duration) *outbox {
	return &outbox{interval: interval, kick: make(chan struct{}, 1), queues: map[string]bool{}}
}

func (o *outbox) add(queues []string, finished []store.ID) {
	if len(queues) == 0 && len(finished) == 0 {
		return
	}
	o.mu.Lock()
	for _, q := range queues {
		o.queues[q] = true
	}
	if !o.overflow {
		if len(o.finished)+len(finished) > maxNamedFinished {
			o.overflow, o.finished = true, o.finished[:0]
		} else {
			o.finished = append(o.finished, finished...)
		}
	}
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// addEveryFinished is add for changes that finished too many jobs to name
// (a bulk action): one "f" wakes every waiter.
func (o *outbox) addEveryFinished(queues []string) {
	o.mu.Lock()
	for _, q := range queues {
		o.queues[q] = true
	}
	o.overflow, o.finished = true, o.finished[:0]
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// take returns the pending payloads and clears them.
func (o *outbox) take(sender string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, 0, len(o.queues)+1)
	for q := range o.queues {
		out = append(out, availablePayload(sender, q))
	}
	clear(o.queues)
	if o.overflow {
		out = append(out, sender+":"+noteFinished)
		o.overflow = false
	}
	for len(o.finished) > 0 {
		n := min(len(o.finished), idsPerNote)
		var b strings.Builder
		b.Grow(len(sender) + 3 + n*33)
		b.WriteString(sender + ":" + noteFinished + ":")
		for i, id := range o.finished[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(hex.EncodeToString(id[:]))
		}
		out = append(out, b.String())
		o.finished = o.finished[n:]
	}
	o.finished = nil
	return out
}

// sendLoop sends pending notifications: at once after a quiet spell, then
// at most once per interval while changes keep coming, so a busy process
// sends one NOTIFY statement for many commits. Notifications are hints; a
// failed send is logged and dropped. On stop it sends what is pending.
func (s *backend) sendLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.sendPending(context.WithoutCancel(ctx))
			return
		case <-s.out.kick:
		}
		s.sendPending(ctx)
		timer.Reset(s.out.interval)
		select {
		case <-ctx.Done():
			s.sendPending(context.WithoutCancel(ctx))
			return
		case <-timer.C:
		}
	}
}

func (s *backend) sendPending(ctx context.Context) {
	payloads := s.out.take(s.sender)
	if len(payloads) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.pool.Exec(ctx, notifySQL, s.channel, payloads); err != nil {
		s.log.Warn("spool: postgres: notify failed", "err", err, "notifications", len(payloads))
	}
}

// notifyInTx queues notifications on a caller's transaction: PostgreSQL
// delivers them when it commits, and drops them if it rolls back.
func (s *backend) notifyInTx(ctx context.Context, x execer, queues []string) error {
	if len(queues) == 0 {
		return nil
	}
	payloads := make([]string, len(queues))
	for i, q := range queues {
		payloads[i] = availablePayload("", q)
	}
	return x.exec(ctx, notifySQL, s.channel, payloads)
}

// listenConn opens the listener's own connection (outside the pool: LISTEN
// belongs to a session) and subscribes to the channel.
func (s *backend) listenConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // already failing
		return nil, err
	}
	return conn, nil
}

// listen turns notifications into local signals until ctx ends. When the
// connection breaks it reconnects with backoff and then wakes every waiter,
// since notifications sent meanwhile are lost.
func (s *backend) listen(ctx context.Context, conn *pgx.Conn) {
	backoff := 100 * time.Millisecond
	for {
		for conn != nil {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // reconnecting anyway
				conn = nil
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("spool: postgres: listener lost its connection; reconnecting", "err", err)
				break
			}
			backoff = 100 * time.Millisecond
			s.handleNote(n.Payload)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		backoff = min(2*backoff, 10*time.Second)
		var err error
		if conn, err = s.listenConn(ctx); err != nil {
			s.log.Warn("spool: postgres: listener cannot reconnect", "err", err, "retry_in", backoff)
			continue
		}
		s.log.Info("spool: postgres: listener reconnected")
		s.wakeAll() // notifications sent while it was away are lost: everyone looks again
	}
}

// handleNote fires the signal a notification names, unless this store sent it.
func (s *backend) handleNote(payload string) {
	sender, rest, ok := strings.Cut(payload, ":")
	if !ok || sender == s.sender {
		return
	}
	kind, arg, named := strings.Cut(rest, ":")
	switch kind {
	case noteAvailable:
		s.available.Fire(arg)
	case noteFinished:
		if !named {
			s.finished.FireAll()
			return
		}
		if s.finished.Len() == 0 {
			return
		}
		ids := make([]store.ID, 0, strings.Count(arg, ",")+1)
		for h := range strings.SplitSeq(arg, ",") {
			var id store.ID
			if n, err := hex.Decode(id[:], []byte(h)); err != nil || n != len(id) {
				s.finished.FireAll() // a payload this build cannot read: everyone looks
				return
			}
			ids = append(ids, id)
		}
		s.finished.Fire(ids...)
	}
}

// wakeAll fires every signal a waiter asked for.
func (s *backend) wakeAll() {
	s.asked.Range(func(k, _ any) bool {
		if q, ok := k.(string); ok {
			s.available.Fire(q)
		}
		return true
	})
	s.finished.FireAll()
}
