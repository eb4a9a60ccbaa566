package bench

// BenchmarkKeeperMemory: a `secretfs keeper` process holds N mounts
// registered through keeper.Link, as a plugin's would be (each a
// descriptor, here a pipe, and a ledger with a 2-key Secret of 64 bytes a
// key). keeper-KiB-per-mount is the keeper's VmRSS growth per mount at
// N = 1000 and 5000 (keeper-MiB-N its whole VmRSS); ledger-KiB-per-mount
// is the shared memory (RssShmem) the ledgers take in the registering
// process. The chart's keeper limit (64Mi) must fit 5000.
//
// BenchmarkTakeoverStall: a plugin with a keeper serving 200 volumes
// (`file:` source, 20 updates/s, 4 readers over every volume) is SIGKILLed
// and started again 20 times (sanity/restart's world, in a private mount
// namespace: unshare -m). stall-p50-ms, stall-p99-ms, stall-max-ms: the
// longest single read around each takeover; takeover-p50-ms: from the new
// process's start to every mount served again; failed-reads must be 0.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/keeper"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/sanity/restart"
)

func BenchmarkKeeperMemory(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("SKIP (needs root: the keeper checks its clients' uid; run as root like the plugin)")
	}
	dir := b.TempDir()
	bin := restart.Build(b, dir, "secretfs")
	for range b.N {
		sock := filepath.Join(dir, "keeper.sock")
		k := exec.Command(bin, "keeper", "--socket", sock)
		if err := k.Start(); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		link := keeper.NewLink(sock, keeper.KindCSI, nil)
		go link.Run(ctx)
		if _, err := link.List(ctx, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		base := procFields(b, fmt.Sprintf("/proc/%d/status", k.Process.Pid))["VmRSS"]
		shm0 := procFields(b, "/proc/self/status")["RssShmem"]
		var journals []*keeper.Journal
		// One pipe stands for every mount's /dev/fuse descriptor (the
		// keeper only dups and polls it): two descriptors a mount here
		// (the journal's dup, the memfd), as in the keeper.
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		held := 0
		for _, n := range []int{1000, 5000} {
			for ; held < n; held++ {
				j, err := link.Journal(fmt.Sprintf("/var/lib/kubelet/pods/p%d/volumes/kubernetes.io~csi/s/mount", held), bytes.Repeat([]byte("m"), 600), nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := j.Attach(int(r.Fd()))(snapshotOf(held)); err != nil {
					b.Fatal(err)
				}
				journals = append(journals, j)
			}
			for deadline := time.Now().Add(60 * time.Second); link.Unprotected() > 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d mounts unregistered after 60 s", link.Unprotected(), n)
				}
			}
			time.Sleep(500 * time.Millisecond)
			rss := procFields(b, fmt.Sprintf("/proc/%d/status", k.Process.Pid))["VmRSS"]
			shm := procFields(b, "/proc/self/status")["RssShmem"]
			b.ReportMetric((rss-base)/float64(n), fmt.Sprintf("keeper-KiB-per-mount-%d", n))
			b.ReportMetric(rss/1024, fmt.Sprintf("keeper-MiB-%d", n))
			b.ReportMetric((shm-shm0)/float64(n), fmt.Sprintf("ledger-KiB-per-mount-%d", n))
		}
		for _, j := range journals {
			j.Release()
		}
		link.Flush(10 * time.Second)
		cancel()
		k.Process.Signal(syscall.SIGTERM)
		k.Wait()
		r.Close()
		w.Close()
	}
}

// snapshotOf is volume i's first version: two keys of 64 bytes.
func snapshotOf(i int) fusefs.Snapshot {
	v := fusefs.VersionState{Gen: 1, Name: "..2026_12_06_00_00_00.0000000001", Created: time.Unix(1, 0),
		Files: map[string]projection.File{
			"username": {Mode: 0o644, Data: bytes.Repeat([]byte{byte(i)}, 64)},
			"password": {Mode: 0o644, Data: bytes.Repeat([]byte{byte(i + 1)}, 64)},
		}}
	return fusefs.Snapshot{Start: time.Unix(1, 0), Current: 1, Versions: []fusefs.VersionState{v}, Links: []string{"password", "username"}}
}

