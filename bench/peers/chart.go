package peers

import (
	"fmt"
	"image/color"
	"os"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Bars of systems that fsync every acknowledged write are in colour; bars
// of the others are grey, so unequal durability shows at a glance.
var (
	colorBurnDown     = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorEnqueue      = color.RGBA{R: 0xaa, G: 0xc8, B: 0xe4, A: 0xff}
	colorP99          = color.RGBA{R: 0xd6, G: 0x60, B: 0x1c, A: 0xff}
	colorBurnDownGrey = color.RGBA{R: 0x70, G: 0x70, B: 0x70, A: 0xff}
	colorEnqueueGrey  = color.RGBA{R: 0xc8, G: 0xc8, B: 0xc8, A: 0xff}
	colorP99Grey      = color.RGBA{R: 0x9a, G: 0x9a, B: 0x9a, A: 0xff}
	colorMean         = color.RGBA{R: 0x5b, G: 0x9b, B: 0xd0, A: 0xff}
	colorMeanGrey     = color.RGBA{R: 0x9c, G: 0x9c, B: 0x9c, A: 0xff}
)

// WriteChart draws the report as a PNG at path. Job rows: on the left,
// grouped bars of burn-down and enqueue jobs/s per system; on the right,
// each system's continuous p99 enqueue→start latency. Event rows, below
// them (or alone when only the events workloads ran): on the left, grouped
// bars of the slowest and the mean subscription's delivered events/s and
// the publish events/s; on the right, the continuous p99 publish→start
// latency. Systems that were skipped are left out; an incomplete run is
// labelled so.
func WriteChart(r *Report, path string) error {
	var panels [][]*plot.Plot
	if rows := slices.DeleteFunc(slices.Clone(r.Rows), func(r Row) bool { return r.Skipped != "" }); len(rows) > 0 {
		left, right, err := jobPanels(rows, r.Config)
		if err != nil {
			return err
		}
		panels = append(panels, []*plot.Plot{left, right})
	}
	if rows := slices.DeleteFunc(slices.Clone(r.Events), func(r EventRow) bool { return r.Skipped != "" }); len(rows) > 0 {
		left, right, err := eventPanels(rows, r.Config)
		if err != nil {
			return err
		}
		panels = append(panels, []*plot.Plot{left, right})
	}
	if len(panels) == 0 {
		return fmt.Errorf("chart: no system was run")
	}

	img := vgimg.NewWith(vgimg.UseWH(15*vg.Inch, vg.Length(len(panels))*6*vg.Inch), vgimg.UseDPI(96))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 2, PadX: vg.Inch / 3, PadY: vg.Inch / 3, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	canvases := plot.Align(panels, tiles, dc)
	for i, row := range panels {
		for j, p := range row {
			p.Draw(canvases[i][j])
		}
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// axisNames are the systems' names as bar labels: the parenthesis on a
// line of its own, and the caveat of a system that does not fsync every
// acknowledged write below.
func axisNames(systems []string, infos []Info) []string {
	names := make([]string, len(systems))
	for i, s := range systems {
		names[i] = strings.Replace(s, " (", "\n(", 1)
		if !infos[i].Durable {
			names[i] += "\n[" + infos[i].Caveat + "]"
		}
	}
	return names
}

func jobPanels(rows []Row, cfg Config) (left, right *plot.Plot, err error) {
	systems := make([]string, len(rows))
	infos := make([]Info, len(rows))
	durable := make([]bool, len(rows))
	for i, row := range rows {
		systems[i], infos[i], durable[i] = row.System, row.Info, row.Durable
	}
	names := axisNames(systems, infos)
	measure := func(get func(Row) *Measure) barGroup {
		g := barGroup{vals: make(plotter.Values, len(rows)), labels: make([]string, len(rows))}
		for i, row := range rows {
			if m := get(row); m != nil {
				g.vals[i] = m.JobsPerSec
				g.labels[i] = number(m.JobsPerSec, 0)
				if !m.OK() {
					g.labels[i] += "\n(incomplete)"
				}
			}
		}
		return g
	}
	bd := measure(func(r Row) *Measure { return r.BurnDown })
	bd.label, bd.color, bd.grey = "burn-down", colorBurnDown, colorBurnDownGrey
	enq := measure(func(r Row) *Measure { return r.Enqueue })
	enq.label, enq.color, enq.grey = fmt.Sprintf("enqueue (batches of %d)", cfg.Batch), colorEnqueue, colorEnqueueGrey
	left, err = groupedBarPlot(fmt.Sprintf("Throughput, %s jobs, %d workers (higher is better)", number(float64(cfg.Jobs), 0), cfg.Workers),
		"jobs/s", names, durable, []barGroup{bd, enq})
	if err != nil {
		return nil, nil, err
	}
	p99 := make([]float64, len(rows))
	flags := make([]string, len(rows))
	for i, row := range rows {
		if m := row.Continuous; m != nil {
			if m.LatencyMS != nil {
				p99[i] = m.LatencyMS.P99
			}
			if !m.OK() {
				flags[i] = "incomplete"
			} else if m.Note != "" {
				flags[i] = "fell behind"
			}
		}
	}
	right, err = p99Plot(fmt.Sprintf("Continuous %s jobs/s: enqueue→start p99 (lower is better)", number(float64(cfg.Rate), 0)), names, durable, p99, flags)
	return left, right, err
}

func eventPanels(rows []EventRow, cfg Config) (left, right *plot.Plot, err error) {
	systems := make([]string, len(rows))
	infos := make([]Info, len(rows))
	durable := make([]bool, len(rows))
	for i, row := range rows {
		systems[i], infos[i], durable[i] = row.System, row.Info, row.Durable
	}
	names := axisNames(systems, infos)
	// An incomplete run is said under the system's name: a third line
	// above three narrow bars would overlap its neighbours.
	leftNames := slices.Clone(names)
	for i, row := range rows {
		switch {
		case row.Publish != nil && !row.Publish.OK():
			leftNames[i] += "\n(publish incomplete)"
		case row.BurnDown != nil && !row.BurnDown.OK():
			leftNames[i] += "\n(burn-down incomplete)"
		}
	}
	group := func(label string, col, grey color.Color, get func(EventRow) (v float64, present bool)) barGroup {
		g := barGroup{label: label, color: col, grey: grey, vals: make(plotter.Values, len(rows)), labels: make([]string, len(rows))}
		for i, row := range rows {
			if v, present := get(row); present {
				g.vals[i] = v
				g.labels[i] = number(v, 0)
			}
		}
		return g
	}
	slowest := group(fmt.Sprintf("delivered per subscription, slowest of %d", cfg.Subscriptions), colorBurnDown, colorBurnDownGrey,
		func(r EventRow) (float64, bool) { return burnDownOf(r).Slowest, r.BurnDown != nil })
	mean := group("delivered per subscription, mean", colorMean, colorMeanGrey,
		func(r EventRow) (float64, bool) { return burnDownOf(r).Mean, r.BurnDown != nil })
	pub := group(fmt.Sprintf("publish (batches of %d)", cfg.Batch), colorEnqueue, colorEnqueueGrey,
		func(r EventRow) (float64, bool) {
			if r.Publish == nil {
				return 0, false
			}
			return r.Publish.EventsPerSec, true
		})
	left, err = groupedBarPlot(fmt.Sprintf("Events: %s events, %d subscriptions × %d workers (higher is better)", number(float64(cfg.Events), 0), cfg.Subscriptions, cfg.Workers),
		"events/s", leftNames, durable, []barGroup{slowest, mean, pub})
	if err != nil {
		return nil, nil, err
	}
	p99 := make([]float64, len(rows))
	flags := make([]string, len(rows))
	for i, row := range rows {
		if m := row.Continuous; m != nil {
			if m.LatencyMS != nil {
				p99[i] = m.LatencyMS.P99
			}
			if !m.OK() {
				flags[i] = "incomplete"
			} else if m.Published < m.Events {
				flags[i] = "fell behind"
			}
		}
	}
	right, err = p99Plot(fmt.Sprintf("Events continuous %s events/s: publish→start p99, every delivery (lower is better)", number(float64(cfg.Rate), 0)),
		names, durable, p99, flags)
	return left, right, err
}

func burnDownOf(r EventRow) EventBurnDown {
	if r.BurnDown == nil {
		return EventBurnDown{}
	}
	return *r.BurnDown
}

func newBarPlot(title, ylabel string, names []string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.Y.Label.Text = ylabel
	p.Y.Label.TextStyle.Font.Size = vg.Points(11)
	p.Y.Tick.Label.Font.Size = vg.Points(10)
	p.X.Tick.Label.Font.Size = vg.Points(10)
	p.NominalX(names...)
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
	p.Add(plotter.NewGrid())
	return p
}

// plainTicks are the default ticks labelled with thousands separators
// instead of a fixed two decimals.
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = number(ticks[i].Value, 0)
		}
	}
	return ticks
}

