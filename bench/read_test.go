package bench

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/secretfs/secretfs/bench/benchplot"
	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/projection"
)

// readDuration is how long one reader run lasts (per mode, per b.N).
func readDuration() time.Duration {
	if s := os.Getenv("SECRETFS_BENCH_READ_SECONDS"); s != "" {
		var f float64
		if _, err := fmt.Sscan(s, &f); err == nil && f > 0 {
			return time.Duration(f * float64(time.Second))
		}
	}
	return time.Second
}

// tenFiles is the read benchmarks' volume: 10 files of 1 KiB, as bytes,
// as a payload, and their sorted names.
func tenFiles() (map[string][]byte, *projection.Payload, []string) {
	files := map[string][]byte{}
	p := &projection.Payload{Files: map[string]projection.File{}}
	for i := range 10 {
		name := fmt.Sprintf("k%d", i)
		files[name] = value(0, 1024)
		p.Files[name] = projection.File{Mode: 0o644, Data: files[name]}
	}
	return files, p, slices.Sorted(maps.Keys(files))
}

func BenchmarkRead(b *testing.B) {
	needRoot(b)
	files, p, names := tenFiles()

	tmpfsDir := mountTmpfs(b, files)
	fs, err := fusefs.New(fusefs.Options{}, p)
	if err != nil {
		b.Fatal(err)
	}
	fuseDir := b.TempDir()
	if err := fs.Mount(fuseDir); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		fs.Unmount()
		<-fs.Done()
	})

	d := readDuration()
	type result struct{ read, stat float64 }
	results := map[string]result{}
	for _, c := range []struct{ name, dir string }{{"tmpfs", tmpfsDir}, {"fuse", fuseDir}} {
		paths := make([]string, len(names))
		for i, n := range names {
			paths[i] = filepath.Join(c.dir, n)
		}
		b.Run(c.name, func(b *testing.B) {
			var rOps, rNs, sOps, sNs int64
			for range b.N {
				r := runReader(b, "read", paths, d)
				rOps, rNs = rOps+r.ops, rNs+r.ns
				r = runReader(b, "stat", paths, d)
				sOps, sNs = sOps+r.ops, sNs+r.ns
			}
			r := result{read: float64(rOps) / (float64(rNs) / 1e9), stat: float64(sOps) / (float64(sNs) / 1e9)}
			results[c.name] = r
			b.ReportMetric(r.read, "read-ops/s")
			b.ReportMetric(r.stat, "stat-ops/s")
			if t, ok := results["tmpfs"]; ok && c.name != "tmpfs" {
				b.ReportMetric(r.read/t.read, "read-x-tmpfs")
				b.ReportMetric(r.stat/t.stat, "stat-x-tmpfs")
			}
		})
	}
	// interleaved: short tmpfs and fuse runs alternate (10 pairs of 200 ms
	// per b.N) and the median of the pairwise ratios is reported, which
	// cancels drifting load from other processes. direct-* reads
	// `..<ts>/kN` without following any link: the share of the gap due
	// to the two link hops.
	paths := func(dir string, direct bool) []string {
		prefix := dir
		if direct {
			ts, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				b.Fatal(err)
			}
			prefix = filepath.Join(dir, ts)
		}
		ps := make([]string, len(names))
		for i, n := range names {
			ps[i] = filepath.Join(prefix, n)
		}
		return ps
	}
	b.Run("interleaved", func(b *testing.B) {
		const pairs, short = 10, 200 * time.Millisecond
		ratios := map[string][]float64{}
		for range b.N {
			for range pairs {
				for _, mode := range []string{"read", "stat"} {
					for _, direct := range []bool{false, true} {
						t := runReader(b, mode, paths(tmpfsDir, direct), short)
						f := runReader(b, mode, paths(fuseDir, direct), short)
						key := mode
						if direct {
							key = "direct-" + mode
						}
						ratios[key] = append(ratios[key], f.perSec()/t.perSec())
						ratios[key+"-cpu"] = append(ratios[key+"-cpu"], f.perCPUSec()/t.perCPUSec())
					}
				}
			}
		}
		for key, r := range ratios {
			slices.Sort(r)
			b.ReportMetric(r[len(r)/2], key+"-x-tmpfs")
		}
		med := func(k string) float64 { return ratios[k][len(ratios[k])/2] }
		fmt.Printf("# BenchmarkRead/interleaved median FUSE/tmpfs: read %.3f stat %.3f; without links: read %.3f stat %.3f"+
			"; per CPU second: read %.3f stat %.3f, without links read %.3f stat %.3f\n",
			med("read"), med("stat"), med("direct-read"), med("direct-stat"),
			med("read-cpu"), med("stat-cpu"), med("direct-read-cpu"), med("direct-stat-cpu"))
	})
	if t, f := results["tmpfs"], results["fuse"]; t.read > 0 && f.read > 0 {
		// b.Logf of a parent benchmark is not shown; benchstat ignores this line.
		fmt.Printf("# BenchmarkRead FUSE/tmpfs: read %.3f (%.0f vs %.0f ops/s), stat %.3f (%.0f vs %.0f ops/s); goal read >= 0.8\n",
			f.read/t.read, f.read, t.read, f.stat/t.stat, f.stat, t.stat)
		record(b, "read-throughput", readOps, "tmpfs (kubelet's volume)", benchplot.Series{Y: []float64{t.read / 1e3, t.stat / 1e3}})
		record(b, "read-throughput", readOps, "secretfs (FUSE)", benchplot.Series{Y: []float64{f.read / 1e3, f.stat / 1e3}})
	}
}