// stallFigures is what the benchmark's run in a private mount namespace
// hands back.
type stallFigures struct {
	Stalls    []time.Duration
	Takeovers []time.Duration // process start to every mount served again
	Reads     int64
	Failed    int64
}

func BenchmarkTakeoverStall(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("SKIP (needs root: FUSE mounts and a private mount namespace)")
	}
	if out := os.Getenv("SECRETFS_BENCH_STALL_OUT"); out != "" {
		stallRun(b, out)
		return
	}
	restarts := 20
	for range b.N {
		// Killing servers under readers happens only in a mount
		// namespace of its own (rprivate), never on the host's.
		out := filepath.Join(b.TempDir(), "stall.json")
		cmd := exec.Command("unshare", "-m", "--propagation", "private", os.Args[0],
			"-test.run", "^$", "-test.bench", "^BenchmarkTakeoverStall$", "-test.benchtime", "1x")
		cmd.Env = append(os.Environ(), "SECRETFS_BENCH_STALL_OUT="+out, fmt.Sprintf("SECRETFS_BENCH_RESTARTS=%d", restarts))
		if log, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("takeover run: %v\n%s", err, restart.Tail(string(log), 4000))
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		var f stallFigures
		if err := json.Unmarshal(raw, &f); err != nil {
			b.Fatal(err)
		}
		slices.Sort(f.Stalls)
		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		b.ReportMetric(ms(pctOf(f.Stalls, 0.5)), "stall-p50-ms")
		b.ReportMetric(ms(pctOf(f.Stalls, 0.99)), "stall-p99-ms")
		b.ReportMetric(ms(f.Stalls[len(f.Stalls)-1]), "stall-max-ms")
		slices.Sort(f.Takeovers)
		b.ReportMetric(ms(pctOf(f.Takeovers, 0.5)), "takeover-p50-ms")
		b.ReportMetric(float64(len(f.Stalls)), "restarts")
		b.ReportMetric(float64(f.Failed), "failed-reads")
		if f.Failed > 0 {
			b.Errorf("%d of %d reads failed across %d takeovers", f.Failed, f.Reads, len(f.Stalls))
		}
	}
}

func pctOf(s []time.Duration, q float64) time.Duration {
	return s[min(len(s)-1, int(float64(len(s))*q))]
}

// stallRun is the benchmark's body, inside the private mount namespace.
func stallRun(b *testing.B, out string) {
	var n int
	fmt.Sscan(os.Getenv("SECRETFS_BENCH_RESTARTS"), &n)
	const volumes = 200
	w := restart.NewWorld(b)
	bin := restart.Build(b, w.Dir, "secretfs")
	k := w.StartKeeper(bin)
	defer w.Cleanup(k)
	w.Start(bin)
	w.PublishConcurrently(volumes, 50)
	readers := restart.StartReaders(w.Targets, 4, func(_ int, v string) error {
		if !strings.HasPrefix(v, "g") {
			return fmt.Errorf("unexpected content %q", v)
		}
		return nil
	})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // 20 updates/s
		defer close(done)
		gen := 0
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if i := rand.IntN(volumes); !restart.Static(i) {
				gen++
				w.Secret(i, gen)
			}
		}
	}()
	var f stallFigures
	for range n {
		time.Sleep(time.Duration(200+rand.IntN(200)) * time.Millisecond)
		readers.Slowest()
		if err := w.Stop(syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		w.Start(bin)
		if err := w.Republish(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		f.Stalls = append(f.Stalls, readers.Slowest())
		var ms int64
		if _, rest, ok := strings.Cut(w.LastLog(), `"since_start_ms":`); ok {
			fmt.Sscan(rest, &ms)
		}
		f.Takeovers = append(f.Takeovers, time.Duration(ms)*time.Millisecond)
	}
	close(stop)
	<-done
	readers.Stop()
	f.Reads, f.Failed = readers.Reads.Load(), readers.Failures.Load()
	raw, _ := json.Marshal(f)
	if err := os.WriteFile(out, raw, 0o600); err != nil {
		b.Fatal(err)
	}
}
