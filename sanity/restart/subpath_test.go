package restart

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/sanity/mountns"
	"github.com/secretfs/secretfs/sanity/needroot"
)

// TestSubPathPluginRestart: volumes with subPathUpdates "true" (one of a
// Secret, one of nodePublishSecretRef data) have a key's file bound as a
// container's subPath would be; the plugin is SIGKILLed, then stopped
// (SIGTERM) for an upgrade, and the Secrets change while nobody serves.
// The next plugin takes the mounts over with the same node IDs, so the
// binds follow.
func TestSubPathPluginRestart(t *testing.T) { subPathRestarts(t) }

// TestSubPathPluginRestartNoResend is TestSubPathPluginRestart as on a
// kernel without FUSE_NOTIFY_RESEND (before Linux 6.9, e.g. RHEL 9's 5.14).
func TestSubPathPluginRestartNoResend(t *testing.T) { subPathRestarts(t, "SECRETFS_NO_RESEND=1") }

func subPathRestarts(t *testing.T, env ...string) {
	needroot.FUSE(t, "restarts keep FUSE mounts")
	// It binds into, and kills, servers of mounts: only in a private
	// mount namespace.
	if !mountns.Enter(t) {
		return
	}
	w := NewWorld(t)
	w.Env = env
	bin := Build(t, w.Dir, "secretfs")
	k := w.StartKeeper(bin)
	t.Cleanup(func() { w.Cleanup(k) })
	w.Start(bin)
	vols := []int{0, 4} // Static(4): nodePublishSecretRef
	var binds []string
	for _, i := range vols {
		w.Secret(i, 0)
		req := w.Request(i)
		req.VolumeContext["subPathUpdates"] = "true"
		if Static(i) {
			SetStatic(req, 0)
		}
		if err := w.Publish(req); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		w.Reqs, w.Targets = append(w.Reqs, req), append(w.Targets, req.TargetPath)
		b := filepath.Join(w.Dir, fmt.Sprintf("bind-%d", i))
		if err := os.WriteFile(b, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(filepath.Join(req.TargetPath, "a"), b, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(b, unix.MNT_DETACH) })
		binds = append(binds, b)
	}
	for gen, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		gen++
		if err := w.Stop(sig); err != nil {
			t.Fatal(err)
		}
		for j, i := range vols {
			w.Secret(i, gen)
			if Static(i) {
				SetStatic(w.Reqs[j], gen)
			}
		}
		w.Start(bin)
		if err := w.Republish(); err != nil {
			t.Fatalf("republish after %v: %v", sig, err)
		}
		want := fmt.Sprintf("g%d", gen)
		for _, b := range binds {
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, _ := os.ReadFile(b)
				if string(got) == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after %v and a takeover the bind %s reads %q, want %q", sig, filepath.Base(b), got, want)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
}
