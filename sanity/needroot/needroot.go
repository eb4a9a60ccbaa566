// Package needroot is how a test says it mounts FUSE. Without root the test
// is skipped with one line, "SKIP (needs root: <why>)", so a non-root
// `make test-unit` shows what it did not run. As root the test never skips:
// a missing /dev/fuse fails it, because a FUSE test silently skipped while
// root would let a green `make test` prove nothing.
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
