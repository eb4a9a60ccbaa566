package benchplot

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecordKeepsOtherSeries: a second series of a figure is drawn beside
// the first (runs of different benchmarks meet in one figure), one of the
// same name replaces it, and the PNG is a real image.
func TestRecordKeepsOtherSeries(t *testing.T) {
	dir := t.TempDir()
	cdf := Figure{Kind: KindCDF, Title: "update latency", XLabel: "seconds", YLabel: "share"}
	for _, c := range []struct {
		series  string
		samples []float64
	}{
		{"secretfs", []float64{0.002, 0.003, 0.001}},
		{"kubelet", []float64{61, 75, 90}},
		{"secretfs", []float64{0.004, 0.005}},
	} {
		if err := Record(dir, "latency", cdf, c.series, Series{Source: "test", Samples: c.samples}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := load(filepath.Join(dir, "latency.json"))
	if err != nil || f == nil {
		t.Fatalf("load: %v, %v", f, err)
	}
	if strings.Join(f.Order, ",") != "secretfs,kubelet" || len(f.Series["secretfs"].Samples) != 2 {
		t.Errorf("stored order %q, secretfs samples %v; want secretfs (replaced: 2 samples) then kubelet", f.Order, f.Series["secretfs"].Samples)
	}
	b, err := os.ReadFile(filepath.Join(dir, "latency.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("latency.png: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 300 || r.Dy() < 200 {
		t.Errorf("latency.png is %v, want a readable figure", r)
	}
}

func TestRecordDrawsEveryKind(t *testing.T) {
	dir := t.TempDir()
	lines := Figure{Kind: KindLines, Title: "RSS", XLabel: "volumes", YLabel: "MiB"}
	if err := Record(dir, "rss", lines, "plugin", Series{X: []float64{0, 100, 1000}, Y: []float64{37, 45, 55}}); err != nil {
		t.Fatal(err)
	}
	bars := Figure{Kind: KindBars, Title: "reads", YLabel: "ops/s", Labels: []string{"read", "stat"}}
	for _, s := range []string{"tmpfs", "secretfs"} {
		if err := Record(dir, "read", bars, s, Series{Y: []float64{100000, 200000}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"rss.png", "read.png"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
}

// TestRecordRefusesBadSeries: nothing is stored or drawn from a series
// that does not fit its figure.
func TestRecordRefusesBadSeries(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct {
		f Figure
		s Series
	}{
		"no-samples":    {Figure{Kind: KindCDF}, Series{}},
		"zero-latency":  {Figure{Kind: KindCDF}, Series{Samples: []float64{0.1, 0}}},
		"uneven-lines":  {Figure{Kind: KindLines}, Series{X: []float64{1, 2}, Y: []float64{1}}},
		"bars-vs-group": {Figure{Kind: KindBars, Labels: []string{"a", "b"}}, Series{Y: []float64{1}}},
		"unknown-kind":  {Figure{Kind: "pie"}, Series{Y: []float64{1}}},
	} {
		if err := Record(dir, name, c.f, "s", c.s); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := os.Stat(filepath.Join(dir, name+".json")); err == nil {
			t.Errorf("%s: stored anyway", name)
		}
	}
	if err := Record(dir, "Bad Name", Figure{Kind: KindCDF}, "s", Series{Samples: []float64{1}}); err == nil {
		t.Error("a figure name with spaces and capitals was accepted")
	}
}

// TestRedraw: figures copied elsewhere are drawn again from their JSON.
func TestRedraw(t *testing.T) {
	dir := t.TempDir()
	lines := Figure{Kind: KindLines, Title: "threads", XLabel: "volumes", YLabel: "threads"}
	if err := Record(dir, "threads", lines, "plugin", Series{X: []float64{0, 100}, Y: []float64{8, 21}}); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "threads.png")
	if err := os.Remove(png); err != nil {
		t.Fatal(err)
	}
	if err := Redraw(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(png); err != nil {
		t.Errorf("not drawn again: %v", err)
	}
	if err := Redraw(t.TempDir()); err == nil {
		t.Error("Redraw of a folder without figures: no error")
	}
}
