//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// raiseFileLimit lifts RLIMIT_NOFILE as far as the kernel allows
// (fs.nr_open), for the plugin and the keeper: each mount holds a few
// descriptors in each (the /dev/fuse descriptor and its dups, the
// journal's memfd), and a node may have thousands of mounts. Go raises
// only the soft limit, to a hard limit that may be as low as 20,000.
// Raising the hard limit needs root; otherwise nothing changes.
func raiseFileLimit() {
	limit := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			limit = n
		}
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil || rl.Max >= limit {
		return
	}
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: limit})
}
