package loader

import (
	"context"
	"errors"
)

// GetMany returns the values of keys, as Get would return each: from the
// cache, or loaded, by one call of Options.LoadMany for the keys that need
// a load when it is set, and otherwise by the load function, key by key in
// parallel. Either way, a key already being loaded (by a Get or another
// GetMany) is waited for, not loaded again, and the loads started here are
// shared with later Gets. Keys without a value (ErrNotFound) are left out
// of the map without an error; each key that failed gives a *KeyError[K],
// all joined, and the map still holds the keys that succeeded. If ctx ends
// first, GetMany returns what it has with ctx.Err(). Duplicate keys are
// looked up once.
func (l *Loader[K, V]) GetMany(ctx context.Context, keys []K) (map[K]V, error) {
	out := make(map[K]V, len(keys))
	var errs []error
	collect := func(key K, v V, err error) {
		switch {
		case err == nil:
			out[key] = v
		case isNotFound(err):
		default:
			errs = append(errs, &KeyError[K]{Key: key, Err: err})
		}
	}

	seen := make(map[K]struct{}, len(keys))
	var missing []K
	for _, key := range keys {
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		if got, ok := l.cache.GetEntry(key); ok {
			e, now := got.Value, got.SnapshotAtNano
			if e.verdict(now) == serveValue {
				if now >= e.refreshAt {
					l.refresh(ctx, key, e)
				}
				l.counter.RecordHits(1)
				out[key] = e.value
				continue
			}
			if v, ok, err := l.answer(e, now); ok {
				collect(key, v, err)
				continue
			}
		}
		missing = append(missing, key)
	}
	if len(missing) == 0 {
		return out, errors.Join(errs...)
	}
	if err := ctx.Err(); err != nil {
		return out, errors.Join(append(errs, err)...) // a caller that has given up starts no load
	}

	type waiter struct {
		key K
		f   *flight[V]
	}
	var (
		waits     []waiter
		bulkKeys  []K
		bulkLoads []*flight[V]
		answered  []*entry[V]
		times     []int64
		answerFor []K
	)
	l.mu.Lock()
	for _, key := range missing {
		e, now, f, started, err := l.acquire(key)
		switch {
		case err != nil:
			errs = append(errs, &KeyError[K]{Key: key, Err: err})
		case f == nil:
			answered, times, answerFor = append(answered, e), append(times, now), append(answerFor, key)
		default:
			waits = append(waits, waiter{key, f})
			if !started {
				break
			}
			if l.opts.LoadMany == nil {
				go l.runLoad(ctx, key, f)
			} else {
				bulkKeys, bulkLoads = append(bulkKeys, key), append(bulkLoads, f)
			}
		}
	}
	l.mu.Unlock()
	if len(bulkKeys) > 0 {
		go l.runBulk(ctx, bulkKeys, bulkLoads)
	}
	for i, e := range answered {
		if e.verdict(times[i]) == serveValue {
			l.counter.RecordHits(1)
			out[answerFor[i]] = e.value
			continue
		}
		v, _, err := l.answer(e, times[i])
		collect(answerFor[i], v, err)
	}

	l.counter.RecordMisses(len(waits))
	for _, w := range waits {
		select {
		case <-w.f.done:
			if w.f.out.stale {
				l.counts.staleServed.Add(1)
			}
			collect(w.key, w.f.out.val, w.f.out.err)
		case <-ctx.Done():
			return out, errors.Join(append(errs, ctx.Err())...)
		}
	}
	return out, errors.Join(errs...)
}

// runBulk loads keys with one call of LoadMany and settles their flights
// fs: a key in the answer gets its value; any other key gets LoadMany's
// error, or ErrNotFound when it returned none.
func (l *Loader[K, V]) runBulk(ctx context.Context, keys []K, fs []*flight[V]) {
	defer l.wg.Add(-len(fs)) // register counted each flight
	ctx, cancel := l.loadContext(ctx)
	defer cancel()
	l.counts.bulkLoads.Add(1)
	var m map[K]V
	protect(func() (err error) {
		m, err = l.opts.LoadMany(ctx, keys)
		return err
	}, func(err error) {
		l.countFailure(ctx, err, false)
		for i, key := range keys {
			v, ok := m[key]
			keyErr := err
			switch {
			case ok:
				keyErr = nil
			case err == nil:
				keyErr = ErrNotFound
			}
			l.finish(key, fs[i], v, keyErr)
		}
	})
}
