package bench

// BenchmarkCSI drives the REAL plugin binary (`go build ./cmd/secretfs`,
// then `secretfs csi --source file:DIR --metrics-addr …`) over its unix
// socket, publishing volumes exactly as kubelet does for CSI inline
// volumes: volume id csi-<sha256(podUID+volume)>, pod-info keys,
// ephemeral "true", only the target's parent made
// (<root>/pods/<uid>/volumes/kubernetes.io~csi/<vol>/mount).
//
//	go test -run '^$' -bench CSI -benchtime 1x ./bench/
//
// The source folder holds one shared Secret and 250 distinct ones (3 keys:
// two short values and a 1 KiB ca.crt). Volume i shows the shared Secret
// when i is even, Secret s-<i/2> when it is odd.
//
// BenchmarkCSI/publish-seq: 200×b.N rounds of NodePublishVolume of a new
// target, then NodeUnpublishVolume. p50-ms/p99-ms/max-ms is the publish
// call as the client sees it (gRPC over the socket, mount(2), INIT),
// shared-p50-ms and distinct-p50-ms split it by Secret, unpub-* is the
// unpublish.
//
// BenchmarkCSI/publish-500: 500 goroutines publish 500 distinct targets at
// once (one gRPC connection, as kubelet has), then all are unpublished,
// again at once. p50/p99/max per call, wall-ms for the whole burst,
// unpub-wall-ms for the unpublish burst, threads: the plugin's OS threads
// after the publish burst.
//
// BenchmarkCSI/rss: one plugin, idle, then with 1, 100 and 500 volumes
// mounted (each volume's files read once, as a Pod starting would). After
// each step it waits 5 s, then samples every second for 5 s and reports
// the minimum of VmRSS (rss-MiB-N) and of smaps_rollup Pss (pss-MiB-N),
// Threads (threads-N) and, from the plugin's /metrics, go_goroutines
// (goroutines-N), go_memstats_heap_inuse_bytes (heap-MiB-N),
// go_memstats_stack_inuse_bytes (stack-MiB-N) and go_memstats_sys_bytes
// (gosys-MiB-N); N "after" is once all are unpublished. per-mount-KiB and goroutines-per-mount are the slopes
// from 100 to 500 volumes. Nothing forces a GC: the figures are what a
// node would see.
//
// Diagnostics: SECRETFS_BENCH_CSI_DUMP=FILE ends the rss run at 500
// volumes with SIGQUIT and saves the goroutine dump; SECRETFS_BENCH_CSI_PPROF=DIR
// runs bench/internal/csiprof (the same driver wired as cmd/secretfs, plus
// pprof) instead of the real binary and saves heap/goroutine profiles at 500.
//
// Every mount is unpublished at the end; a plugin that dies leaves its
// mounts, and the cleanup detaches anything left under the temp root.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	csiDistinct = 250 // distinct Secrets in the source folder
	csiBurst    = 500 // concurrent publishes
)

func BenchmarkCSI(b *testing.B) {
	needRoot(b)
	bin := filepath.Join(b.TempDir(), "secretfs")
	build := exec.Command("go", "build", "-o", bin, "github.com/secretfs/secretfs/cmd/secretfs")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	b.Run("publish-seq", func(b *testing.B) { benchPublishSeq(b, bin) })
	b.Run("publish-500", func(b *testing.B) { benchPublishBurst(b, bin, secretOf) })
	// The same burst, every volume showing the one shared Secret: what is
	// left without the file source's per-Secret first read.
	b.Run("publish-500-shared", func(b *testing.B) { benchPublishBurst(b, bin, func(int) string { return "shared" }) })
	b.Run("rss", func(b *testing.B) {
		if dir := os.Getenv("SECRETFS_BENCH_CSI_PPROF"); dir != "" {
			prof := filepath.Join(b.TempDir(), "csiprof")
			if out, err := exec.Command("go", "build", "-o", prof, "github.com/secretfs/secretfs/bench/internal/csiprof").CombinedOutput(); err != nil {
				b.Fatalf("go build csiprof: %v\n%s", err, out)
			}
			bin = prof
		}
		benchRSS(b, bin)
	})
}

