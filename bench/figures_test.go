package bench

import (
	"testing"
	"time"

	"github.com/secretfs/secretfs/bench/benchplot"
)

// The figures `make bench` draws (package benchplot): each benchmark adds
// its series to DIR/NAME.json and redraws DIR/NAME.png.
var (
	scaleRSS = benchplot.Figure{Kind: benchplot.KindLines,
		Title:  "Memory against volumes mounted (BenchmarkScale)",
		XLabel: "volumes", YLabel: "MiB"}
	scaleThreads = benchplot.Figure{Kind: benchplot.KindLines,
		Title:  "Plugin OS threads against volumes mounted (BenchmarkScale)",
		XLabel: "volumes", YLabel: "threads"}
	readOps = benchplot.Figure{Kind: benchplot.KindBars,
		Title:  "Reads of 1 KiB files in kubelet's layout (BenchmarkRead)",
		YLabel: "thousand ops/s", Labels: []string{"open+read+close", "stat"}}
)

// record adds one series to a figure; a figure that cannot be written
// fails the benchmark (its table alone would go unnoticed without it).
func record(b *testing.B, name string, f benchplot.Figure, series string, s benchplot.Series) {
	b.Helper()
	dir, err := benchplot.Dir()
	if err == nil {
		s.Source = b.Name()
		err = benchplot.Record(dir, name, f, series, s)
	}
	if err != nil {
		b.Errorf("figure %s: %v", name, err)
	}
}

// seconds turns latencies into a CDF's samples.
func seconds(l []time.Duration) benchplot.Series {
	s := make([]float64, len(l))
	for i, d := range l {
		s[i] = d.Seconds()
	}
	return benchplot.Series{Samples: s}
}
