package mountns_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/secretfs/secretfs/sanity/mountns"
)

// The child mounts a tmpfs over a folder of the parent's; the parent
// must see the child's marker (it ran) and no tmpfs (nothing leaked).
func TestEnter(t *testing.T) {
	dir := os.Getenv("MOUNTNS_TEST_DIR")
	if dir == "" {
		dir = t.TempDir()
		t.Setenv("MOUNTNS_TEST_DIR", dir)
	}
	if !mountns.Enter(t) {
		if _, err := os.Stat(filepath.Join(dir, "ran")); err != nil {
			t.Errorf("the child left no marker: %v", err)
		}
		if isMountPoint(t, dir) {
			t.Errorf("the child's tmpfs at %s is visible on the host", dir)
		}
		return
	}
	mountns.Require(t)
	if err := os.WriteFile(filepath.Join(dir, "ran"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	if !isMountPoint(t, dir) {
		t.Fatal("the tmpfs is not mounted in the child")
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the marker shows through the tmpfs")
	}
}

func isMountPoint(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// Require stops a test that runs in the host's namespace before its
// hostile part: run the probe below as a plain child, without Enter.
func TestRequireRefusesOnHost(t *testing.T) {
	if os.Getenv("MOUNTNS_REQUIRE_PROBE") == "1" {
		mountns.Require(t)
		t.Log("REACHED the hostile part")
		return
	}
	cmd := exec.Command("/proc/self/exe", "-test.run=^TestRequireRefusesOnHost$", "-test.v")
	cmd.Env = append(os.Environ(), "MOUNTNS_REQUIRE_PROBE=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to run a hostile case") || strings.Contains(string(out), "REACHED") {
		t.Errorf("Require in the host namespace: %v\n%s", err, out)
	}
}