func benchPublishSeq(b *testing.B, bin string) {
	p := startCSIPlugin(b, bin)
	var pub, unpub, shared, distinct, unpubShared, unpubDistinct latencies
	n := minSamples * b.N
	b.ResetTimer()
	for i := range n {
		req := p.request(i)
		d, err := p.publish(req)
		if err != nil {
			b.Fatalf("publish %d: %v", i, err)
		}
		pub = append(pub, d)
		if i%2 == 0 {
			shared = append(shared, d)
		} else {
			distinct = append(distinct, d)
		}
		if d, err = p.unpublish(req); err != nil {
			b.Fatalf("unpublish %d: %v", i, err)
		}
		unpub = append(unpub, d)
		if i%2 == 0 {
			unpubShared = append(unpubShared, d)
		} else {
			unpubDistinct = append(unpubDistinct, d)
		}
	}
	b.StopTimer()
	pub.report(b, "")
	unpub.report(b, "unpub-")
	b.ReportMetric(shared.pct(0.5), "shared-p50-ms")
	b.ReportMetric(distinct.pct(0.5), "distinct-p50-ms")
	b.ReportMetric(shared.pct(0.99), "shared-p99-ms")
	b.ReportMetric(distinct.pct(0.99), "distinct-p99-ms")
	b.ReportMetric(unpubShared.pct(0.99), "unpub-shared-p99-ms")
	b.ReportMetric(unpubDistinct.pct(0.99), "unpub-distinct-p99-ms")
}

func benchPublishBurst(b *testing.B, bin string, secret func(int) string) {
	for range b.N {
		p := startCSIPlugin(b, bin)
		reqs := make([]*csi.NodePublishVolumeRequest, csiBurst)
		for i := range reqs {
			reqs[i] = p.request(i)
			reqs[i].VolumeContext["secretName"] = secret(i)
		}
		pub, wall, err := p.all(reqs, p.publish)
		if err != nil {
			b.Fatal(err)
		}
		if n := p.mountsUnder(); n != csiBurst {
			b.Errorf("%d mounts after the burst, want %d", n, csiBurst)
		}
		// The runtime keeps the threads it made: the most the burst needed.
		b.ReportMetric(p.sample(b).threads, "threads")
		unpub, uwall, err := p.all(reqs, p.unpublish)
		if err != nil {
			b.Fatal(err)
		}
		pub.report(b, "")
		unpub.report(b, "unpub-")
		b.ReportMetric(float64(wall)/1e6, "wall-ms")
		b.ReportMetric(float64(uwall)/1e6, "unpub-wall-ms")
		p.stop()
	}
}

