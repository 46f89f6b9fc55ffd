package server

import (
	"testing"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

func TestQueueCountShowsTheCap(t *testing.T) {
	q := wire.QueueStats{Counts: map[store.State]int{store.StateDead: store.StatsCountCap, store.StateAvailable: 7},
		Capped: []store.State{store.StateDead}}
	if got := queueCount(q, store.StateDead); got != "10000+" {
		t.Errorf("capped dead count shows %q, want 10000+", got)
	}
	if got := queueCount(q, store.StateAvailable); got != "7" {
		t.Errorf("available count shows %q, want 7", got)
	}
	if got := queueCount(q, store.StateRunning); got != "0" {
		t.Errorf("running count shows %q, want 0", got)
	}
}
