package fusefs

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secretfs/secretfs/metrics"
)

// NoResend makes takeovers act as on a kernel without FUSE_NOTIFY_RESEND
// (before Linux 6.9), so that path is tested on any kernel. A test switch:
// the command sets it from SECRETFS_NO_RESEND=1.
var NoResend bool

// resend asks the kernel to queue again the requests a dead server had
// read but not answered (FUSE_NOTIFY_RESEND, Linux 6.9). false: the
// kernel does not know it (EINVAL; ENOSYS) and they stay unanswered.
func resend(fd int) (bool, error) {
	if NoResend {
		return false, nil
	}
	const notifyResend = 7
	var hdr [16]byte
	hdr[0] = 16                         // len
	hdr[4] = notifyResend               // error carries the notify code
	_, err := syscall.Write(fd, hdr[:]) // unique 0: a notification
	switch {
	case err == nil, errors.Is(err, syscall.ENOENT):
		return true, nil
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOSYS):
		return false, nil
	}
	return false, fmt.Errorf("FUSE_NOTIFY_RESEND: %w", err)
}

// fuseConnections is where the fusectl filesystem shows each connection.
var fuseConnections = "/sys/fs/fuse/connections"

// countUnanswered reports, after a takeover without RESEND, how many
// requests the previous server read and never answered. Their callers
// wait (killably) for good; the mount is served on. The connection's
// `waiting` figure counts every request not yet answered: once this server
// has answered what queued meanwhile, the least of a second of samples is
// what nobody will answer.
func countUnanswered(dir string, log *slog.Logger) {
	conn, err := connectionOf(dir)
	if err != nil {
		log.Warn("took over without FUSE_NOTIFY_RESEND (Linux before 6.9): requests the previous server left unanswered are not known", "mount", dir, "err", err)
		return
	}
	least := -1
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		b, err := os.ReadFile(filepath.Join(fuseConnections, conn, "waiting"))
		if err != nil {
			log.Warn("took over without FUSE_NOTIFY_RESEND (Linux before 6.9): requests the previous server left unanswered are not known", "mount", dir, "err", err)
			return
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && (least < 0 || n < least) {
			least = n
		}
	}
	if least > 0 {
		metrics.TakeoverLost.Add(float64(least))
		log.Warn("took over without FUSE_NOTIFY_RESEND (Linux before 6.9): requests the previous server read stay unanswered; their callers wait until killed", "mount", dir, "unanswered", least)
		return
	}
	log.Info("took over without FUSE_NOTIFY_RESEND (Linux before 6.9): no request left unanswered", "mount", dir)
}

// connectionOf finds the FUSE connection number of the mount at dir: the
// minor device number in /proc/self/mountinfo (the mount is not touched:
// a lookup there could wait on this very takeover).
func connectionOf(dir string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	conn := ""
	for s := bufio.NewScanner(f); s.Scan(); {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 || unescapeMountPath(fields[4]) != dir {
			continue
		}
		if _, minor, ok := strings.Cut(fields[2], ":"); ok {
			conn = minor // the topmost mount at dir comes last
		}
	}
	if conn == "" {
		return "", fmt.Errorf("%s is not a mount point", dir)
	}
	if _, err := os.Stat(filepath.Join(fuseConnections, conn)); err != nil {
		return "", fmt.Errorf("fusectl: %w", err)
	}
	return conn, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (space, tab, newline,
// backslash).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