func benchRSS(b *testing.B, bin string) {
	p := startCSIPlugin(b, bin)
	var at100, at500 usage
	report := func(suffix string) usage {
		u := p.settle(b)
		b.ReportMetric(u.rss, "rss-MiB-"+suffix)
		b.ReportMetric(u.pss, "pss-MiB-"+suffix)
		b.ReportMetric(u.threads, "threads-"+suffix)
		b.ReportMetric(u.goroutines, "goroutines-"+suffix)
		b.ReportMetric(u.heap, "heap-MiB-"+suffix)
		b.ReportMetric(u.stack, "stack-MiB-"+suffix)
		b.ReportMetric(u.sys, "gosys-MiB-"+suffix)
		b.Logf("%5s volumes: %s", suffix, u)
		return u
	}
	report("0")
	var reqs []*csi.NodePublishVolumeRequest
	for _, n := range []int{1, 100, 500} {
		more := make([]*csi.NodePublishVolumeRequest, 0, n-len(reqs))
		for i := len(reqs); i < n; i++ {
			more = append(more, p.request(i))
		}
		// Publish in bursts of 50: kubelet starts Pods in parallel.
		for len(more) > 0 {
			k := min(50, len(more))
			if _, _, err := p.all(more[:k], p.publish); err != nil {
				b.Fatal(err)
			}
			for _, r := range more[:k] {
				p.readVolume(b, r)
			}
			reqs = append(reqs, more[:k]...)
			more = more[k:]
		}
		u := report(strconv.Itoa(n))
		if dir := os.Getenv("SECRETFS_BENCH_CSI_PPROF"); dir != "" && n == 500 {
			for _, prof := range []string{"heap", "goroutine", "allocs"} {
				p.saveURL(b, strings.TrimSuffix(p.metrics, "metrics")+"debug/pprof/"+prof, filepath.Join(dir, prof+".pb.gz"))
			}
			p.saveURL(b, strings.TrimSuffix(p.metrics, "metrics")+"debug/pprof/goroutine?debug=1", filepath.Join(dir, "goroutine.txt"))
		}
		if dump := os.Getenv("SECRETFS_BENCH_CSI_DUMP"); dump != "" && n == 500 {
			p.dumpGoroutines(b, dump)
			return
		}
		switch n {
		case 100:
			at100 = u
		case 500:
			at500 = u
		}
	}
	b.ReportMetric((at500.rss-at100.rss)*1024/400, "per-mount-KiB")
	b.ReportMetric((at500.goroutines-at100.goroutines)/400, "goroutines-per-mount")
	b.ReportMetric((at500.threads-at100.threads)/400, "threads-per-mount")
	if _, _, err := p.all(reqs, p.unpublish); err != nil {
		b.Fatal(err)
	}
	// What is left after all volumes are gone (leaks show here).
	report("after")
}

// csiPlugin is the plugin process and a client of its socket.
type csiPlugin struct {
	b       *testing.B
	cmd     *exec.Cmd
	root    string // kubelet's root-dir stand-in (pods/ under it)
	src     string
	metrics string // http://127.0.0.1:PORT/metrics
	conn    *grpc.ClientConn
	node    csi.NodeClient
	stopped bool
}

// extra flags are appended to the plugin's command line.
func startCSIPlugin(b *testing.B, bin string, extra ...string) *csiPlugin {
	b.Helper()
	// A short root: the socket path must stay under 108 bytes.
	root, err := os.MkdirTemp("", "csib")
	if err != nil {
		b.Fatal(err)
	}
	p := &csiPlugin{b: b, root: root, src: filepath.Join(root, "secrets")}
	if err := os.Mkdir(p.src, 0o700); err != nil {
		b.Fatal(err)
	}
	ca := strings.Repeat("C", 1024)
	p.writeSecret("shared", map[string]string{"username": "admin", "password": "shared-pw", "ca.crt": ca})
	for i := range csiDistinct {
		p.writeSecret(fmt.Sprintf("s-%d", i), map[string]string{"username": fmt.Sprintf("user-%d", i), "password": fmt.Sprintf("pw-%d", i), "ca.crt": ca})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p.metrics = "http://" + addr + "/metrics"
	sock := filepath.Join(root, "csi.sock")
	logf, err := os.Create(filepath.Join(root, "plugin.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	args := []string{"csi", "--endpoint", "unix://" + sock, "--node-id", "n",
		"--source", "file:" + p.src, "--metrics-addr", addr, "--mount-root", root}
	p.cmd = exec.Command(bin, append(args, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf // info level, as deployed
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.cleanup)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errS := os.Stat(sock)
		_, errM := http.Get("http://" + addr + "/healthz")
		if errS == nil && errM == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("plugin did not serve: socket %v, metrics %v\n%s", errS, errM, p.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.conn, err = grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	p.node = csi.NewNodeClient(p.conn)
	return p
}

func (p *csiPlugin) log() string {
	out, _ := os.ReadFile(filepath.Join(p.root, "plugin.log"))
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	return string(out)
}

func (p *csiPlugin) writeSecret(name string, data map[string]string) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: default\ndata:\n", name)
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&sb, "  %q: %s\n", k, base64.StdEncoding.EncodeToString([]byte(data[k])))
	}
	if err := os.WriteFile(filepath.Join(p.src, "default-"+name+".yaml"), []byte(sb.String()), 0o600); err != nil {
		p.b.Fatal(err)
	}
}

// secretOf is the Secret volume i shows.
func secretOf(i int) string {
	if i%2 == 0 {
		return "shared"
	}
	return fmt.Sprintf("s-%d", (i/2)%csiDistinct)
}

// request is kubelet's NodePublishVolume for the inline volume "creds" of
// Pod i; it makes the target's parent, as kubelet does.
func (p *csiPlugin) request(i int) *csi.NodePublishVolumeRequest {
	name := fmt.Sprintf("app-%d", i)
	uid := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
	sum := sha256.Sum256([]byte(uid + "creds"))
	parent := filepath.Join(p.root, "pods", uid, "volumes", "kubernetes.io~csi", "creds")
	if err := os.MkdirAll(parent, 0o750); err != nil {
		p.b.Fatal(err)
	}
	return &csi.NodePublishVolumeRequest{
		VolumeId:   "csi-" + hex.EncodeToString(sum[:]),
		TargetPath: filepath.Join(parent, "mount"),
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		Readonly: true,
		VolumeContext: map[string]string{
			"secretName":                             secretOf(i),
			"csi.storage.k8s.io/pod.name":            name,
			"csi.storage.k8s.io/pod.namespace":       "default",
			"csi.storage.k8s.io/pod.uid":             uid,
			"csi.storage.k8s.io/serviceAccount.name": "default",
			"csi.storage.k8s.io/ephemeral":           "true",
		},
	}
}

func (p *csiPlugin) publish(req *csi.NodePublishVolumeRequest) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	_, err := p.node.NodePublishVolume(ctx, req)
	return time.Since(start), err
}

