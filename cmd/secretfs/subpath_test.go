//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/sanity/mountns"
	"github.com/secretfs/secretfs/sanity/syncbuf"
)

// TestMountSubPathTakeover: `secretfs mount --subpath-updates --keeper`
// is SIGKILLed while a bind of a key's file (a container's subPath, in a
// private mount namespace) and a bind of a removed key's file are held; the
// next process takes the mount over from the keeper's snapshot, with the
// same node IDs: the first bind follows the change made while nobody
// served, the second keeps its last bytes, and follows again when its key
// comes back.
func TestMountSubPathTakeover(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	work := t.TempDir()
	sock := startKeeper(t, work)
	src, dir := filepath.Join(work, "src"), filepath.Join(work, "m")
	os.Mkdir(src, 0o755)
	manifest := filepath.Join(src, "s.yaml")
	writeManifest(t, manifest, secretYAML("app", "username", "u0", "gone", "g0"))
	var logs syncbuf.Buffer
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "mount", "--keeper", sock, "--subpath-updates", "--source", "file:"+src, "--secret", "app", dir)
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cur := start()
	t.Cleanup(func() {
		cur.Process.Signal(syscall.SIGTERM)
		cur.Wait()
		if t.Failed() {
			t.Logf("servers' stderr:\n%s", logs.String())
		}
	})
	// "mounted" is logged once the keeper holds the mount (or did not
	// answer within keeper.PublishWait).
	waitFor(t, "mount", func() bool { return strings.Contains(logs.String(), "msg=mounted") })
	user, gone := filepath.Join(work, "username"), filepath.Join(work, "gone")
	for b, src := range map[string]string{user: "username", gone: "gone"} {
		mountns.Require(t)
		must(t, os.WriteFile(b, nil, 0o644))
		must(t, unix.Mount(filepath.Join(dir, src), b, "", unix.MS_BIND, ""))
		t.Cleanup(func() { unix.Unmount(b, unix.MNT_DETACH) })
	}
	reads := func(p, want string) {
		t.Helper()
		waitFor(t, p+" reading "+want, func() bool { b, _ := os.ReadFile(p); return string(b) == want })
	}
	inode := func(p string) uint64 {
		var st unix.Stat_t
		must(t, unix.Stat(p, &st))
		return st.Ino
	}
	first := inode(user)
	writeManifest(t, manifest, secretYAML("app", "username", "u1"))
	reads(user, "u1")
	reads(gone, "g0")
	// u1 went to the keeper's ledger before the kernel saw it.
	cur.Process.Signal(syscall.SIGKILL)
	cur.Wait()
	writeManifest(t, manifest, secretYAML("app", "username", "u2"))
	cur = start()
	reads(user, "u2")
	reads(gone, "g0")
	if got := inode(filepath.Join(dir, "username")); got != first {
		t.Errorf("username's inode after the takeover: %d, was %d", got, first)
	}
	writeManifest(t, manifest, secretYAML("app", "username", "u3", "gone", "g3"))
	reads(user, "u3")
	reads(gone, "g3")
}
