package bench

// BenchmarkScale is what a dense node costs: the REAL plugin binary
// (`secretfs csi --source file:DIR`, as BenchmarkCSI runs it) with 0, 100,
// 1000 and 5000 kubelet-shaped volumes over 100 Secrets (volume i shows
// s-<i%100>), each step published with 50 calls in flight, beside the same
// number of kubelet-style tmpfs secret volumes (mount, the atomic writer's
// layout, remount read-only) made by this process with 50 in flight.
//
//	go test -run '^$' -bench Scale -benchtime 1x ./bench/
//	SECRETFS_BENCH_SCALE_LEVELS=0,100,1000 ...   # fewer steps
//	SECRETFS_BENCH_BIN=/path/to/secretfs ...     # measure another build
//	TMPDIR=/dev/shm ...   # kubelet's root (the targets) on tmpfs, not the disk
//
// BenchmarkScale/volumes, at each level N (metric suffix -N):
//
//	rss-MiB, threads, goroutines  the plugin: VmRSS and Threads from
//	        /proc/PID/status, go_goroutines from /metrics; minimum of 5
//	        samples after 5 s (as BenchmarkCSI/rss)
//	pub-p50-ms, pub-p99-ms        NodePublishVolume of the step that
//	        reached N (100, 900, 4000 calls), 50 in flight
//	tmpfs-pub-p50-ms, -p99-ms     the same for the tmpfs volumes
//	read-p50-ms, read-p99-ms      open+read+close of 2000 random files of
//	        the mounted volumes from a separate reader process (first
//	        reads of a file included: that is what a starting Pod does)
//	tmpfs-read-p50-ms, -p99-ms    the same files' counterparts on tmpfs
//	tmpfs-shmem-MiB               Shmem growth in /proc/meminfo since the
//	        start: the kernel memory the tmpfs volumes hold (noisy: other
//	        processes' tmpfs use counts too)
//
// plus rss-MiB-per-1000, threads-per-1000 and goroutines-per-1000: the
// slopes between the two highest levels; rss-MiB-after, threads-after,
// goroutines-after once every volume is unpublished again, rss-MiB-idle,
// threads-idle, goroutines-idle once --cache-idle has passed too (50 in flight:
// unpub-p50-ms, unpub-p99-ms); and a markdown table on stdout.
//
// BenchmarkScale/burst-1000: a fresh plugin, 1000 publishes with 50 in
// flight (burst-1000-cached: every Secret read once before, as on a node
// that already runs Pods using them): pub-p50-ms, pub-p99-ms, pub-max-ms, wall-ms, threads (the
// plugin's OS threads right after: the runtime keeps every thread it made,
// so this is the most the burst needed), first-pub-p99-ms and
// cached-pub-p99-ms (the first publish of each Secret, which waits for the
// source's first read, and the others), plugin-cpu-ms/pub and
// client-cpu-ms/pub (CPU time per publish of the plugin, kernel work on
// its behalf included, and of this process), then unpublished the same
// way: unpub-p50-ms, unpub-p99-ms.
//
// Every volume is unpublished and every tmpfs unmounted at the end; the
// cleanup detaches anything left under the temp roots.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/bench/benchplot"
)

const (
	scaleSecrets  = 100 // Secrets the volumes show
	scaleInFlight = 50  // publishes in flight
	scaleReads    = 2000
)

func BenchmarkScale(b *testing.B) {
	needRoot(b)
	bin := scaleBinary(b)
	b.Run("volumes", func(b *testing.B) {
		for range b.N {
			benchScale(b, bin)
		}
	})
	b.Run("burst-1000", func(b *testing.B) {
		for range b.N {
			benchScaleBurst(b, bin, false)
		}
	})
	b.Run("burst-1000-cached", func(b *testing.B) {
		for range b.N {
			benchScaleBurst(b, bin, true)
		}
	})
}

// scaleBinary is a copy of SECRETFS_BENCH_BIN or of a fresh build of
// cmd/secretfs, dropped from the page cache. The file part of RSS is the
// binary's pages the kernel maps, which depends on how the file sits in
// the page cache (the same binary measured 27–49 MiB fresh from the
// linker, from cp or from one write(2)); read back from disk, as a node
// starts it, it is the same for every run, so before/after compare.
func scaleBinary(b *testing.B) string {
	src := os.Getenv("SECRETFS_BENCH_BIN")
	if src == "" {
		src = filepath.Join(b.TempDir(), "built")
		if out, err := exec.Command("go", "build", "-o", src, "github.com/secretfs/secretfs/cmd/secretfs").CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "secretfs")
	f, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(raw); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
	return bin
}

