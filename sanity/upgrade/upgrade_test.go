package upgrade

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secretfs/secretfs/sanity/mountns"
	"github.com/secretfs/secretfs/sanity/needroot"
	"github.com/secretfs/secretfs/sanity/restart"
)

// previous reads the commit recorded in PREVIOUS_RELEASE.
func previous(t *testing.T) string {
	t.Helper()
	f, err := os.Open("PREVIOUS_RELEASE")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if l := strings.TrimSpace(s.Text()); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	t.Fatal("PREVIOUS_RELEASE names no commit")
	return ""
}

// buildAt builds secretfs as it was at commit into dir: the tree is taken
// with git archive, so the repository's worktrees and index stay as they are.
func buildAt(t *testing.T, commit, dir string) string {
	t.Helper()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("this test runs inside the secretfs git repository: %v", err)
	}
	repo := strings.TrimSpace(string(top))
	if err := exec.Command("git", "-C", repo, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		t.Fatalf("commit %s of PREVIOUS_RELEASE is not in this clone (a shallow clone? fetch the full history): %v", commit, err)
	}
	src := filepath.Join(dir, "previous-src")
	os.Mkdir(src, 0o755)
	archive := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", repo, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	bin := filepath.Join(dir, "secretfs-previous")
	build := exec.Command("go", "build", "-o", bin, "./cmd/secretfs")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", commit, err, out)
	}
	return bin
}

// protocols is what `secretfs version` says a binary speaks.
func protocols(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", filepath.Base(bin), err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "keeper protocol: "); ok {
			return v
		}
	}
	t.Fatalf("%s speaks no keeper protocol (a release before the versioned keeper?)", filepath.Base(bin))
	return ""
}

func TestUpgradeAndRollback(t *testing.T) {
	needroot.FUSE(t, "upgrades keep FUSE mounts")
	// It kills servers under readers: only in a private mount namespace.
	if !mountns.Enter(t) {
		return
	}
	commit := previous(t)
	dir := t.TempDir()
	prev := buildAt(t, commit, dir)
	cur := restart.Build(t, dir, "secretfs-current")
	t.Logf("previous release %.12s speaks keeper protocol %s; this build %s", commit, protocols(t, prev), protocols(t, cur))
	for _, c := range []struct{ name, keeper string }{{"keeper=previous", prev}, {"keeper=current", cur}} {
		t.Run(c.name, func(t *testing.T) { handOver(t, c.keeper, prev, cur) })
	}
}

func handOver(t *testing.T, keeper, prev, cur string) {
	volumes := 20
	if testing.Short() {
		volumes = 10
	}
	w := restart.NewWorld(t)
	k := w.StartKeeper(keeper)
	t.Cleanup(func() { w.Cleanup(k) })
	gens := make([]atomic.Int64, volumes) // the newest generation written
	w.Start(prev)
	w.PublishAll(volumes)

	// A read must show a generation that was written, never one ahead.
	readers := restart.StartReaders(w.Targets, 4, func(i int, v string) error {
		n := int64(generation(v))
		if n < 0 {
			return fmt.Errorf("content is not a generation")
		}
		if n > gens[i].Load() {
			return fmt.Errorf("shows generation %d, newest written %d", n, gens[i].Load())
		}
		return nil
	})
	var mu sync.Mutex // orders writes of one Secret
	update := func(i int) int {
		mu.Lock()
		defer mu.Unlock()
		g := int(gens[i].Add(1))
		w.Secret(i, g)
		return g
	}
	stop := make(chan struct{})
	var updates sync.WaitGroup
	updates.Add(1)
	go func() { // Secrets keep changing through every step
		defer updates.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
			}
			if i := rand.IntN(volumes); !restart.Static(i) {
				update(i)
			}
		}
	}()
	// arrive checks that a change made now shows, for a few volumes.
	arrive := func(step string) {
		t.Helper()
		for _, i := range []int{0, volumes / 2, volumes - 2} {
			want := update(i)
			deadline := time.Now().Add(10 * time.Second)
			for {
				v, _ := restart.ReadVolume(w.Targets[i])
				if generation(v) >= want { // or a later update
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the %s, volume %d shows %q, want g%d or later", step, i, v, want)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	step := func(name, bin string) time.Duration {
		t.Helper()
		readers.Slowest()
		if err := w.Stop(syscall.SIGTERM); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		w.Start(bin)
		if err := w.Republish(); err != nil {
			t.Fatalf("republish after the %s: %v", name, err)
		}
		taken := fmt.Sprintf(`"msg":"mounts taken over from the keeper","volumes":%d`, volumes)
		if log := w.LastLog(); !strings.Contains(log, taken) || strings.Contains(log, "could not take a mount back") {
			t.Fatalf("after the %s the plugin did not take every mount over", name)
		}
		time.Sleep(time.Second)
		stall := readers.Slowest()
		arrive(name)
		return stall
	}
	time.Sleep(time.Second)
	arrive("first start")
	upgrade := step("upgrade", cur)
	rollback := step("rollback", prev)

	close(stop)
	updates.Wait()
	// Every volume catches up with its Secret after both steps.
	for i := range volumes {
		var want string
		if restart.Static(i) { // its data comes with the (re)publish
			g := int(gens[i].Add(1))
			restart.SetStatic(w.Reqs[i], g)
			if err := w.Publish(w.Reqs[i]); err != nil {
				t.Fatalf("republish of static volume %d: %v", i, err)
			}
			want = fmt.Sprintf("g%d", g)
		} else {
			want = fmt.Sprintf("g%d", update(i))
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, _ := restart.ReadVolume(w.Targets[i])
			if v == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("volume %d shows %q, want %q after the rollback", i, v, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	first := readers.Stop()
	if n := readers.Failures.Load(); n > 0 {
		t.Errorf("%d of %d reads failed; first: %v", n, readers.Reads.Load(), first)
	}
	if err := w.UnpublishAll(); err != nil {
		t.Errorf("unpublish: %v", err)
	}
	if n := restart.CountMounts(w.Dir); n != 0 {
		t.Errorf("%d mounts left after unpublishing everything", n)
	}
	t.Logf("%d volumes, %d reads, %d failed; longest read stall: upgrade %v, rollback %v",
		volumes, readers.Reads.Load(), readers.Failures.Load(), upgrade.Round(time.Millisecond), rollback.Round(time.Millisecond))
}

// generation is N of content gN, or -1.
func generation(v string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(v, "g"))
	if err != nil || !strings.HasPrefix(v, "g") || n < 0 {
		return -1
	}
	return n
}