// splitBars returns two bar charts of vals: one with the durable systems'
// bars in col, one with the others' in grey, each zero where the other
// has its bar.
func splitBars(isDurable []bool, vals plotter.Values, w vg.Length, col, grey color.Color) (durable, other *plotter.BarChart, err error) {
	dv := make(plotter.Values, len(vals))
	ov := make(plotter.Values, len(vals))
	for i, d := range isDurable {
		if d {
			dv[i] = vals[i]
		} else {
			ov[i] = vals[i]
		}
	}
	if durable, err = plotter.NewBarChart(dv, w); err != nil {
		return nil, nil, err
	}
	if other, err = plotter.NewBarChart(ov, w); err != nil {
		return nil, nil, err
	}
	durable.Color, other.Color = col, grey
	durable.LineStyle.Width, other.LineStyle.Width = 0, 0
	return durable, other, nil
}

// barGroup is one series of a grouped bar plot: a value and a label per
// system.
type barGroup struct {
	label       string
	color, grey color.Color
	vals        plotter.Values
	labels      []string
}

// groupedBarPlot draws the groups side by side for each system, each label
// above its bar; the bars of systems that are not durable are grey.
func groupedBarPlot(title, ylabel string, names []string, durable []bool, groups []barGroup) (*plot.Plot, error) {
	p := newBarPlot(title, ylabel, names)
	w := vg.Length(22)
	if len(groups) > 2 {
		w = 24 // three labels of up to six digits side by side
	}
	anyGrey := slices.Contains(durable, false)
	var texts []plot.Plotter
	top := 1.0
	for gi, g := range groups {
		bars, grey, err := splitBars(durable, g.vals, w, g.color, g.grey)
		if err != nil {
			return nil, err
		}
		bars.Offset = w*vg.Length(gi) - w*vg.Length(len(groups)-1)/2
		grey.Offset = bars.Offset
		p.Add(bars, grey)
		p.Legend.Add(g.label, bars)
		if anyGrey && gi == len(groups)-1 {
			p.Legend.Add("grey: no fsync per acknowledged write", grey)
		}
		l, err := barLabels(g.vals, g.labels, bars.Offset)
		if err != nil {
			return nil, err
		}
		texts = append(texts, l)
		for _, v := range g.vals {
			top = max(top, v)
		}
	}
	// Labels last, so no bar hides one.
	for _, l := range texts {
		p.Add(l)
	}
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	// Room above the bars for the legend, a line each, and more for the
	// longer grey line.
	room := 1.05 + 0.05*float64(len(groups))
	if anyGrey {
		room += 0.10
	}
	p.Y.Max = top * room
	return p, nil
}

