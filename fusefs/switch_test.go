package fusefs

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func versionPayload(n int) map[string]string {
	files := map[string]string{}
	for i := range 10 {
		files[fmt.Sprintf("k%d", i)] = fmt.Sprintf("v%d", n)
	}
	files["nested/k"] = fmt.Sprintf("v%d", n)
	if n%2 == 0 {
		files["sometimes"] = fmt.Sprintf("v%d", n)
	}
	return files
}

// TestSwitchIsAtomic reads every file through one `..data` resolution while
// versions switch underneath: all files must come from the same version,
// and a key present in every version must never fail to open.
func TestSwitchIsAtomic(t *testing.T) {
	fs, dir := mount(t, Options{Grace: 500 * time.Millisecond}, payload(versionPayload(0), 0o644))
	var stop atomic.Bool
	var reads, mixed, failed atomic.Int64
	var wg sync.WaitGroup
	readers := []func() error{
		func() error { // one resolution of ..data, then files relative to it
			d, err := os.Open(filepath.Join(dir, "..data"))
			if err != nil {
				return err
			}
			defer d.Close()
			return sameVersion(func(name string) ([]byte, error) { return readAt(int(d.Fd()), name) }, &mixed)
		},
		func() error { // readlink ..data, then through the named folder
			v, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				return err
			}
			return sameVersion(func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, v, name)) }, &mixed)
		},
		func() error { // through the top-level links, one file at a time
			_, err := os.ReadFile(filepath.Join(dir, "k3"))
			return err
		},
	}
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := r(); err != nil {
					failed.Add(1)
					t.Errorf("read during switches: %v", err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	for n := 1; n <= 300; n++ {
		if err := fs.Update(payload(versionPayload(n), 0o644)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	stop.Store(true)
	wg.Wait()
	if mixed.Load() != 0 {
		t.Errorf("%d reads saw files of two versions", mixed.Load())
	}
	if got := read(t, filepath.Join(dir, "k0")); got != "v300" {
		t.Errorf("after the last switch k0 = %q", got)
	}
	t.Logf("%d consistent reads across 300 switches", reads.Load())
}

func readAt(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("openat %s: %w", name, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 64)
	n, err := unix.Read(fd, buf)
	return buf[:max(n, 0)], err
}

func sameVersion(read func(string) ([]byte, error), mixed *atomic.Int64) error {
	var first string
	for _, name := range []string{"k0", "k1", "k5", "k9", "nested/k"} {
		b, err := read(name)
		if err != nil {
			return err
		}
		if first == "" {
			first = string(b)
		} else if string(b) != first {
			mixed.Add(1)
		}
	}
	return nil
}

// TestWatchersSeeDeleteSelf: the kernel gives FUSE no directory events, but
// a watch on a file (or on ..data, following the link) gets IN_DELETE_SELF
// when its version is replaced.
func TestWatchersSeeDeleteSelf(t *testing.T) {
	fs, dir := mount(t, Options{}, payload(map[string]string{"a": "1"}, 0o644))
	for _, name := range []string{"a", "..data"} {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.InotifyAddWatch(fd, filepath.Join(dir, name), unix.IN_DELETE_SELF); err != nil {
			t.Fatal(err)
		}
		if err := fs.Update(payload(map[string]string{"a": "2" + name}, 0o644)); err != nil {
			t.Fatal(err)
		}
		if !waitEvent(fd, unix.IN_DELETE_SELF, 5*time.Second) {
			t.Errorf("watch on %s: no IN_DELETE_SELF after a switch", name)
		}
		unix.Close(fd)
	}
}

func waitEvent(fd int, mask uint32, timeout time.Duration) bool {
	buf := make([]byte, 4096)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, err := unix.Read(fd, buf)
		for off := 0; err == nil && off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafePointer(&buf[off]))
			if ev.Mask&mask != 0 {
				return true
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
