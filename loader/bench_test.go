package loader_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
	"golang.org/x/sync/singleflight"

	"github.com/spoolrun/spool/loader"
)

// benchKeys are the keys of the hit benchmarks: more than one, so that the
// benchmark is not one cache line, and all cached.
var benchKeys = func() []string {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("post-%d", i)
	}
	return keys
}()

// BenchmarkGetHit compares the hit path of Loader.Get with otter's own
// GetIfPresent on a cache configured alike (size bound, expiry, stats), so
// the difference is the Loader's overhead.
func BenchmarkGetHit(b *testing.B) {
	ctx := context.Background()
	mask := len(benchKeys) - 1

	l, err := loader.New(func(_ context.Context, key string) (string, error) { return key, nil },
		loader.Options[string, string]{TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	oc := otter.Must(&otter.Options[string, string]{
		MaximumSize:      loader.DefaultMaxSize,
		ExpiryCalculator: otter.ExpiryWriting[string, string](time.Hour),
		StatsRecorder:    stats.NewCounter(),
	})
	defer oc.StopAllGoroutines()
	for _, k := range benchKeys {
		l.Set(k, k)
		oc.Set(k, k)
	}

	b.Run("loader.Get", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := l.Get(ctx, benchKeys[i&mask]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("otter.GetIfPresent", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, ok := oc.GetIfPresent(benchKeys[i&mask]); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("loader.Get/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, err := l.Get(ctx, benchKeys[i&mask]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("otter.GetIfPresent/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, ok := oc.GetIfPresent(benchKeys[i&mask]); !ok {
					b.Error("miss")
					return
				}
			}
		})
	})
}

// BenchmarkCoalescedMiss has 100 goroutines missing the same key over and
// over with a trivial load: every Get either starts a load or joins the
// one in flight. The Loader's values expire at once (TTL 1ns), so that it
// caches nothing between loads, as singleflight does not.
func BenchmarkCoalescedMiss(b *testing.B) {
	const goroutines = 100
	parallelism := (goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	ctx := context.Background()
	load := func(context.Context, string) (int, error) { return 42, nil }

	b.Run("loader.Get", func(b *testing.B) {
		l, err := loader.New(load, loader.Options[string, int]{TTL: time.Nanosecond})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Get(ctx, "k"); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(l.Stats().Loads)/float64(b.N), "loads/op")
	})
	b.Run("singleflight.Do", func(b *testing.B) {
		var g singleflight.Group
		var loads int
		fn := func() (any, error) {
			loads++ // under singleflight's exclusion for the key
			return load(ctx, "k")
		}
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err, _ := g.Do("k", fn); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(loads)/float64(b.N), "loads/op")
	})
}