func scaleLevels(b *testing.B) []int {
	s := os.Getenv("SECRETFS_BENCH_SCALE_LEVELS")
	if s == "" {
		return []int{0, 100, 1000, 5000}
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || (len(out) > 0 && n <= out[len(out)-1]) {
			b.Fatalf("SECRETFS_BENCH_SCALE_LEVELS: want increasing counts, got %q", s)
		}
		out = append(out, n)
	}
	return out
}

// scaleRow is one level of the table.
type scaleRow struct {
	n                      int
	u                      usage
	pub, tpub, read, tread latencies
	shmem                  float64
}

// warmUp publishes and unpublishes one volume of the "shared" Secret (not
// one of the 100), so the plugin's code is paged in (its binary was
// dropped from the page cache) before anything is measured.
func warmUp(b *testing.B, p *csiPlugin) {
	r := p.request(1 << 20)
	r.VolumeContext["secretName"] = "shared"
	if _, err := p.publish(r); err != nil {
		b.Fatal(err)
	}
	if _, err := p.unpublish(r); err != nil {
		b.Fatal(err)
	}
}

// scaleCacheIdle is the plugin's --cache-idle in the volumes run: short,
// so the row after it shows what a node returns to once idle entries go.
const scaleCacheIdle = 3 * time.Second

func benchScale(b *testing.B, bin string) {
	p := startCSIPlugin(b, bin, "--cache-idle="+scaleCacheIdle.String())
	warmUp(b, p)
	tm := newTmpfsVolumes(b)
	shmem0 := meminfo(b)["Shmem"]
	var reqs []*csi.NodePublishVolumeRequest
	var rows []scaleRow
	for _, n := range scaleLevels(b) {
		row := scaleRow{n: n}
		var more []*csi.NodePublishVolumeRequest
		for i := len(reqs); i < n; i++ {
			r := p.request(i)
			r.VolumeContext["secretName"] = fmt.Sprintf("s-%d", i%scaleSecrets)
			more = append(more, r)
		}
		var err error
		if row.pub, err = pool(len(more), func(i int) (time.Duration, error) { return p.publish(more[i]) }); err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, more...)
		if row.tpub, err = pool(n-tm.count(), func(int) (time.Duration, error) { return tm.add() }); err != nil {
			b.Fatal(err)
		}
		row.u = p.settle(b)
		row.shmem = (meminfo(b)["Shmem"] - shmem0) / 1024
		if n > 0 {
			fuse, tmpfs := scaleSample(reqs, tm, scaleReads)
			row.read = latencyReader(b, fuse)
			row.tread = latencyReader(b, tmpfs)
		}
		b.Logf("%5d volumes: %s; publish p50 %.1f p99 %.1f ms (tmpfs %.1f / %.1f); read p50 %.3f p99 %.3f ms (tmpfs %.3f / %.3f)",
			n, row.u, row.pub.pctOr(0.5), row.pub.pctOr(0.99), row.tpub.pctOr(0.5), row.tpub.pctOr(0.99),
			row.read.pctOr(0.5), row.read.pctOr(0.99), row.tread.pctOr(0.5), row.tread.pctOr(0.99))
		rows = append(rows, row)
	}
	for _, r := range rows {
		s := strconv.Itoa(r.n)
		b.ReportMetric(r.u.rss, "rss-MiB-"+s)
		b.ReportMetric(r.u.threads, "threads-"+s)
		b.ReportMetric(r.u.goroutines, "goroutines-"+s)
		b.ReportMetric(r.shmem, "tmpfs-shmem-MiB-"+s)
		if len(r.pub) > 0 {
			b.ReportMetric(r.pub.pct(0.5), "pub-p50-ms-"+s)
			b.ReportMetric(r.pub.pct(0.99), "pub-p99-ms-"+s)
			b.ReportMetric(r.tpub.pct(0.5), "tmpfs-pub-p50-ms-"+s)
			b.ReportMetric(r.tpub.pct(0.99), "tmpfs-pub-p99-ms-"+s)
		}
		if len(r.read) > 0 {
			b.ReportMetric(r.read.pct(0.5), "read-p50-ms-"+s)
			b.ReportMetric(r.read.pct(0.99), "read-p99-ms-"+s)
			b.ReportMetric(r.tread.pct(0.5), "tmpfs-read-p50-ms-"+s)
			b.ReportMetric(r.tread.pct(0.99), "tmpfs-read-p99-ms-"+s)
		}
	}
	var slope [4]float64
	if len(rows) >= 2 {
		hi, lo := rows[len(rows)-1], rows[len(rows)-2]
		k := float64(hi.n-lo.n) / 1000
		slope = [4]float64{(hi.u.rss - lo.u.rss) / k, (hi.u.threads - lo.u.threads) / k, (hi.u.goroutines - lo.u.goroutines) / k, (hi.shmem - lo.shmem) / k}
		b.ReportMetric(slope[0], "rss-MiB-per-1000")
		b.ReportMetric(slope[1], "threads-per-1000")
		b.ReportMetric(slope[2], "goroutines-per-1000")
	}
	unpub, err := pool(len(reqs), func(i int) (time.Duration, error) { return p.unpublish(reqs[i]) })
	if err != nil {
		b.Fatal(err)
	}
	// What is left once every volume is gone (idle cache entries
	// included: they expire after --cache-idle, not waited for here).
	after := p.settle(b)
	b.ReportMetric(after.rss, "rss-MiB-after")
	b.ReportMetric(after.threads, "threads-after")
	b.ReportMetric(after.goroutines, "goroutines-after")
	unpub.report(b, "unpub-")
	b.Logf("after unpublishing all: %s", after)
	// Then --cache-idle passes: the idle entries stop their watches, are
	// freed, and the plugin gives the memory back (debug.FreeOSMemory).
	time.Sleep(scaleCacheIdle + 2*time.Second)
	idle := p.settle(b)
	b.ReportMetric(idle.rss, "rss-MiB-idle")
	b.ReportMetric(idle.threads, "threads-idle")
	b.ReportMetric(idle.goroutines, "goroutines-idle")
	b.Logf("after --cache-idle (%s): %s", scaleCacheIdle, idle)
	printScaleTable(rows, slope, after, idle)
	recordScale(b, rows)
	p.stop()
}

