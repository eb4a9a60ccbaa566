// Package benchplot keeps the latest figures of the benchmarks and draws
// them as PNG files (gonum.org/v1/plot) beside their tables.
//
// A figure is one JSON file, DIR/NAME.json, holding its series by name;
// each call records one series (replacing the one of the same name) and
// redraws DIR/NAME.png from every series the file holds. So a figure can
// compare series that different runs produce: the update latency CDF gets
// secretfs's curves from `make bench` and kubelet's own secret volume from
// the e2e side-by-side test (e2e.TestUpdateLatencySideBySide), whichever
// ran last keeping the other's.
//
// DIR is $SECRETFS_BENCH_OUT, else bin/bench under the module's root (Dir).
// Figures draw only what a run recorded: nothing is made up or carried
// over from the documentation.
package benchplot
