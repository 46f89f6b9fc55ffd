package sqlite

import (
	"strings"

	"github.com/spoolrun/spool/store"
)

// filter is the WHERE clause of a job filter (store.ListParams, checked),
// for List, CountJobs and the bulk actions.
type filter struct {
	where []string
	args  []any
}

// jobFilter returns the clauses of f's filter fields on the jobs named
// alias ("" for the table itself). States are written as literals (they
// are checked names), so the planner can match them against the partial
// indexes' predicates; the rest are parameters.
func jobFilter(f store.ListParams, alias string) *filter {
	w := &filter{}
	col := func(name string) string { return alias + name }
	if f.Queue != "" {
		w.add(col("queue")+" = ?", f.Queue)
	}
	if f.Kind != "" {
		w.add(col("kind")+" = ?", f.Kind)
	}
	if f.Tenant != "" {
		w.add(col("tenant")+" = ?", f.Tenant)
	}
	switch len(f.States) {
	case 0:
	case 1:
		// An equality with a literal is what SQLite matches with the
		// partial indexes' predicates (an IN list is not).
		w.add(col("state") + " = '" + string(f.States[0]) + "'")
	default:
		w.add(col("state") + " IN (" + stateList(f.States) + ")")
	}
	if f.UniqueKey != "" {
		w.add(col("unique_key")+" = ?", f.UniqueKey)
	}
	if f.OrderingKey != "" {
		w.add(col("ordering_key")+" = ?", f.OrderingKey)
	}
	if !f.CreatedAfter.IsZero() {
		w.add(col("created_at")+" >= ?", f.CreatedAfter.UnixMicro())
	}
	if !f.CreatedBefore.IsZero() {
		w.add(col("created_at")+" < ?", f.CreatedBefore.UnixMicro())
	}
	return w
}

func (w *filter) add(clause string, args ...any) {
	w.where = append(w.where, clause)
	w.args = append(w.args, args...)
}

// sql returns the clauses joined by AND, or "1" when there are none.
func (w *filter) sql() string {
	if len(w.where) == 0 {
		return "1"
	}
	return strings.Join(w.where, " AND ")
}

// stateList is states as a list of SQL literals: 'available', 'dead'.
// States are checked names of letters, so they need no escaping.
func stateList(states []store.State) string {
	var b strings.Builder
	for i, s := range states {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("'" + string(s) + "'")
	}
	return b.String()
}
