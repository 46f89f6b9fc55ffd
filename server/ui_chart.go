package server

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/spoolrun/spool/store"
)

// The overview's charts: inline SVG drawn on the server from the
// per-minute activity, so they need no script and no chart library, and
// take their colours from the page's CSS (dark mode included).

// charts are the overview's charts and their figures.
type charts struct {
	Throughput, Pickup template.HTML
	// Completed, Failed and Dead are the window's totals; P50 and P95 the
	// pickup latency over the window, in words.
	Completed, Failed, Dead int64
	P50, P95                string
	Minutes                 int
}

// minuteSum is one minute of every queue's activity.
type minuteSum struct {
	at                      time.Time
	completed, failed, dead int64
	pickup                  [store.NumPickupBuckets]int64
}

// chartsOf draws the window before now.
func chartsOf(rows []store.ActivityMinute, now time.Time, window time.Duration) *charts {
	n := int(window / time.Minute)
	start := now.Truncate(time.Minute).Add(-time.Duration(n-1) * time.Minute)
	mins := make([]minuteSum, n)
	for i := range mins {
		mins[i].at = start.Add(time.Duration(i) * time.Minute)
	}
	var total [store.NumPickupBuckets]int64
	c := &charts{Minutes: n}
	for _, r := range rows {
		i := int(r.Minute.Sub(start) / time.Minute)
		if i < 0 || i >= n {
			continue
		}
		m := &mins[i]
		m.completed += r.Completed
		m.failed += r.Failed
		m.dead += r.Dead
		c.Completed += r.Completed
		c.Failed += r.Failed
		c.Dead += r.Dead
		for b, v := range r.Pickup {
			m.pickup[b] += v
			total[b] += v
		}
	}
	c.P50, c.P95 = latencyText(quantile(total, 0.5)), latencyText(quantile(total, 0.95))
	c.Throughput = throughputSVG(mins)
	c.Pickup = pickupSVG(mins)
	return c
}

// quantile estimates the q-quantile of a pickup histogram, in ms, as the
// upper bound of the bucket that holds it; NaN when it is empty, +Inf
// when it is past the last bound.
func quantile(h [store.NumPickupBuckets]int64, q float64) float64 {
	var n int64
	for _, v := range h {
		n += v
	}
	if n == 0 {
		return math.NaN()
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i, v := range h {
		seen += v
		if seen >= rank {
			if i < len(store.PickupBounds) {
				return store.PickupBounds[i]
			}
			return math.Inf(1)
		}
	}
	return math.Inf(1)
}

func latencyText(ms float64) string {
	switch {
	case math.IsNaN(ms):
		return "–"
	case math.IsInf(ms, 1):
		return fmt.Sprintf("> %s", latencyText(store.PickupBounds[len(store.PickupBounds)-1]))
	case ms < 1000:
		return fmt.Sprintf("≤ %g ms", ms)
	}
	return fmt.Sprintf("≤ %g s", ms/1000)
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 600.0, 140.0
	chartPad       = 24.0 // room for the axis labels at the bottom
)

// throughputSVG draws completed (up) and failed plus dead (stacked above
// it) per minute as bars.
func throughputSVG(mins []minuteSum) template.HTML {
	var peak int64 = 1
	for _, m := range mins {
		peak = max(peak, m.completed+m.failed+m.dead)
	}
	var b strings.Builder
	svgOpen(&b, "Jobs completed and failed per minute")
	bw := chartW / float64(len(mins))
	plot := chartH - chartPad
	for i, m := range mins {
		x := float64(i) * bw
		hc := plot * float64(m.completed) / float64(peak)
		hf := plot * float64(m.failed+m.dead) / float64(peak)
		title := fmt.Sprintf("%s: %d completed, %d failed, %d dead", m.at.UTC().Format("15:04"), m.completed, m.failed, m.dead)
		fmt.Fprintf(&b, `<g><title>%s</title>`, template.HTMLEscapeString(title))
		fmt.Fprintf(&b, `<rect class="bar-ok" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x+0.5, plot-hc, bw-1, hc)
		if hf > 0 {
			fmt.Fprintf(&b, `<rect class="bar-fail" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x+0.5, plot-hc-hf, bw-1, hf)
		}
		fmt.Fprintf(&b, `<rect class="hit" x="%.1f" y="0" width="%.1f" height="%.1f"/></g>`, x, bw, plot)
	}
	axis(&b, mins, fmt.Sprintf("%d/min", peak))
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built here from numbers and escaped text
}

