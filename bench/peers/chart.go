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
)

// WriteChart draws the report as a PNG at path: on the left, grouped bars
// of burn-down and enqueue jobs/s per system; on the right, each system's
// continuous p99 enqueue→start latency. Systems that were skipped are left
// out; an incomplete run is labelled so.
func WriteChart(r *Report, path string) error {
	var rows []Row
	for _, row := range r.Rows {
		if row.Skipped == "" {
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		return fmt.Errorf("chart: no system was run")
	}
	names := make([]string, len(rows))
	for i, row := range rows {
		names[i] = strings.Replace(row.System, " (", "\n(", 1)
		if !row.Durable {
			names[i] += "\n[" + row.Caveat + "]"
		}
	}

	left, err := throughputPlot(rows, names, r.Config)
	if err != nil {
		return err
	}
	right, err := latencyPlot(rows, names, r.Config)
	if err != nil {
		return err
	}
	img := vgimg.NewWith(vgimg.UseWH(15*vg.Inch, 6*vg.Inch), vgimg.UseDPI(96))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Inch / 3, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	canvases := plot.Align([][]*plot.Plot{{left, right}}, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])

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
func splitBars(rows []Row, vals plotter.Values, w vg.Length, col, grey color.Color) (durable, other *plotter.BarChart, err error) {
	dv := make(plotter.Values, len(vals))
	ov := make(plotter.Values, len(vals))
	for i, row := range rows {
		if row.Durable {
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

func throughputPlot(rows []Row, names []string, cfg Config) (*plot.Plot, error) {
	p := newBarPlot(fmt.Sprintf("Throughput, %s jobs, %d workers (higher is better)", number(float64(cfg.Jobs), 0), cfg.Workers), "jobs/s", names)
	const w = vg.Length(22)
	anyGrey := false
	var texts []plot.Plotter
	for gi, g := range []struct {
		label       string
		color, grey color.Color
		get         func(Row) *Measure
	}{
		{"burn-down", colorBurnDown, colorBurnDownGrey, func(r Row) *Measure { return r.BurnDown }},
		{fmt.Sprintf("enqueue (batches of %d)", cfg.Batch), colorEnqueue, colorEnqueueGrey, func(r Row) *Measure { return r.Enqueue }},
	} {
		vals := make(plotter.Values, len(rows))
		labels := make([]string, len(rows))
		for i, row := range rows {
			if m := g.get(row); m != nil {
				vals[i] = m.JobsPerSec
				labels[i] = number(m.JobsPerSec, 0)
				if !m.OK() {
					labels[i] += "\n(incomplete)"
				}
			}
		}
		bars, grey, err := splitBars(rows, vals, w, g.color, g.grey)
		if err != nil {
			return nil, err
		}
		bars.Offset = w*vg.Length(gi) - w/2
		grey.Offset = bars.Offset
		p.Add(bars, grey)
		p.Legend.Add(g.label, bars)
		if slices.ContainsFunc(rows, func(r Row) bool { return !r.Durable }) {
			anyGrey = true
			if gi == 1 {
				p.Legend.Add("grey: no fsync per acknowledged write", grey)
			}
		}
		l, err := barLabels(vals, labels, bars.Offset)
		if err != nil {
			return nil, err
		}
		texts = append(texts, l)
	}
	// Labels last, so no bar hides one.
	for _, l := range texts {
		p.Add(l)
	}
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	top := 1.15
	if anyGrey {
		top = 1.25 // room for the legend's third line
	}
	p.Y.Max = maxOf(rows, func(r Row) float64 {
		return max(jobsPerSec(r.BurnDown), jobsPerSec(r.Enqueue))
	}) * top
	return p, nil
}

func latencyPlot(rows []Row, names []string, cfg Config) (*plot.Plot, error) {
	p := newBarPlot(fmt.Sprintf("Continuous %s jobs/s: enqueue→start p99 (lower is better)", number(float64(cfg.Rate), 0)), "p99 latency, ms", names)
	p99 := make([]float64, len(rows))
	for i, row := range rows {
		if m := row.Continuous; m != nil && m.LatencyMS != nil {
			p99[i] = m.LatencyMS.P99
		}
	}
	// One runaway system would flatten every other bar: cap the axis at ten
	// times the median and let the label carry the real value.
	sorted := slices.Clone(p99)
	slices.Sort(sorted)
	limit := slices.Max(p99)
	if med := sorted[len(sorted)/2]; med > 0 && limit > 10*med {
		limit = 10 * med
	}
	vals := make(plotter.Values, len(rows))
	labels := make([]string, len(rows))
	for i, row := range rows {
		vals[i] = min(p99[i], limit)
		labels[i] = number(p99[i], 1) + " ms"
		if p99[i] > limit {
			labels[i] += " (axis cut)"
		}
		if m := row.Continuous; m != nil && !m.OK() {
			labels[i] += "\n(incomplete)"
		} else if m != nil && m.Note != "" {
			labels[i] += "\n(fell behind)"
		}
	}
	bars, grey, err := splitBars(rows, vals, 30, colorP99, colorP99Grey)
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

func jobsPerSec(m *Measure) float64 {
	if m == nil {
		return 0
	}
	return m.JobsPerSec
}

func maxOf(rows []Row, f func(Row) float64) float64 {
	v := 1.0
	for _, r := range rows {
		v = max(v, f(r))
	}
	return v
}
