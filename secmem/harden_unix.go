//go:build unix && !linux

package secmem

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Harden forbids core files (soft and hard limit 0, so a child cannot
// raise it either). macOS and the BSDs have no PR_SET_DUMPABLE; a process
// of the same user can still read this one's memory there (a debugger).
func Harden() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("set RLIMIT_CORE to 0: %w", err)
	}
	return nil
}