func (p *csiPlugin) unpublish(req *csi.NodePublishVolumeRequest) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	_, err := p.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: req.TargetPath})
	return time.Since(start), err
}

// all runs call for every request at once, one goroutine each; it returns
// each call's latency and the wall time of the whole burst.
func (p *csiPlugin) all(reqs []*csi.NodePublishVolumeRequest, call func(*csi.NodePublishVolumeRequest) (time.Duration, error)) (latencies, time.Duration, error) {
	lat := make(latencies, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, r := range reqs {
		wg.Go(func() { lat[i], errs[i] = call(r) })
	}
	wg.Wait()
	wall := time.Since(start)
	for i, err := range errs {
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", reqs[i].TargetPath, err)
		}
	}
	return lat, wall, nil
}

// readVolume reads the volume's files once, as a starting Pod would.
func (p *csiPlugin) readVolume(b *testing.B, req *csi.NodePublishVolumeRequest) {
	for _, k := range []string{"username", "password", "ca.crt"} {
		if _, err := os.ReadFile(filepath.Join(req.TargetPath, k)); err != nil {
			b.Fatal(err)
		}
	}
}

// mountsUnder lists the mount points under the temp root.
func (p *csiPlugin) mountPoints() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		p.b.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 && strings.HasPrefix(fs[4], p.root+"/") {
			out = append(out, fs[4])
		}
	}
	return out
}

func (p *csiPlugin) mountsUnder() int { return len(p.mountPoints()) }

