package bench

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/bench/benchplot"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
)

type lineCounter struct{ n atomic.Int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte("\n"))))
	return len(p), nil
}

// minSamples is the fewest edits or switches a latency run takes.
const minSamples = 200

var quiet = slog.New(slog.DiscardHandler)

func manifest(gen int) []byte {
	return fmt.Appendf(nil, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bench\n  namespace: default\nstringData:\n  value: %q\n", fmt.Sprintf("v%08d", gen))
}

// edit replaces the manifest as editors and kubectl do, and returns
// CLOCK_MONOTONIC just before the rename(2) that makes the change: a
// reader may see the new value before rename's return is timed (this
// goroutine descheduled on a busy machine), never before its call.
func edit(b *testing.B, dir string, gen int) int64 {
	tmp := filepath.Join(dir, ".secret.yaml.tmp")
	if err := os.WriteFile(tmp, manifest(gen), 0o644); err != nil {
		b.Fatal(err)
	}
	t0 := monotonic()
	if err := os.Rename(tmp, filepath.Join(dir, "secret.yaml")); err != nil {
		b.Fatal(err)
	}
	return t0
}

func BenchmarkUpdateLatency(b *testing.B) {
	needRoot(b)
	src, mnt := mountManifest(b)
	w := startWatcher(b, filepath.Join(mnt, "value"), fmt.Sprintf("v%08d", 0))

	n := max(b.N, minSamples)
	lat := make(latencies, 0, n)
	b.ResetTimer()
	start := time.Now()
	for gen := 1; gen <= n; gen++ {
		t0 := edit(b, src, gen)
		seen, err := w.next(fmt.Sprintf("v%08d", gen))
		if err != nil {
			b.Fatalf("edit %d: %v", gen, err)
		}
		lat = append(lat, time.Duration(seen-t0))
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(float64(n), "edits")
	lat.report(b, "")
	record(b, benchplot.UpdateLatencyName, benchplot.UpdateLatency, "secretfs, file source: manifest edit → read (bench)", seconds(lat))
}

// mountManifest writes version 0 of the bench Secret into a manifest
// folder and mounts it with mounted.Mount through the file backend and
// the cache (Watch). It returns the folder and the mount point.
func mountManifest(b *testing.B) (src, mnt string) {
	src = b.TempDir()
	edit(b, src, 0)
	be, err := file.New(src)
	if err != nil {
		b.Fatal(err)
	}
	c := cache.New(be, cache.Options{Logger: quiet})
	b.Cleanup(c.Close)
	mnt = b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	v, err := mounted.Mount(ctx, c, mnt, mounted.Config{
		Spec:   projection.Spec{Namespace: "default", SecretName: "bench"},
		Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		v.Unmount()
		<-v.Done()
	})
	return src, mnt
}

func BenchmarkSwitch(b *testing.B) {
	needRoot(b)
	payload := func(gen int) *projection.Payload {
		p := &projection.Payload{Files: map[string]projection.File{}}
		for i := range 10 {
			p.Files[fmt.Sprintf("k%d", i)] = projection.File{Mode: 0o644, Data: value(gen, 1024)}
		}
		return p
	}

	b.Run("update", func(b *testing.B) {
		fs, err := fusefs.New(fusefs.Options{Logger: quiet}, payload(0))
		if err != nil {
			b.Fatal(err)
		}
		mnt := b.TempDir()
		if err := fs.Mount(mnt); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			fs.Unmount()
			<-fs.Done()
		})
		w := startWatcher(b, filepath.Join(mnt, "k0"), fmt.Sprintf("v%08d", 0))

		n := max(b.N, minSamples)
		call := make(latencies, 0, n)
		visible := make(latencies, 0, n)
		b.ResetTimer()
		start := time.Now()
		for gen := 1; gen <= n; gen++ {
			p := payload(gen)
			t0 := monotonic()
			if err := fs.Update(p); err != nil {
				b.Fatal(err)
			}
			t1 := monotonic()
			seen, err := w.next(fmt.Sprintf("v%08d", gen))
			if err != nil {
				b.Fatalf("update %d: %v", gen, err)
			}
			call = append(call, time.Duration(t1-t0))
			visible = append(visible, time.Duration(seen-t0))
		}
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), "ns/op")
		call.report(b, "update-")
		visible.report(b, "visible-")
	})

	b.Run("mount", func(b *testing.B) {
		p := payload(0)
		var mount, unmount latencies
		// go-fuse logs "Failed to read from fuse conn: 103" through the
		// standard logger when a server ends by umount; it would split the
		// result line. Count those lines instead.
		logs := &lineCounter{}
		log.SetOutput(logs)
		defer log.SetOutput(os.Stderr)
		for range b.N {
			mnt := b.TempDir()
			t0 := time.Now()
			fs, err := fusefs.New(fusefs.Options{Logger: quiet}, p)
			if err != nil {
				b.Fatal(err)
			}
			if err := fs.Mount(mnt); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := fs.Unmount(); err != nil {
				b.Fatal(err)
			}
			<-fs.Done()
			t2 := time.Now()
			mount = append(mount, t1.Sub(t0))
			unmount = append(unmount, t2.Sub(t1))
		}
		b.ReportMetric(float64(logs.n.Load())/float64(b.N), "fuse-logs/op")
		mount.report(b, "mount-")
		unmount.report(b, "unmount-")
	})
}
