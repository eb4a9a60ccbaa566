package benchplot

import (
	"fmt"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Size of every PNG: readable in a README at its natural width.
const width, height = 18 * vg.Centimeter, 10 * vg.Centimeter

// draw writes f as a PNG at path.
func draw(f *Figure, path string) error {
	p := plot.New()
	p.Title.Text = f.Title
	p.X.Label.Text = f.XLabel
	p.Y.Label.Text = f.YLabel
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = 9
	p.Legend.YOffs = -vg.Millimeter * 4 // below the title
	p.Add(plotter.NewGrid())
	var err error
	switch f.Kind {
	case KindCDF:
		err = drawCDF(p, f)
	case KindLines:
		err = drawLines(p, f)
	case KindBars:
		err = drawBars(p, f)
	default:
		err = fmt.Errorf("unknown kind %q", f.Kind)
	}
	if err != nil {
		return err
	}
	return p.Save(width, height, path)
}

// drawCDF: the share of samples at or below each value, on a log axis
// (secretfs's milliseconds and kubelet's minute share one figure).
func drawCDF(p *plot.Plot, f *Figure) error {
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1.02
	// Bottom middle: right of secretfs's milliseconds, left of kubelet's
	// minute.
	p.Legend.Top, p.Legend.Left = false, true
	p.Legend.XOffs, p.Legend.YOffs = width*0.34, height/4
	var vs []any
	for _, name := range f.Order {
		s := slices.Sorted(slices.Values(f.Series[name].Samples))
		pts := make(plotter.XYs, len(s))
		for i, v := range s {
			pts[i] = plotter.XY{X: v, Y: float64(i+1) / float64(len(s))}
		}
		vs = append(vs, fmt.Sprintf("%s (n=%d)", name, len(s)), pts)
	}
	if err := plotutil.AddLines(p, vs...); err != nil {
		return err
	}
	// Room on both sides: a curve at the very edge is hard to read.
	p.X.Min, p.X.Max = p.X.Min/2, p.X.Max*2
	return nil
}

func drawLines(p *plot.Plot, f *Figure) error {
	p.Legend.Left = true
	var vs []any
	for _, name := range f.Order {
		s := f.Series[name]
		pts := make(plotter.XYs, len(s.X))
		for i := range s.X {
			pts[i] = plotter.XY{X: s.X[i], Y: s.Y[i]}
		}
		vs = append(vs, name, pts)
	}
	if err := plotutil.AddLinePoints(p, vs...); err != nil {
		return err
	}
	p.Y.Min, p.Y.Max = 0, p.Y.Max*1.25
	return nil
}

// drawBars: one bar per series in each group, side by side.
func drawBars(p *plot.Plot, f *Figure) error {
	const bar = 1 * vg.Centimeter
	n := len(f.Order)
	for i, name := range f.Order {
		bc, err := plotter.NewBarChart(plotter.Values(f.Series[name].Y), bar)
		if err != nil {
			return fmt.Errorf("series %q: %w", name, err)
		}
		bc.Color = plotutil.Color(i)
		bc.LineStyle.Width = 0
		bc.Offset = vg.Length(2*i-n+1) * bar / 2
		p.Add(bc)
		p.Legend.Add(name, bc)
	}
	p.NominalX(f.Labels...)
	p.X.Min, p.X.Max = -0.5, float64(len(f.Labels))-0.5
	// Headroom for the legend above the bars.
	p.Y.Min, p.Y.Max = 0, p.Y.Max*1.25
	p.Legend.Left = true
	return nil
}
