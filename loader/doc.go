// Package loader is an in-process read-through cache that coalesces loads:
// a [Loader] returns a key's cached value, or loads it, and the concurrent
// callers of a key that is not cached share one call of the load function
// instead of stampeding the database behind it.
//
//	posts, err := loader.New(func(ctx context.Context, slug string) (*Post, error) {
//		return db.PostBySlug(ctx, slug) // returns loader.ErrNotFound for no row
//	}, loader.Options[string, *Post]{TTL: time.Minute, RefreshAfter: 45 * time.Second})
//	if err != nil { ... }
//	defer posts.Close()
//	post, err := posts.Get(ctx, "hello-world")
//
// # Guarantees
//
//   - One load per key at a time: concurrent Gets of a key wait for the
//     load one of them started (GetMany and refreshes join the same loads).
//   - A caller that gives up (its context ends) returns at once with
//     ctx.Err(); the load goes on, for the others and the cache. Loads run
//     on a context that keeps the first caller's values but not its
//     cancellation, bounded by [Options].LoadTimeout and by Close.
//   - A panic (or runtime.Goexit) in a load becomes a [*PanicError] for
//     every waiter; it never crashes the process or leaves a waiter hanging.
//   - Nothing in flight outlives its load: success, error and panic all
//     remove it.
//   - Refresh-ahead ([Options].RefreshAfter): the first read of an ageing
//     value starts one background reload and gets the old value at once.
//   - Stale-if-error ([Options].StaleFor): when reloads fail, the old value
//     is served for a bounded time past its expiry.
//   - Errors are cached briefly, with a backoff that doubles on repeated
//     failures of a key ([Options].ErrorTTL); "not found" is cached like a
//     value ([ErrNotFound], [Options].NotFoundTTL).
//   - [Loader.Invalidate] and [Loader.Clear] never wait for loads in flight,
//     and a load that began before them never stores its result after
//     them; its waiters still get the value they waited for.
//
// The cache underneath is otter v2 (github.com/maypok86/otter/v2), bounded
// by [Options].MaxSize with its W-TinyLFU eviction policy.
package loader
