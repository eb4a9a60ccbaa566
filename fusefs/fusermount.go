package fusefs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
)

// Why a mount could not be made; callers name the flag or package behind
// them.
var (
	ErrNoFusermount = errors.New("fusermount3 not found: install fuse3 (a regular user mounts through it)")
	ErrNoDevFuse    = errors.New("/dev/fuse is missing: load the fuse kernel module (modprobe fuse), or give the container the device")
	ErrAllowOther   = errors.New("allow_other needs root or user_allow_other in /etc/fuse.conf")
)

// fuseConf is where fusermount3 reads whether users may use allow_other.
const fuseConf = "/etc/fuse.conf"

// fusermount mounts dir through the setuid fusermount3, as libfuse does:
// fusermount3 opens /dev/fuse, mounts it and sends the descriptor back
// over the socket named by _FUSE_COMMFD. The descriptor is ours from then
// on, exactly as if we had opened it (a keeper can hold a dup of it).
func fusermount(dir string, opts []string) (int, error) {
	if _, err := os.Stat("/dev/fuse"); errors.Is(err, os.ErrNotExist) {
		return -1, fmt.Errorf("mount %s: %w", dir, ErrNoDevFuse)
	}
	if slices.Contains(opts, "allow_other") && !userAllowOther() {
		return -1, fmt.Errorf("mount %s: %w", dir, ErrAllowOther)
	}
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		return -1, fmt.Errorf("mount %s: %w", dir, ErrNoFusermount)
	}
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("mount %s: socketpair: %w", dir, err)
	}
	defer syscall.Close(pair[0])
	remote := os.NewFile(uintptr(pair[1]), "fusermount3-socket")
	cmd := exec.Command(bin, "-o", strings.Join(opts, ","), "--", dir)
	cmd.Env = []string{"_FUSE_COMMFD=3"} // ExtraFiles[0] is fd 3 in the child
	cmd.ExtraFiles = []*os.File{remote}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	remote.Close()
	if err != nil {
		return -1, fmt.Errorf("mount %s: %s", dir, fusermountError(err, &stderr))
	}
	fd, err := receiveFD(pair[0])
	if err != nil {
		detach(dir)
		return -1, fmt.Errorf("mount %s: descriptor from fusermount3: %w", dir, err)
	}
	return fd, nil
}

// receiveFD reads the one descriptor fusermount3 sends (SCM_RIGHTS).
func receiveFD(sock int) (int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(4))
	_, oobn, _, _, err := syscall.Recvmsg(sock, buf, oob, 0)
	if err != nil {
		return -1, err
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return -1, err
	}
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil || len(fds) == 0 {
			continue
		}
		for _, extra := range fds[1:] {
			syscall.Close(extra)
		}
		syscall.CloseOnExec(fds[0])
		return fds[0], nil
	}
	return -1, errors.New("none was sent")
}

// fusermountUnmount unmounts as a regular user: `fusermount3 -u`, and
// lazily (`-u -z`) when the mount is busy. A mount already gone is fine.
func fusermountUnmount(dir string) error {
	err := runFusermount("-u", "--", dir)
	if err == nil || !isMounted(dir) {
		return nil
	}
	if err = runFusermount("-u", "-z", "--", dir); err == nil || !isMounted(dir) {
		return nil
	}
	return fmt.Errorf("unmount %s: %w", dir, err)
}

func isMounted(dir string) bool {
	ok, err := mountinfo.Mounted(dir)
	return err != nil || ok // unknown: say mounted, so the error is kept
}

func runFusermount(args ...string) error {
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		return ErrNoFusermount
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return errors.New(fusermountError(err, &stderr))
	}
	return nil
}

// fusermountError is fusermount3's own explanation (its first line, which
// names the mount point and the reason), or its exit status.
func fusermountError(err error, stderr *bytes.Buffer) string {
	line, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
	if line == "" {
		return fmt.Sprintf("fusermount3: %v", err)
	}
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	if first, _, _ := strings.Cut(line, ":"); !strings.HasSuffix(first, "fusermount3") {
		line = "fusermount3: " + line // it names itself as argv[0] says
	}
	return line
}

// userAllowOther reports whether fuse.conf lets regular users mount with
// allow_other (a line "user_allow_other" on its own).
func userAllowOther() bool {
	f, err := os.Open(fuseConf)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "user_allow_other" {
			return true
		}
	}
	return false
}
