package mountns

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envParent carries the host's mount namespace (its /proc/self/ns/mnt
// link) to the child, which both marks the child and lets it prove that
// its namespace is another one.
const envParent = "SECRETFS_MOUNTNS_PARENT"

// Enter runs the calling top-level test in a private mount namespace; see
// the package comment. It returns true only inside one.
func Enter(t *testing.T) bool {
	t.Helper()
	if parent := os.Getenv(envParent); parent != "" {
		if err := check(parent); err != nil {
			t.Fatalf("mountns: %v", err)
		}
		dropFUSECopies()
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP (needs root: a private mount namespace)")
	}
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("mountns: Enter is for top-level tests, not the subtest %s", t.Name())
	}
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatalf("mountns: %v", err)
	}
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+fmt.Sprint(timeUntil(d)))
	}
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Env = append(os.Environ(), envParent+"="+self)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	relay(t, out)
	switch {
	case err != nil:
		t.Errorf("mountns: the test in a private mount namespace failed: %v", err)
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name())) && !bytes.Contains(out, []byte("--- SKIP: "+t.Name())):
		t.Errorf("mountns: the child did not run %s", t.Name())
	}
	return false
}

// dropFUSECopies detaches, in this private namespace only, the copies of
// the FUSE mounts it inherited from the host: other tests' mounts, which
// the kernel keeps serving as long as any copy exists, so that an unmount
// on the host would not end their session until this test ended (seen as
// a server that did not stop after its unmount).
func dropFUSECopies() {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var fuse []string
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, fstype := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(fstype) == 0 || fstype[0] != "fuse" && !strings.HasPrefix(fstype[0], "fuse.") {
			continue
		}
		fuse = append(fuse, f[4])
	}
	// Last mounted first: stacked mounts come off from the top.
	for i := len(fuse) - 1; i >= 0; i-- {
		syscall.Unmount(unescape(fuse[i]), syscall.MNT_DETACH)
	}
}

// unescape undoes mountinfo's octal escapes.
func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// Require fails the test unless it runs inside a private mount
// namespace that Enter made.
func Require(t testing.TB) {
	t.Helper()
	parent := os.Getenv(envParent)
	if parent == "" {
		t.Fatal("mountns: refusing to run a hostile case in the host's mount namespace (call mountns.Enter first)")
	}
	if err := check(parent); err != nil {
		t.Fatalf("mountns: %v", err)
	}
}

// check proves the namespace is not the parent's and that / propagates
// nothing (no "shared:" peer group on the root mount).
func check(parent string) error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	if self == parent {
		return fmt.Errorf("still in the host's mount namespace %s", self)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options optional... - type
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || fields[4] != "/" {
			continue
		}
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			if strings.HasPrefix(opt, "shared:") {
				return fmt.Errorf("/ is still shared (%s) in the private namespace", opt)
			}
		}
	}
	return sc.Err()
}

// relay shows the child's output as the parent's log, line by line.
func relay(t *testing.T, out []byte) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" {
			t.Log(line)
		}
	}
}

// timeUntil leaves the child a moment less than the parent has, so the
// child's own timeout reports first.
func timeUntil(d time.Time) time.Duration {
	left := time.Until(d) - 5*time.Second
	if left < time.Second {
		left = time.Second
	}
	return left.Round(time.Second)
}
