package bench

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/secretfs/secretfs/fusefs"
)

// BenchmarkSubPathRead: the same 10 files of 1 KiB read (open, read,
// close, by a separate process) through the top-level names of three
// volumes: a read-only tmpfs in kubelet's layout (links), a secretfs
// volume in that layout (links, ENOSYS to OPEN: no round trip per open)
// and a secretfs volume with SubPathUpdates (stable files: OPEN answered
// with FOPEN_DIRECT_IO, so each open+read+close is OPEN, READ and RELEASE
// round trips). Runs of 200 ms alternate (10 rounds per b.N) and the median
// ratios are reported, with the cost of a stable file's open over a link's
// in µs (per-open-us: 1/stable - 1/links).
func BenchmarkSubPathRead(b *testing.B) {
	needRoot(b)
	files, p, names := tenFiles()
	dirs := map[string]string{"tmpfs": mountTmpfs(b, files)}
	for mode, opts := range map[string]fusefs.Options{"links": {}, "stable": {SubPathUpdates: true}} {
		fs, err := fusefs.New(opts, p)
		if err != nil {
			b.Fatal(err)
		}
		dirs[mode] = b.TempDir()
		if err := fs.Mount(dirs[mode]); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			fs.Unmount()
			<-fs.Done()
		})
	}
	paths := func(mode string) []string {
		ps := make([]string, len(names))
		for i, n := range names {
			ps[i] = filepath.Join(dirs[mode], n)
		}
		return ps
	}
	const rounds, short = 10, 200 * time.Millisecond
	ratios := map[string][]float64{}
	for range b.N {
		for range rounds {
			t := runReader(b, "read", paths("tmpfs"), short).perSec()
			l := runReader(b, "read", paths("links"), short).perSec()
			s := runReader(b, "read", paths("stable"), short).perSec()
			ratios["stable-x-tmpfs"] = append(ratios["stable-x-tmpfs"], s/t)
			ratios["links-x-tmpfs"] = append(ratios["links-x-tmpfs"], l/t)
			ratios["stable-x-links"] = append(ratios["stable-x-links"], s/l)
			ratios["per-open-us"] = append(ratios["per-open-us"], (1/s-1/l)*1e6)
		}
	}
	med := func(k string) float64 {
		r := ratios[k]
		slices.Sort(r)
		return r[len(r)/2]
	}
	for k := range ratios {
		b.ReportMetric(med(k), k)
	}
	fmt.Printf("# BenchmarkSubPathRead median: stable files %.3f x tmpfs, links %.3f x tmpfs, stable %.3f x links; a stable file's open costs %.1f µs more than a link's\n",
		med("stable-x-tmpfs"), med("links-x-tmpfs"), med("stable-x-links"), med("per-open-us"))
}