// stop ends the plugin (SIGTERM to our own child, by pid) and waits.
func (p *csiPlugin) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	if p.conn != nil {
		p.conn.Close()
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// dumpGoroutines is a diagnostic (SECRETFS_BENCH_CSI_DUMP=FILE): SIGQUIT
// makes the plugin print every goroutine's stack and exit; the mounts it
// leaves are detached by the cleanup.
func (p *csiPlugin) dumpGoroutines(b *testing.B, file string) {
	p.stopped = true
	p.conn.Close()
	p.cmd.Process.Signal(syscall.SIGQUIT)
	p.cmd.Wait()
	if err := os.WriteFile(file, []byte(p.logAll()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("goroutine dump in %s", file)
}

func (p *csiPlugin) logAll() string {
	out, _ := os.ReadFile(filepath.Join(p.root, "plugin.log"))
	return string(out)
}

// cleanup stops the plugin and detaches whatever it left mounted.
func (p *csiPlugin) cleanup() {
	p.stop()
	left := p.mountPoints()
	for _, m := range left {
		unix.Unmount(m, unix.MNT_DETACH)
	}
	if len(left) > 0 {
		p.b.Logf("detached %d mounts left behind", len(left))
	}
	if err := os.RemoveAll(p.root); err != nil {
		p.b.Errorf("remove %s: %v", p.root, err)
	}
}

// usage is one sample of the plugin's footprint (MiB where a size).
type usage struct {
	rss, pss, threads, goroutines, heap, stack, sys float64
	alloc, gcs                                      float64 // go_memstats_alloc_bytes (MiB), GC cycles so far
	anon, file                                      float64 // RssAnon, RssFile (MiB)
}

func (u usage) String() string {
	return fmt.Sprintf("rss %.1f MiB, pss %.1f MiB, threads %.0f, goroutines %.0f, heap-inuse %.1f MiB, heap-alloc %.1f MiB, stack-inuse %.1f MiB, go-sys %.1f MiB, GCs %.0f, rss-anon %.1f MiB, rss-file %.1f MiB",
		u.rss, u.pss, u.threads, u.goroutines, u.heap, u.alloc, u.stack, u.sys, u.gcs, u.anon, u.file)
}

// settle waits 5 s, samples every second for 5 s and returns the minimum
// of each figure.
func (p *csiPlugin) settle(b *testing.B) usage {
	time.Sleep(5 * time.Second)
	var lo usage
	for i := range 5 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		u := p.sample(b)
		if i == 0 {
			lo = u
			continue
		}
		lo.rss, lo.pss, lo.threads = min(lo.rss, u.rss), min(lo.pss, u.pss), min(lo.threads, u.threads)
		lo.goroutines, lo.heap = min(lo.goroutines, u.goroutines), min(lo.heap, u.heap)
		lo.stack, lo.sys = min(lo.stack, u.stack), min(lo.sys, u.sys)
		lo.alloc, lo.gcs = min(lo.alloc, u.alloc), u.gcs
		lo.anon, lo.file = min(lo.anon, u.anon), min(lo.file, u.file)
	}
	return lo
}

func (p *csiPlugin) sample(b *testing.B) usage {
	pid := p.cmd.Process.Pid
	status := procFields(b, fmt.Sprintf("/proc/%d/status", pid))
	rollup := procFields(b, fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	m := p.scrape(b)
	const mib = 1 << 20
	return usage{
		rss:        status["VmRSS"] / 1024, // kB
		pss:        rollup["Pss"] / 1024,
		anon:       status["RssAnon"] / 1024,
		file:       status["RssFile"] / 1024,
		threads:    status["Threads"],
		goroutines: m["go_goroutines"],
		heap:       m["go_memstats_heap_inuse_bytes"] / mib,
		stack:      m["go_memstats_stack_inuse_bytes"] / mib,
		sys:        m["go_memstats_sys_bytes"] / mib,
		alloc:      m["go_memstats_alloc_bytes"] / mib,
		gcs:        m["go_gc_duration_seconds_count"],
	}
}

func (p *csiPlugin) saveURL(b *testing.B, url, file string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		b.Fatal(err)
	}
}

// procFields reads "Key: value [kB]" lines.
func procFields(b *testing.B, path string) map[string]float64 {
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if f := strings.Fields(v); len(f) > 0 {
			if x, err := strconv.ParseFloat(f[0], 64); err == nil {
				out[k] = x
			}
		}
	}
	return out
}

// scrape reads the unlabelled samples of the plugin's /metrics.
func (p *csiPlugin) scrape(b *testing.B) map[string]float64 {
	resp, err := http.Get(p.metrics)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(raw), "\n") {
		if l == "" || l[0] == '#' || strings.Contains(l, "{") {
			continue
		}
		if f := strings.Fields(l); len(f) == 2 {
			if x, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = x
			}
		}
	}
	return out
}

