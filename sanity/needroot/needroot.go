package needroot

import (
	"os"
	"testing"
)

// FUSE skips t (with why) unless the process can mount FUSE filesystems;
// as root it fails t if /dev/fuse is missing.
func FUSE(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("SKIP (needs root: %s)", why)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("running as root but /dev/fuse is unusable (%v): FUSE tests must not skip as root", err)
	}
}
