package fusefs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/sanity/needroot"
)

// threads is this process's OS thread count (/proc/self/status Threads).
func threads(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads in /proc/self/status")
	return 0
}

// rawRead reads path with plain syscalls: an os.File would add the file
// to the netpoller, which this process also serves the mount through.
func rawRead(t *testing.T, path string) string {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 256)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// TestThreadsDoNotGrowWithMounts: 200 mounts, each served and read, add
// fewer than 24 OS threads to the process. Each server waits for the
// kernel in the netpoller; with a blocking read(2) per mount this is
// over 150 even if every thread the process already had is reused. The
// bound is on what the mounts add: the runtime never ends a thread, and
// earlier tests of the process (TestSwitchIsAtomic's readers, on a busy
// machine) leave up to 69 seen so far.
func TestThreadsDoNotGrowWithMounts(t *testing.T) {
	needroot.FUSE(t, "200 FUSE mounts")
	const mounts = 200
	before := threads(t)
	dirs := make([]string, mounts)
	for i := range dirs {
		_, dirs[i] = mount(t, Options{}, payload(map[string]string{"key": fmt.Sprintf("value-%d", i)}, 0o644))
	}
	for round := range 3 { // first reads (LOOKUPs, READ), then cached ones
		for i, dir := range dirs {
			if got, want := rawRead(t, filepath.Join(dir, "key")), fmt.Sprintf("value-%d", i); got != want {
				t.Fatalf("round %d, mount %d: read %q, want %q", round, i, got, want)
			}
		}
	}
	// Threads that ran a syscall during the reads stay parked in the
	// runtime; none is pinned in a read of /dev/fuse.
	time.Sleep(100 * time.Millisecond)
	after := threads(t)
	t.Logf("%d mounts: %d OS threads (%d before)", mounts, after, before)
	if after-before >= 24 {
		t.Errorf("%d mounts added %d OS threads (%d before, %d after), want fewer than 24", mounts, after-before, before, after)
	}
}
