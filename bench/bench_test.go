package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/sanity/needroot"
)

// Environment of a re-executed reader.
const (
	envReader   = "SECRETFS_BENCH_READER"   // read | stat | watch | lat
	envFiles    = "SECRETFS_BENCH_FILES"    // paths, separated by "\n" (or @FILE holding them)
	envDuration = "SECRETFS_BENCH_DURATION" // read/stat: how long to loop (Go duration)
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envReader); mode != "" {
		if err := reader(mode); err != nil {
			fmt.Fprintln(os.Stderr, "reader:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// reader is the separate reader process.
//
//	read:  loop open+read+close over the files; print "ops=N ns=T"
//	stat:  loop stat over the files; print "ops=N ns=T"
//	watch: spin open+read+close on the one file; print "<first line> <CLOCK_MONOTONIC ns>"
//	       each time the first line changes, until killed
//	lat:   open+read+close each file once; print each latency in ns
func reader(mode string) error {
	list := os.Getenv(envFiles)
	if name, ok := strings.CutPrefix(list, "@"); ok {
		// Long lists come in a file: one environment string is limited
		// to 128 KiB.
		raw, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		list = string(raw)
	}
	files := strings.Split(list, "\n")
	buf := make([]byte, 4096)
	readOnce := func(path string) (int, error) {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		n, err := unix.Read(fd, buf)
		unix.Close(fd)
		return n, err
	}
	var st unix.Stat_t
	var op func(string) error
	switch mode {
	case "read":
		op = func(p string) error {
			n, err := readOnce(p)
			if err == nil && n == 0 {
				err = fmt.Errorf("%s: empty read", p)
			}
			return err
		}
	case "stat":
		op = func(p string) error { return unix.Stat(p, &st) }
	case "watch":
		return watch(files[0], readOnce, buf)
	case "lat":
		return latencies1(files, readOnce)
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	d, err := time.ParseDuration(os.Getenv(envDuration))
	if err != nil {
		return err
	}
	for range 2 { // warm up: dentries, attributes, links and pages cached
		for _, f := range files {
			if err := op(f); err != nil {
				return err
			}
		}
	}
	cpu0 := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	ops := 0
	for {
		for _, f := range files {
			if err := op(f); err != nil {
				return err
			}
		}
		ops += len(files)
		if ops%(len(files)*32) == 0 && time.Now().After(deadline) {
			break
		}
	}
	fmt.Printf("ops=%d ns=%d cpu=%d\n", ops, time.Since(start).Nanoseconds(), cpuTime()-cpu0)
	return nil
}

// latencies1 is the lat mode: open+read+close of each file once, in
// order, printing each one's latency in ns on its own line.
func latencies1(files []string, readOnce func(string) (int, error)) error {
	out := bufio.NewWriter(os.Stdout)
	for _, f := range files {
		start := time.Now()
		n, err := readOnce(f)
		d := time.Since(start)
		if err == nil && n == 0 {
			err = fmt.Errorf("%s: empty read", f)
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(out, d.Nanoseconds())
	}
	return out.Flush()
}

// cpuTime is the user+system CPU time of this process in ns.
func cpuTime() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func watch(path string, readOnce func(string) (int, error), buf []byte) error {
	out := bufio.NewWriter(os.Stdout)
	last := ""
	for {
		n, err := readOnce(path)
		if err != nil {
			// A switch must never make a key unreadable: report it.
			return err
		}
		line, _, _ := bytes.Cut(buf[:n], []byte("\n"))
		if string(line) != last {
			last = string(line)
			fmt.Fprintf(out, "%s %d\n", last, monotonic())
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
}

// monotonic is CLOCK_MONOTONIC in ns: comparable across processes.
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// startReader re-executes this test binary as a reader.
func startReader(b *testing.B, mode string, files []string, d time.Duration) (*exec.Cmd, *bufio.Scanner) {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envReader+"="+mode, envFiles+"="+strings.Join(files, "\n"), envDuration+"="+d.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd, bufio.NewScanner(stdout)
}

// run is what a read/stat reader measured (process start and warm-up
// excluded): ops done in ns of wall time using cpu ns of CPU.
type run struct{ ops, ns, cpu int64 }

func (r run) perSec() float64    { return float64(r.ops) / (float64(r.ns) / 1e9) }
func (r run) perCPUSec() float64 { return float64(r.ops) / (float64(r.cpu) / 1e9) }

// runReader runs a read/stat reader to its end.
func runReader(b *testing.B, mode string, files []string, d time.Duration) (r run) {
	b.Helper()
	cmd, sc := startReader(b, mode, files, d)
	var line string
	for sc.Scan() {
		line = sc.Text()
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%s reader: %v", mode, err)
	}
	if _, err := fmt.Sscanf(line, "ops=%d ns=%d cpu=%d", &r.ops, &r.ns, &r.cpu); err != nil {
		b.Fatalf("%s reader said %q: %v", mode, line, err)
	}
	return r
}

// watcher is a running watch reader; next waits for a value.
type watcher struct {
	cmd   *exec.Cmd
	lines chan string
}

func startWatcher(b *testing.B, path, first string) *watcher {
	b.Helper()
	cmd, sc := startReader(b, "watch", []string{path}, 0)
	w := &watcher{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
	}()
	b.Cleanup(func() {
		cmd.Process.Kill() // our own child, by its pid
		cmd.Wait()
	})
	if _, err := w.next(first); err != nil {
		b.Fatal(err)
	}
	return w
}

// next returns the monotonic time at which the reader first saw want,
// skipping older values.
func (w *watcher) next(want string) (int64, error) {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				return 0, errors.New("watch reader exited")
			}
			val, ts, _ := strings.Cut(line, " ")
			if val == want {
				return strconv.ParseInt(ts, 10, 64)
			}
		case <-timeout:
			return 0, fmt.Errorf("value %q not seen within 10s", want)
		}
	}
}

// latencies collects durations and reports percentiles in ms.
type latencies []time.Duration

func (l latencies) pct(q float64) float64 {
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return float64(s[max(i, 0)]) / 1e6
}

func (l latencies) report(b *testing.B, prefix string) {
	if len(l) == 0 {
		return
	}
	b.ReportMetric(l.pct(0.50), prefix+"p50-ms")
	b.ReportMetric(l.pct(0.99), prefix+"p99-ms")
	b.ReportMetric(l.pct(1), prefix+"max-ms")
}

// value is the content of key i in version gen: a first line naming the
// version, padded to size.
func value(gen, size int) []byte {
	v := fmt.Appendf(nil, "v%08d\n", gen)
	for len(v) < size {
		v = append(v, 'x')
	}
	return v[:max(size, 10)]
}

// needRoot skips without the privileges to mount.
func needRoot(b *testing.B) {
	needroot.FUSE(b, "benchmarks mount FUSE")
}

// mountTmpfs lays out files like kubelet's atomic writer on a fresh tmpfs,
// then makes it read-only (as a container sees its secret volume).
func mountTmpfs(b *testing.B, files map[string][]byte) string {
	b.Helper()
	dir := b.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size=1m"); err != nil {
		b.Fatalf("mount tmpfs: %v", err)
	}
	b.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	ts := ".." + time.Now().Format("2006_01_02_15_04_05.000000000")
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		b.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, ts, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		b.Fatal(err)
	}
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		b.Fatalf("remount tmpfs ro: %v", err)
	}
	return dir
}