// p99Plot draws each system's p99 latency; flags, when not empty, are
// shown in brackets under the value.
func p99Plot(title string, names []string, durable []bool, p99 []float64, flags []string) (*plot.Plot, error) {
	p := newBarPlot(title, "p99 latency, ms", names)
	// One runaway system would flatten every other bar: cap the axis at ten
	// times the median and let the label carry the real value.
	sorted := slices.Clone(p99)
	slices.Sort(sorted)
	limit := slices.Max(p99)
	if med := sorted[len(sorted)/2]; med > 0 && limit > 10*med {
		limit = 10 * med
	}
	vals := make(plotter.Values, len(p99))
	labels := make([]string, len(p99))
	for i := range p99 {
		vals[i] = min(p99[i], limit)
		labels[i] = number(p99[i], 1) + " ms"
		if p99[i] > limit {
			labels[i] += " (axis cut)"
		}
		if flags[i] != "" {
			labels[i] += "\n(" + flags[i] + ")"
		}
	}
	bars, grey, err := splitBars(durable, vals, 30, colorP99, colorP99Grey)
	if err != nil {
		return nil, err
	}
	p.Add(bars, grey)
	l, err := barLabels(vals, labels, 0)
	if err != nil {
		return nil, err
	}
	p.Add(l)
	p.Y.Max = max(limit, 1) * 1.2
	return p, nil
}

// barLabels puts each label centred just above its bar.
func barLabels(vals plotter.Values, labels []string, offset vg.Length) (*plotter.Labels, error) {
	xys := make(plotter.XYs, len(vals))
	for i, v := range vals {
		xys[i] = plotter.XY{X: float64(i), Y: v}
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = text.XCenter
		l.TextStyle[i].YAlign = text.YBottom
		l.TextStyle[i].Font.Size = vg.Points(8)
	}
	l.Offset = vg.Point{X: offset, Y: 3}
	return l, nil
}
