package settle

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// nopStore accepts every verdict after an optional fixed delay that stands
// in for a durable commit.
type nopStore struct {
	store.Store
	commit time.Duration
}

func (n nopStore) Settle(_ context.Context, vs []store.Verdict) ([]error, error) {
	if n.commit > 0 {
		time.Sleep(n.commit)
	}
	return make([]error, len(vs)), nil
}

// BenchmarkSettler measures verdict throughput through the settler and the
// batch sizes it reaches:
//
//   - submit/*: producers hand verdicts over with Submit (fire and forget),
//     as fast as they can;
//   - wait/*: a fixed number of worker slots each wait for their verdict to
//     be durable (SubmitWait) before the next, as executors that hold a slot
//     until the settle is done would.
//
// wait-idleflush/* is wait/* with Config.FlushWhenIdle. commit=0 is a store that answers at once (the settler's own overhead);
// commit=1ms models one durable commit per call.
func BenchmarkSettler(b *testing.B) {
	for _, commit := range []time.Duration{0, time.Millisecond} {
		b.Run(fmt.Sprintf("submit/commit=%v", commit), func(b *testing.B) {
			s := benchSettler(b, Config{Store: nopStore{commit: commit}})
			v := store.Verdict{ID: store.NewID(), Token: 1, Outcome: store.Complete}
			lockedUntil := time.Now().Add(time.Hour)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Submit(context.Background(), v, lockedUntil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			benchStop(b, s)
		})
		for _, w := range []struct {
			slots int
			idle  bool
		}{{1, false}, {100, false}, {1000, false}, {1, true}, {100, true}, {1000, true}} {
			slots := w.slots
			name := fmt.Sprintf("wait/slots=%d/commit=%v", slots, commit)
			if w.idle {
				name = fmt.Sprintf("wait-idleflush/slots=%d/commit=%v", slots, commit)
			}
			b.Run(name, func(b *testing.B) {
				s := benchSettler(b, Config{Store: nopStore{commit: commit}, FlushWhenIdle: w.idle})
				v := store.Verdict{ID: store.NewID(), Token: 1, Outcome: store.Complete}
				lockedUntil := time.Now().Add(time.Hour)
				b.ResetTimer()
				var wg sync.WaitGroup
				for i := range slots {
					n := b.N / slots
					if i < b.N%slots {
						n++
					}
					wg.Go(func() {
						for range n {
							if err := s.SubmitWait(context.Background(), v, lockedUntil); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				benchStop(b, s)
			})
		}
	}
}

func benchSettler(b *testing.B, cfg Config) *Settler {
	b.Helper()
	s := New(cfg)
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchStop flushes what is left (inside the timed region) and reports
// throughput and batching.
func benchStop(b *testing.B, s *Settler) {
	b.Helper()
	if err := s.Stop(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := s.Stats()
	if st.Settled != int64(b.N) {
		b.Fatalf("settled %d of %d verdicts", st.Settled, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verdicts/s")
	b.ReportMetric(st.AverageBatch(), "verdicts/flush")
	b.ReportMetric(float64(st.LargestBatch), "max-batch")
}
