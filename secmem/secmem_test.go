//go:build linux

package secmem

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestShareOneCopyPerContent(t *testing.T) {
	blocks0, mapped0, _ := Stats()
	a, err := Share([][]byte{[]byte("user"), []byte("pass")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Share([][]byte{[]byte("user"), []byte("pass")})
	c, _ := Share([][]byte{[]byte("us"), []byte("erpass")}) // same bytes, other parts
	d, _ := Share([][]byte{[]byte("user"), []byte("pasS")})
	if a != b {
		t.Error("the same parts gave two blocks")
	}
	if c == a || d == a {
		t.Error("different parts shared a block")
	}
	if got := string(a.Bytes()); got != "userpass" {
		t.Errorf("bytes = %q", got)
	}
	if blocks, mapped, _ := Stats(); blocks-blocks0 != 3 || mapped-mapped0 != 3*int64(os.Getpagesize()) {
		t.Errorf("held %d blocks, %d bytes; want 3 blocks of one page", blocks-blocks0, mapped-mapped0)
	}
	a.Release()
	if string(b.Bytes()) != "userpass" {
		t.Error("a holder's release changed the bytes of another")
	}
	b.Release()
	c.Release()
	d.Release()
	if blocks, mapped, locked := Stats(); blocks != blocks0 || mapped != mapped0 || locked > mapped {
		t.Errorf("after release: %d blocks, %d mapped, %d locked", blocks, mapped, locked)
	}
	// A new block for the released content: the table forgot it.
	e, _ := Share([][]byte{[]byte("userpass")})
	if e == a || string(e.Bytes()) != "userpass" {
		t.Error("a released block was handed out again")
	}
	e.Release()
}

func TestEmptyIsNil(t *testing.T) {
	b, err := Share([][]byte{nil, {}})
	if b != nil || err != nil {
		t.Fatalf("Share(empty) = %v, %v", b, err)
	}
	b.Release() // no-op
	if b.Bytes() != nil || b.Locked() {
		t.Error("nil block holds something")
	}
}

func TestDoubleReleasePanics(t *testing.T) {
	b, _ := Share([][]byte{[]byte("x")})
	b.Release()
	defer func() {
		if recover() == nil {
			t.Error("second release did not panic")
		}
	}()
	b.Release()
}

func TestHarden(t *testing.T) {
	if err := Harden(); err != nil {
		t.Fatal(err)
	}
	if d, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); d != 0 {
		t.Errorf("dumpable = %d", d)
	}
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_CORE, &lim)
	if lim.Cur != 0 || lim.Max != 0 {
		t.Errorf("RLIMIT_CORE = %+v", lim)
	}
}

// TestLockedWithinLimit runs in a child without CAP_IPC_LOCK (dropped from
// the bounding set when we are root) and a locked-memory limit of two
// pages: blocks within it are locked, a block beyond it is still served,
// unlocked, and one warning names the limit.
func TestLockedWithinLimit(t *testing.T) {
	if os.Getenv("SECMEM_CHILD") == "1" {
		lockChild(t)
		return
	}
	args := []string{os.Args[0], "-test.run=^TestLockedWithinLimit$", "-test.v"}
	if os.Geteuid() == 0 {
		args = append([]string{"setpriv", "--bounding-set=-ipc_lock", "--inh-caps=-ipc_lock"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "SECMEM_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func lockChild(t *testing.T) {
	page := os.Getpagesize()
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: uint64(2 * page), Max: uint64(2 * page)}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	small, err := Share([][]byte{[]byte("fits")})
	if err != nil || !small.Locked() {
		t.Fatalf("small block: locked %v, %v", small.Locked(), err)
	}
	var big []*Block
	for i := range 2 {
		b, err := Share([][]byte{bytes.Repeat([]byte{byte('a' + i)}, 4*page)})
		if err != nil {
			t.Fatalf("a block over the limit failed: %v", err)
		}
		if b.Locked() || len(b.Bytes()) != 4*page {
			t.Errorf("block over the limit: locked %v, %d bytes", b.Locked(), len(b.Bytes()))
		}
		big = append(big, b)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "RLIMIT_MEMLOCK") ||
		!strings.Contains(logs.String(), fmt.Sprintf("limit_bytes=%d", 2*page)) {
		t.Errorf("want one warning naming RLIMIT_MEMLOCK and its value, got %d:\n%s", n, logs.String())
	}
	status, _ := os.ReadFile("/proc/self/status")
	if !regexp.MustCompile(fmt.Sprintf(`VmLck:\s+%d kB`, page/1024)).Match(status) {
		t.Errorf("want one page locked:\n%s", status)
	}
	small.Release()
	for _, b := range big {
		b.Release()
	}
	if _, _, locked := Stats(); locked != 0 {
		t.Errorf("locked %d after release", locked)
	}
}
