package secmem

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Harden makes the process non-dumpable and forbids core files (soft and
// hard limit 0, so a child cannot raise it either: `secretfs exec` hands
// its command secret values in the environment). Call it before any
// secret byte is read.
func Harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set non-dumpable: %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("set RLIMIT_CORE to 0: %w", err)
	}
	return nil
}