// BenchmarkCSIFuseOptions is a what-if for the per-mount cost found by
// BenchmarkCSI/rss, without changing fusefs: bench/internal/fusemem mounts
// 500 bare go-fuse servers (3 files each, every file read once from this
// process) with the options of each variant and reports its footprint
// after 5 s (min of 5 samples): rss-MiB, anon-MiB, threads, goroutines,
// heap-MiB, stack-MiB, and rss-per-mount-KiB / threads-per-mount, the
// slope between a 1-mount and a 500-mount run. A bare helper allocates
// little else, so fresh never-touched heap pages keep its RSS below its
// heap; in the plugin, heap churn makes the same buffers resident: compare
// heap-MiB and stack-MiB, not rss-MiB, with BenchmarkCSI/rss.
//
//	default     MaxWrite 64 KiB (fusefs.MaxWrite), unlimited in-flight bytes (as now)
//	maxwrite-4k MaxWrite 4 KiB: read buffers of ~12 KiB instead of ~68 KiB
//	inflight-1  MaxInflightRequestBytes 1: one request (so one reader
//	            goroutine, thread and buffer) per mount at a time
//	both        the two together
func BenchmarkCSIFuseOptions(b *testing.B) {
	needRoot(b)
	bin := filepath.Join(b.TempDir(), "fusemem")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/secretfs/secretfs/bench/internal/fusemem").CombinedOutput(); err != nil {
		b.Fatalf("go build fusemem: %v\n%s", err, out)
	}
	for _, v := range []struct {
		name               string
		maxWrite, inflight int
	}{
		{"default", 64 << 10, 0},
		{"maxwrite-4k", 4 << 10, 0},
		{"inflight-1", 64 << 10, 1},
		{"both", 4 << 10, 1},
	} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				one := runFusemem(b, bin, 1, v.maxWrite, v.inflight)
				many := runFusemem(b, bin, csiBurst, v.maxWrite, v.inflight)
				for i, name := range []string{"rss-MiB", "anon-MiB", "threads", "goroutines", "heap-MiB", "stack-MiB", "gosys-MiB"} {
					b.ReportMetric(many[i], name)
				}
				b.ReportMetric((many[0]-one[0])*1024/(csiBurst-1), "rss-per-mount-KiB")
				b.ReportMetric((many[2]-one[2])/(csiBurst-1), "threads-per-mount")
			}
		})
	}
}

// runFusemem runs one fusemem process with n mounts and returns its
// figures (rss, anon, threads, goroutines, heap, stack, sys).
func runFusemem(b *testing.B, bin string, n, maxWrite, inflight int) []float64 {
	b.Helper()
	dir, err := os.MkdirTemp("", "fusemem")
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		// Anything a dead helper left mounted.
		raw, _ := os.ReadFile("/proc/self/mountinfo")
		for _, l := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
				unix.Unmount(f[4], unix.MNT_DETACH)
			}
		}
		os.RemoveAll(dir)
	}()
	cmd := exec.Command(bin, "-n", strconv.Itoa(n), "-dir", dir, "-maxwrite", strconv.Itoa(maxWrite), "-inflight", strconv.Itoa(inflight))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "mounted" {
		b.Fatalf("fusemem did not mount: %q", sc.Text())
	}
	for i := range n {
		for _, k := range []string{"username", "password", "ca.crt"} {
			if _, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i), k)); err != nil {
				b.Fatal(err)
			}
		}
	}
	io.WriteString(stdin, "report\n")
	if !sc.Scan() {
		b.Fatal("fusemem said nothing")
	}
	var out [7]float64
	if _, err := fmt.Sscanf(sc.Text(), "rss=%f anon=%f threads=%f goroutines=%f heap=%f stack=%f sys=%f",
		&out[0], &out[1], &out[2], &out[3], &out[4], &out[5], &out[6]); err != nil {
		b.Fatalf("fusemem said %q: %v", sc.Text(), err)
	}
	return out[:]
}
