//go:build linux

package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestKeeperSurvivesKills kills `secretfs mount --keeper` with SIGKILL at
// random moments while readers loop over every file and the Secret keeps
// changing; the next process takes the mount over. No reader may see an
// error or a mixed version.
func TestKeeperSurvivesKills(t *testing.T) {
	needRoot(t)
	kills := 5
	if testing.Short() {
		kills = 2
	}
	work := t.TempDir()
	sock := startKeeper(t, work)

	src := filepath.Join(work, "src")
	os.Mkdir(src, 0o755)
	manifest := filepath.Join(src, "s.yaml")
	version := func(n int) string {
		kv := []string{}
		for i := range 8 {
			kv = append(kv, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", n))
		}
		return secretYAML("app", kv...)
	}
	writeManifest(t, manifest, version(0))
	dir := filepath.Join(work, "m")
	args := []string{"mount", "--keeper", sock, "--source", "file:" + src, "--secret", "app", dir}
	var logs []*strings.Builder
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, args...)
		logs = append(logs, &strings.Builder{})
		cmd.Stderr = logs[len(logs)-1]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("server %d stderr:\n%s", i, l.String())
			}
		}
	})
	cur := start()
	waitFor(t, "mount", func() bool { _, err := os.Lstat(filepath.Join(dir, "..data")); return err == nil })

	var stop atomic.Bool
	var reads, errs, mixed atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				var seen string
				// Odd readers resolve ..data once and read every file
				// relative to it: all must come from one version.
				var data *os.File
				if r%2 == 1 {
					var err error
					if data, err = os.Open(filepath.Join(dir, "..data")); err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
				}
				for i := range 8 {
					name := fmt.Sprintf("k%d", i)
					var b []byte
					var err error
					if data != nil {
						b, err = readAt(data, name)
					} else {
						b, err = os.ReadFile(filepath.Join(dir, name))
					}
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					if r%2 == 1 && seen != "" && string(b) != seen {
						mixed.Add(1)
					}
					seen = string(b)
				}
				if data != nil {
					data.Close()
				}
				reads.Add(1)
			}
		}()
	}
	var stalls []time.Duration
	n := 0
	for kill := range kills {
		for range 3 + rand.IntN(5) { // a few updates, then a kill at a random moment
			n++
			writeManifest(t, manifest, version(n))
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
		cur.Process.Signal(syscall.SIGKILL)
		// A killed server must exit by itself, as a container's must for
		// kubelet to restart it: no thread of it may wait on its own mount.
		exited := make(chan struct{})
		go func(c *exec.Cmd) { c.Wait(); close(exited) }(cur)
		down := time.Now()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("kill %d: the killed server did not exit within 10s (a thread waits on its own mount)", kill)
		}
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		cur = start()
		before := reads.Load()
		waitFor(t, "readers to go on after the takeover", func() bool { return reads.Load() > before })
		stalls = append(stalls, time.Since(down))
	}
	n++
	writeManifest(t, manifest, version(n))
	want := fmt.Sprintf("v%d", n)
	waitFor(t, "the last update after the takeovers", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "k0"))
		return string(b) == want
	})
	stop.Store(true)
	wg.Wait()
	cur.Process.Signal(syscall.SIGTERM)
	if err := cur.Wait(); err != nil {
		t.Errorf("last server: %v", err)
	}
	if errs.Load() > 0 || mixed.Load() > 0 {
		t.Errorf("%d read errors (first: %v), %d mixed versions over %d reads", errs.Load(), firstErr.Load(), mixed.Load(), reads.Load())
	}
	t.Logf("%d kills, %d updates, %d reads; down-to-reading-again times: %s", kills, n, reads.Load(), durations(stalls))
}

// startKeeper runs `secretfs keeper` on a socket in work until the test
// ends and returns the socket's path once it listens.
func startKeeper(t *testing.T, work string) string {
	t.Helper()
	sock := filepath.Join(work, "keeper.sock")
	k := exec.Command(bin, "keeper", "--socket", sock)
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Process.Kill(); k.Wait() })
	waitFor(t, "keeper socket", func() bool { _, err := os.Stat(sock); return err == nil })
	return sock
}

func readAt(dir *os.File, name string) ([]byte, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("openat %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	buf := make([]byte, 64)
	n, err := f.Read(buf)
	return buf[:n], err
}

func durations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(s, " ")
}
