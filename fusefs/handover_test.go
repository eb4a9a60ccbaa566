package fusefs

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/sanity/needroot"
)

const envHandoverChild = "SECRETFS_FUSEFS_HANDOVER_CHILD" // the mount folder

// TestKeptFDStaysBlocking: a server of this build waits for requests
// through a non-blocking poll clone, but the mount's descriptor, which a
// keeper holds a dup of (same open file description, same flags), stays
// blocking. After the server is SIGKILLed, a release that reads the kept
// descriptor blocking, as go-fuse without PollReads does, gets the next
// request instead of EAGAIN.
//
// The server is this test binary re-executed; it hands its descriptor
// over SCM_RIGHTS, as to a keeper, and this process plays the keeper and
// then the old release.
func TestKeptFDStaysBlocking(t *testing.T) {
	if dir := os.Getenv(envHandoverChild); dir != "" {
		handoverChild(dir)
		return
	}
	needroot.FUSE(t, "FUSE mount handed over")
	dir := t.TempDir()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(pair[1]), "child-end")
	defer child.Close()
	defer unix.Close(pair[0])
	cmd := exec.Command(os.Args[0], "-test.run=^TestKeptFDStaysBlocking$")
	cmd.Env = append(os.Environ(), envHandoverChild+"="+dir)
	cmd.ExtraFiles = []*os.File{child} // fd 3
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill() // our own child, by pid
			cmd.Wait()
		}
		syscall.Unmount(dir, syscall.MNT_DETACH) // the child's mount, in our temp dir
	})
	kept := recvFD(t, pair[0])
	defer unix.Close(kept)

	if got := rawRead(t, filepath.Join(dir, "key")); got != "kept" {
		t.Fatalf("read %q through the child's server", got)
	}
	polling := false
	for _, flags := range fuseFDFlags(t, cmd.Process.Pid) {
		polling = polling || flags&unix.O_NONBLOCK != 0
	}
	if !polling {
		t.Error("the server has no non-blocking /dev/fuse descriptor: it does not wait through the netpoller")
	}
	if flags, err := unix.FcntlInt(uintptr(kept), unix.F_GETFL, 0); err != nil || flags&unix.O_NONBLOCK != 0 {
		t.Fatalf("kept descriptor flags %#o (err %v): O_NONBLOCK set while a server of this build serves it", flags, err)
	}

	cmd.Process.Kill()
	cmd.Wait()
	killed = true
	if flags, err := unix.FcntlInt(uintptr(kept), unix.F_GETFL, 0); err != nil || flags&unix.O_NONBLOCK != 0 {
		t.Fatalf("kept descriptor flags %#o (err %v) after SIGKILL: O_NONBLOCK set", flags, err)
	}

	// The old release: blocking reads on the kept descriptor. A lookup
	// of a name never seen reaches it; it answers ENOENT.
	stat := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		stat <- unix.Stat(filepath.Join(dir, "never-looked-up"), &st)
	}()
	served := make(chan error, 1)
	go func() { served <- serveENOENT(t, kept, stat) }()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached a blocking reader of the kept descriptor within 10 s")
	}
}

// handoverChild mounts a volume at dir, sends its descriptor on fd 3 and
// serves until killed.
func handoverChild(dir string) {
	fs, err := New(Options{}, payload(map[string]string{"key": "kept"}, 0o644))
	if err == nil {
		err = fs.Mount(dir)
	}
	if err != nil {
		os.Stderr.WriteString("handover child: " + err.Error() + "\n")
		os.Exit(2)
	}
	if err := unix.Sendmsg(3, []byte{1}, unix.UnixRights(fs.FD()), nil, 0); err != nil {
		os.Stderr.WriteString("handover child: sendmsg: " + err.Error() + "\n")
		os.Exit(2)
	}
	select {} // serve until killed
}

func recvFD(t *testing.T, sock int) int {
	t.Helper()
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, 0)
	if err != nil {
		t.Fatalf("recvmsg: %v", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control message: %v (%d)", err, len(msgs))
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("unix rights: %v (%d)", err, len(fds))
	}
	return fds[0]
}

// fuseFDFlags returns the open flags of each /dev/fuse descriptor of pid.
func fuseFDFlags(t *testing.T, pid int) []int {
	t.Helper()
	base := "/proc/" + strconv.Itoa(pid)
	ents, err := os.ReadDir(base + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		if target, err := os.Readlink(base + "/fd/" + e.Name()); err != nil || target != "/dev/fuse" {
			continue
		}
		raw, err := os.ReadFile(base + "/fdinfo/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				f, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, int(f))
			}
		}
	}
	return out
}

// serveENOENT reads requests from fd with blocking reads and answers each
// that wants a reply with ENOENT, until stat reports; stat must fail with
// ENOENT.
func serveENOENT(t *testing.T, fd int, stat <-chan error) error {
	const (
		opForget      = 2
		opInterrupt   = 36
		opBatchForget = 42
	)
	buf := make([]byte, 1<<17)
	for {
		select {
		case err := <-stat:
			if !errors.Is(err, unix.ENOENT) {
				return errors.New("stat of a missing name: want ENOENT, got " + errString(err))
			}
			return nil
		default:
		}
		n, err := unix.Read(fd, buf)
		if err != nil {
			return errors.New("blocking read of the kept descriptor: " + err.Error())
		}
		if n < 40 {
			return errors.New("short request")
		}
		op := binary.NativeEndian.Uint32(buf[4:8])
		t.Logf("blocking read of the kept descriptor: request opcode %d", op)
		if op == opForget || op == opBatchForget || op == opInterrupt {
			continue
		}
		var out [16]byte
		errno := -int32(unix.ENOENT)
		binary.NativeEndian.PutUint32(out[0:4], 16)
		binary.NativeEndian.PutUint32(out[4:8], uint32(errno))
		copy(out[8:16], buf[8:16]) // unique
		if _, err := unix.Write(fd, out[:]); err != nil {
			return errors.New("reply: " + err.Error())
		}
		// The stat may be answered now; give it a moment before the
		// next (blocking) read.
		select {
		case err := <-stat:
			if !errors.Is(err, unix.ENOENT) {
				return errors.New("stat of a missing name: want ENOENT, got " + errString(err))
			}
			return nil
		case <-time.After(time.Second):
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "success"
	}
	return err.Error()
}
