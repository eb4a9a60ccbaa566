package bench

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/sanity/needroot"
)

// BenchmarkShareBytes mounts 100 volumes of one 512 KiB Secret in this
// process, each payload sharing the Secret's bytes as projection.Project
// hands them out, and reports what the 100 mounts add to the process:
// rss-MiB-100 (VmRSS after a GC, minus before) and locked-KiB-100 (VmLck).
// With one copy per Secret version the bytes count once (0.5 MiB); with a
// copy per volume they count 100 times (50 MiB). The rest is the servers'
// own cost.
func BenchmarkShareBytes(b *testing.B) {
	needroot.FUSE(b, "mounts 100 FUSE volumes")
	secret := make([]byte, 512<<10)
	rand.Read(secret)
	for b.Loop() {
		before := status(b)
		var all []*fusefs.FS
		for i := range 100 {
			dir := filepath.Join(b.TempDir(), strconv.Itoa(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			p := &projection.Payload{Files: map[string]projection.File{"tls.key": {Mode: 0o400, Data: secret}}}
			fs, err := fusefs.New(fusefs.Options{Logger: quiet}, p)
			if err != nil {
				b.Fatal(err)
			}
			if err := fs.Mount(dir); err != nil {
				b.Fatal(err)
			}
			all = append(all, fs)
		}
		after := status(b)
		b.ReportMetric(float64(after["VmRSS"]-before["VmRSS"])/1024, "rss-MiB-100")
		b.ReportMetric(float64(after["VmLck"]-before["VmLck"]), "locked-KiB-100")
		for _, fs := range all {
			if err := fs.Unmount(); err != nil {
				b.Fatal(err)
			}
			select {
			case <-fs.Done():
			case <-time.After(10 * time.Second):
				b.Fatal("server did not stop")
			}
		}
	}
}

// status reads /proc/self/status sizes (kB) after giving freed memory back.
func status(b *testing.B) map[string]int64 {
	runtime.GC()
	debug.FreeOSMemory()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int64{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+):\s+(\d+) kB$`).FindAllSubmatch(data, -1) {
		n, _ := strconv.ParseInt(string(m[2]), 10, 64)
		out[string(m[1])] = n
	}
	if len(out) == 0 {
		b.Fatal(fmt.Errorf("no sizes in /proc/self/status"))
	}
	return out
}