// pickupSVG draws the per-minute p50 and p95 pickup latency as lines on
// a log scale (1 ms .. 60 s).
func pickupSVG(mins []minuteSum) template.HTML {
	var b strings.Builder
	svgOpen(&b, "Pickup latency per minute, p50 and p95")
	bw := chartW / float64(len(mins))
	plot := chartH - chartPad
	lo, hi := math.Log10(1), math.Log10(store.PickupBounds[len(store.PickupBounds)-1]*2)
	y := func(ms float64) float64 {
		if math.IsInf(ms, 1) {
			ms = store.PickupBounds[len(store.PickupBounds)-1] * 2
		}
		return plot - plot*(math.Log10(max(ms, 1))-lo)/(hi-lo)
	}
	for _, gl := range []float64{10, 100, 1000, 10000} {
		fmt.Fprintf(&b, `<line class="grid" x1="0" x2="%g" y1="%.1f" y2="%.1f"/><text class="label" x="2" y="%.1f">%s</text>`,
			chartW, y(gl), y(gl), y(gl)-2, template.HTMLEscapeString(strings.TrimPrefix(latencyText(gl), "≤ ")))
	}
	for _, s := range []struct {
		q     float64
		class string
	}{{0.5, "line-p50"}, {0.95, "line-p95"}} {
		var pts []string
		for i, m := range mins {
			v := quantile(m.pickup, s.q)
			if math.IsNaN(v) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", float64(i)*bw+bw/2, y(v)))
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline class="%s" points="%s"/>`, s.class, strings.Join(pts, " "))
		}
	}
	for i, m := range mins {
		title := fmt.Sprintf("%s: p50 %s, p95 %s", m.at.UTC().Format("15:04"), latencyText(quantile(m.pickup, 0.5)), latencyText(quantile(m.pickup, 0.95)))
		fmt.Fprintf(&b, `<rect class="hit" x="%.1f" y="0" width="%.1f" height="%.1f"><title>%s</title></rect>`, float64(i)*bw, bw, plot, template.HTMLEscapeString(title))
	}
	axis(&b, mins, "")
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built here from numbers and escaped text
}

func svgOpen(b *strings.Builder, label string) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s" preserveAspectRatio="none">`, chartW, chartH, template.HTMLEscapeString(label))
}

// axis labels the first, middle and last minutes, and the peak.
func axis(b *strings.Builder, mins []minuteSum, peak string) {
	plot := chartH - chartPad
	fmt.Fprintf(b, `<line class="axis" x1="0" x2="%g" y1="%.1f" y2="%.1f"/>`, chartW, plot, plot)
	bw := chartW / float64(len(mins))
	for _, i := range []int{0, len(mins) / 2, len(mins) - 1} {
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case len(mins) - 1:
			anchor = "end"
		}
		x := float64(i)*bw + bw/2
		if i == 0 {
			x = 0
		} else if i == len(mins)-1 {
			x = chartW
		}
		fmt.Fprintf(b, `<text class="label" x="%.1f" y="%g" text-anchor="%s">%s UTC</text>`, x, chartH-6, anchor, mins[i].at.UTC().Format("15:04"))
	}
	if peak != "" {
		fmt.Fprintf(b, `<text class="label" x="%g" y="12" text-anchor="end">%s</text>`, chartW-2, template.HTMLEscapeString(peak))
	}
}
