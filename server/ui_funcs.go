package server

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// uiFuncs are the functions the dashboard's templates call.
var uiFuncs = template.FuncMap{
	"when":       when,
	"ago":        ago,
	"secs":       seconds,
	"states":     func() []store.State { return store.States },
	"count":      func(m map[store.State]int, s store.State) int { return m[s] },
	"countq":     queueCount,
	"live":       func(s store.State) bool { return s.Live() },
	"jobsURL":    jobsURL,
	"schedURL":   scheduleRef,
	"pathEscape": url.PathEscape,
	"list":       func(s ...string) []string { return s },
}

// queueCount shows a queue's count of a state, "10000+" when the store
// stopped counting at its cap (store.StatsCountCap).
func queueCount(q wire.QueueStats, s store.State) string {
	n := strconv.Itoa(q.Counts[s])
	if slices.Contains(q.Capped, s) {
		n += "+"
	}
	return n
}

// moment returns a time from a time.Time or *time.Time; zero for nil.
func moment(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case *time.Time:
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

// when writes a time in UTC, to the second; "–" for none.
func when(v any) string {
	t := moment(v)
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago says how long before now (or after) a time is.
func ago(v any) string {
	t := moment(v)
	if t.IsZero() {
		return "–"
	}
	d := time.Since(t)
	if d < 0 {
		return "in " + short(-d)
	}
	return short(d) + " ago"
}

// seconds writes a number of seconds for people.
func seconds(s float64) string {
	if s <= 0 || math.IsNaN(s) {
		return "–"
	}
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return short(time.Duration(s * float64(time.Second)))
}

func short(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// jobsURL is the link to the job list of a queue, in a state when given.
func jobsURL(queue string, state store.State) string {
	v := url.Values{"queue": {queue}}
	if state != "" {
		v.Set("state", string(state))
	}
	return "/jobs?" + v.Encode()
}
