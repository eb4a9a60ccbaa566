//go:build unix

package supervise

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ParseSignal reads a signal name as kill(1) does: HUP, SIGHUP, hup or
// its number.
func ParseSignal(name string) (os.Signal, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if n <= 0 || n >= 65 || unix.SignalName(syscall.Signal(n)) == "" {
			return nil, fmt.Errorf("%q is not a signal number", name)
		}
		return syscall.Signal(n), nil
	}
	up := strings.ToUpper(name)
	if !strings.HasPrefix(up, "SIG") {
		up = "SIG" + up
	}
	if s := unix.SignalNum(up); s != 0 {
		return s, nil
	}
	return nil, fmt.Errorf("%q is not a signal name", name)
}
