package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

type root struct{ fs.Inode }

func (r *root) OnAdd(ctx context.Context) {
	for _, k := range []string{"username", "password", "ca.crt"} {
		data := []byte(strings.Repeat("x", 64))
		if k == "ca.crt" {
			data = []byte(strings.Repeat("C", 1024))
		}
		ch := r.NewPersistentInode(ctx, &fs.MemRegularFile{Data: data, Attr: fuse.Attr{Mode: 0o444}}, fs.StableAttr{})
		r.AddChild(k, ch, false)
	}
}

func main() {
	n := flag.Int("n", 500, "mounts")
	dir := flag.String("dir", "", "parent of the mount points")
	maxWrite := flag.Int("maxwrite", 64*1024, "MountOptions.MaxWrite")
	inflight := flag.Int("inflight", 0, "MountOptions.MaxInflightRequestBytes (0: go-fuse default, unlimited)")
	flag.Parse()
	var servers []*fuse.Server
	var dirs []string
	defer func() {
		for i, s := range servers {
			if err := s.Unmount(); err != nil {
				syscall.Unmount(dirs[i], syscall.MNT_DETACH)
			}
		}
	}()
	for i := range *n {
		d := filepath.Join(*dir, strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
		s, err := fs.Mount(d, &root{}, &fs.Options{MountOptions: fuse.MountOptions{
			DirectMount: true, AllowOther: true, FsName: "fusemem", Name: "fusemem",
			DisableXAttrs: true, DisableReadDirPlus: true, EnableSymlinkCaching: true,
			MaxWrite: *maxWrite, MaxBackground: 16, MaxInflightRequestBytes: *inflight,
		}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
		servers, dirs = append(servers, s), append(dirs, d)
	}
	fmt.Println("mounted")
	bufio.NewReader(os.Stdin).ReadString('\n')
	time.Sleep(5 * time.Second)
	var lo []float64
	for i := range 5 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		s := sample()
		if lo == nil {
			lo = s
		}
		for j := range s {
			lo[j] = min(lo[j], s[j])
		}
	}
	fmt.Printf("rss=%.1f anon=%.1f threads=%.0f goroutines=%.0f heap=%.1f stack=%.1f sys=%.1f\n", lo[0], lo[1], lo[2], lo[3], lo[4], lo[5], lo[6])
}

func sample() []float64 {
	st := map[string]float64{}
	raw, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(raw), "\n") {
		k, v, _ := strings.Cut(l, ":")
		if f := strings.Fields(v); len(f) > 0 {
			st[k], _ = strconv.ParseFloat(f[0], 64)
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	const mib = 1 << 20
	return []float64{st["VmRSS"] / 1024, st["RssAnon"] / 1024, st["Threads"], float64(runtime.NumGoroutine()),
		float64(m.HeapInuse) / mib, float64(m.StackInuse) / mib, float64(m.Sys) / mib}
}