func benchScaleBurst(b *testing.B, bin string, cached bool) {
	p := startCSIPlugin(b, bin)
	warmUp(b, p)
	reqs := make([]*csi.NodePublishVolumeRequest, 1000)
	for i := range reqs {
		reqs[i] = p.request(i)
		reqs[i].VolumeContext["secretName"] = fmt.Sprintf("s-%d", i%scaleSecrets)
	}
	if cached {
		// Every Secret read once by a volume published and unpublished
		// before: its cache entry stays for --cache-idle.
		for i := range scaleSecrets {
			r := p.request(1<<20 + 1 + i)
			r.VolumeContext["secretName"] = fmt.Sprintf("s-%d", i)
			if _, err := p.publish(r); err != nil {
				b.Fatal(err)
			}
			if _, err := p.unpublish(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	var profiled chan struct{}
	if file := os.Getenv("SECRETFS_BENCH_SCALE_CPUPROFILE"); file != "" {
		// Diagnostic: a 1 s CPU profile of the plugin from the start
		// of the burst (needs SECRETFS_BENCH_BIN=bench/internal/csiprof,
		// which serves pprof).
		profiled = make(chan struct{})
		go func() {
			defer close(profiled)
			p.saveURL(b, strings.TrimSuffix(p.metrics, "metrics")+"debug/pprof/profile?seconds=1", file)
		}()
		time.Sleep(50 * time.Millisecond) // the profile has started
	}
	cpu0, self0 := p.cpu(b), cpuTime()
	start := time.Now()
	pub, err := pool(len(reqs), func(i int) (time.Duration, error) { return p.publish(reqs[i]) })
	if err != nil {
		b.Fatal(err)
	}
	wall := time.Since(start)
	cpu, self := p.cpu(b)-cpu0, time.Duration(cpuTime()-self0)
	threads := p.sample(b).threads
	if profiled != nil {
		<-profiled
	}
	unpub, err := pool(len(reqs), func(i int) (time.Duration, error) { return p.unpublish(reqs[i]) })
	if err != nil {
		b.Fatal(err)
	}
	pub.report(b, "pub-")
	// The first publish of each Secret waits for its first read from
	// the source; later ones find it cached.
	b.ReportMetric(pub[:scaleSecrets].pct(0.99), "first-pub-p99-ms")
	b.ReportMetric(pub[scaleSecrets:].pct(0.99), "cached-pub-p99-ms")
	unpub.report(b, "unpub-")
	b.ReportMetric(float64(wall)/1e6, "wall-ms")
	b.ReportMetric(threads, "threads")
	// What bounds the burst: CPU per publish, the plugin's (user +
	// system, so its mount(2), mkdir and FUSE work in the kernel) and
	// the client's (this process: gRPC).
	b.ReportMetric(float64(cpu)/1e6/float64(len(reqs)), "plugin-cpu-ms/pub")
	b.ReportMetric(float64(self)/1e6/float64(len(reqs)), "client-cpu-ms/pub")
	p.stop()
}

// pool runs call(0..n-1) with scaleInFlight calls at a time and returns
// each call's latency.
func pool(n int, call func(int) (time.Duration, error)) (latencies, error) {
	lat := make(latencies, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(scaleInFlight, n) {
		wg.Go(func() {
			for i := range next {
				lat[i], errs[i] = call(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// pctOr is pct, or 0 when there are no samples.
func (l latencies) pctOr(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	return l.pct(q)
}

// scaleSample picks n random (volume, key) files and the same files of the
// tmpfs volume of the same index.
func scaleSample(reqs []*csi.NodePublishVolumeRequest, tm *tmpfsVolumes, n int) (fuse, tmpfs []string) {
	keys := []string{"username", "password", "ca.crt"}
	for range n {
		i, k := rand.IntN(len(reqs)), keys[rand.IntN(len(keys))]
		fuse = append(fuse, filepath.Join(reqs[i].TargetPath, k))
		tmpfs = append(tmpfs, filepath.Join(tm.dir(i), k))
	}
	return fuse, tmpfs
}

// latencyReader runs a separate reader process that does open+read+close
// of each file once, in order, and returns each one's latency.
func latencyReader(b *testing.B, files []string) latencies {
	b.Helper()
	list := filepath.Join(b.TempDir(), "files")
	if err := os.WriteFile(list, []byte(strings.Join(files, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd, sc := startReader(b, "lat", []string{"@" + list}, 0)
	var out latencies
	for sc.Scan() {
		ns, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			b.Fatalf("lat reader said %q", sc.Text())
		}
		out = append(out, time.Duration(ns))
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("lat reader: %v", err)
	}
	if len(out) != len(files) {
		b.Fatalf("lat reader: %d latencies for %d files", len(out), len(files))
	}
	return out
}

// tmpfsVolumes are kubelet-style secret volumes: a tmpfs each, the atomic
// writer's layout, remounted read-only.
type tmpfsVolumes struct {
	b    *testing.B
	root string
	mu   sync.Mutex
	n    int
}

func newTmpfsVolumes(b *testing.B) *tmpfsVolumes {
	root, err := os.MkdirTemp("", "tmpfsv")
	if err != nil {
		b.Fatal(err)
	}
	t := &tmpfsVolumes{b: b, root: root}
	b.Cleanup(t.cleanup)
	return t
}

func (t *tmpfsVolumes) dir(i int) string { return filepath.Join(t.root, strconv.Itoa(i)) }

func (t *tmpfsVolumes) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// add makes the next volume and returns how long it took.
func (t *tmpfsVolumes) add() (time.Duration, error) {
	t.mu.Lock()
	i := t.n
	t.n++
	t.mu.Unlock()
	dir := t.dir(i)
	if err := os.Mkdir(dir, 0o750); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size=1m"); err != nil {
		return 0, fmt.Errorf("mount tmpfs: %w", err)
	}
	ts := ".." + time.Now().Format("2006_01_02_15_04_05.000000000")
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		return 0, err
	}
	files := map[string]string{"username": fmt.Sprintf("user-%d", i), "password": fmt.Sprintf("pw-%d", i), "ca.crt": strings.Repeat("C", 1024)}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, ts, name), []byte(data), 0o644); err != nil {
			return 0, err
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		return 0, err
	}
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			return 0, err
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return 0, fmt.Errorf("remount tmpfs ro: %w", err)
	}
	return time.Since(start), nil
}

// cleanup unmounts the volumes this made and removes their folders.
func (t *tmpfsVolumes) cleanup() {
	for i := range t.n {
		unix.Unmount(t.dir(i), unix.MNT_DETACH)
	}
	if err := os.RemoveAll(t.root); err != nil {
		t.b.Errorf("remove %s: %v", t.root, err)
	}
}

// cpu is the plugin's user+system CPU time so far (/proc/PID/stat).
func (p *csiPlugin) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses; utime
	// and stime are fields 14 and 15, in clock ticks (100 per second).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// meminfo reads /proc/meminfo (kB).
func meminfo(b *testing.B) map[string]float64 { return procFields(b, "/proc/meminfo") }

// printScaleTable prints the levels as a markdown table, with the slope per
// 1000 volumes and what 10,000 volumes would cost by extrapolation.
func printScaleTable(rows []scaleRow, slope [4]float64, after, idle usage) {
	ms := func(l latencies, q float64) string {
		if len(l) == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", l.pct(q))
	}
	fmt.Println("# BenchmarkScale: plugin (secretfs) beside kubelet-style tmpfs volumes")
	fmt.Println("| volumes | RSS MiB (anon + file) | threads | goroutines | publish p50/p99 ms | tmpfs publish p50/p99 ms | read p50/p99 ms | tmpfs read p50/p99 ms | tmpfs Shmem MiB |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		fmt.Printf("| %d | %.1f (%.1f + %.1f) | %.0f | %.0f | %s / %s | %s / %s | %s / %s | %s / %s | %.1f |\n",
			r.n, r.u.rss, r.u.anon, r.u.file, r.u.threads, r.u.goroutines,
			ms(r.pub, 0.5), ms(r.pub, 0.99), ms(r.tpub, 0.5), ms(r.tpub, 0.99),
			ms(r.read, 0.5), ms(r.read, 0.99), ms(r.tread, 0.5), ms(r.tread, 0.99), r.shmem)
	}
	fmt.Printf("| 0 (all unpublished) | %.1f (%.1f + %.1f) | %.0f | %.0f | | | | | |\n",
		after.rss, after.anon, after.file, after.threads, after.goroutines)
	fmt.Printf("| 0, --cache-idle passed | %.1f (%.1f + %.1f) | %.0f | %.0f | | | | | |\n",
		idle.rss, idle.anon, idle.file, idle.threads, idle.goroutines)
	if len(rows) < 2 {
		return
	}
	last := rows[len(rows)-1]
	k := float64(10000-last.n) / 1000
	fmt.Printf("| per 1000 (slope %d→%d) | %.1f | %.1f | %.0f | | | | | %.1f |\n",
		rows[len(rows)-2].n, last.n, slope[0], slope[1], slope[2], slope[3])
	fmt.Printf("| 10000 (extrapolated) | %.0f | %.0f | %.0f | | | | | %.0f |\n",
		last.u.rss+k*slope[0], last.u.threads+k*slope[1], last.u.goroutines+k*slope[2], last.shmem+k*slope[3])
}

// recordScale draws the plugin's RSS (beside the Shmem the tmpfs volumes
// cost the kernel) and OS threads against the number of volumes.
func recordScale(b *testing.B, rows []scaleRow) {
	var n, rss, shmem, threads []float64
	for _, r := range rows {
		n = append(n, float64(r.n))
		rss = append(rss, r.u.rss)
		shmem = append(shmem, r.shmem)
		threads = append(threads, r.u.threads)
	}
	record(b, "scale-rss", scaleRSS, "secretfs plugin RSS", benchplot.Series{X: n, Y: rss})
	record(b, "scale-rss", scaleRSS, "tmpfs volumes: kernel Shmem", benchplot.Series{X: n, Y: shmem})
	record(b, "scale-threads", scaleThreads, "secretfs plugin", benchplot.Series{X: n, Y: threads})
}
