package postgres

import (
	"strconv"
	"strings"

	"github.com/spoolrun/spool/store"
)

// filter builds a WHERE clause with numbered parameters, for List,
// CountJobs and the bulk actions. Only the fields a filter sets become
// clauses, so each combination is a statement of its own that the planner
// plans for what it filters on (and pgx caches), never a catch-all whose
// "parameter is empty or column equals it" terms a generic plan cannot
// use an index for.
type filter struct {
	where []string
	args  []any
}

// param adds an argument and returns its placeholder.
func (w *filter) param(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *filter) add(clause string) { w.where = append(w.where, clause) }

// sql returns the clauses joined by AND, or "true" when there are none.
func (w *filter) sql() string {
	if len(w.where) == 0 {
		return "true"
	}
	return strings.Join(w.where, " AND ")
}

// jobs adds the clauses of f's filter fields (checked) on the jobs named
// alias ("" for the table itself) and returns them joined. States are
// literals (checked names), so the planner matches them with the partial
// indexes' predicates even in a generic plan.
func (w *filter) jobs(f store.ListParams, alias string) string {
	start := len(w.where)
	col := func(name string) string { return alias + name }
	if f.Queue != "" {
		w.add(col("queue") + " = " + w.param(f.Queue))
	}
	if f.Kind != "" {
		w.add(col("kind") + " = " + w.param(f.Kind))
	}
	if f.Tenant != "" {
		w.add(col("tenant") + " = " + w.param(f.Tenant))
	}
	switch len(f.States) {
	case 0:
	case 1:
		w.add(col("state") + " = '" + string(f.States[0]) + "'")
	default:
		w.add(col("state") + " IN (" + stateList(f.States) + ")")
	}
	if f.UniqueKey != "" {
		w.add(col("unique_key") + " = " + w.param(f.UniqueKey))
	}
	if f.OrderingKey != "" {
		w.add(col("ordering_key") + " = " + w.param(f.OrderingKey))
	}
	if !f.CreatedAfter.IsZero() {
		w.add(col("created_at") + " >= " + w.param(f.CreatedAfter))
	}
	if !f.CreatedBefore.IsZero() {
		w.add(col("created_at") + " < " + w.param(f.CreatedBefore))
	}
	if len(w.where) == start {
		return "true"
	}
	return strings.Join(w.where[start:], " AND ")
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
