package sqlite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// enqueueUntilKilled is the child half of
// TestAcknowledgedEnqueuesSurviveSIGKILL (see TestMain): enqueue from several
// goroutines and print each acknowledged ID, until killed.
func enqueueUntilKilled(path string) {
	s, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				n := 1 + (g+i)%5
				ps := make([]store.EnqueueParams, n)
				for k := range ps {
					ps[k] = store.EnqueueParams{Kind: "k"}
				}
				res, err := s.Enqueue(context.Background(), ps)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				for _, r := range res {
					fmt.Fprintln(out, r.ID)
				}
				out.Flush() // the ID leaves the process only after the enqueue was acknowledged
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// A producer killed with SIGKILL at random points never loses a job whose
// enqueue was acknowledged: every ID it printed is in the file afterwards.
func TestAcknowledgedEnqueuesSurviveSIGKILL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)
	acked := 0
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SPOOL_ENQUEUE_CHILD="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var ids []string
		done := make(chan struct{})
		first := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if ids = append(ids, sc.Text()); len(ids) == 1 {
					close(first)
				}
			}
		}()
		// Kill at a random point after the child's first acknowledgement:
		// a loaded machine may take a while to start it, and a kill before
		// any enqueue would check nothing.
		select {
		case <-first:
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("round %d: the child acknowledged nothing in a minute", round)
		}
		time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond) // a random point in the child's run, not a synchronisation
		// ErrProcessDone: the child already exited (it does only on error).
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatalf("round %d: kill: %v", round, err)
		}
		<-done
		_ = cmd.Wait() // "signal: killed" is the expected outcome

		s, err := sqlite.Open(path, sqlite.Config{})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		for _, text := range ids {
			id, err := store.ParseID(text)
			if err != nil {
				continue // a line cut by the kill was never fully acknowledged
			}
			if _, err := s.Get(context.Background(), id); err != nil {
				t.Errorf("round %d: acknowledged job %s: %v", round, id, err)
			}
		}
		s.Close()
		acked += len(ids)
	}
	if acked == 0 {
		t.Fatal("the producer acknowledged nothing; the test proved nothing")
	}
	t.Logf("%d acknowledged enqueues checked across 8 kills", acked)
}
