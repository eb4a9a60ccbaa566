package node

import (
	"fmt"
	"github.com/secretfs/secretfs/sanity/child"
	"os"
	"strconv"
	"strings"
	"syscall"
)

type proc = child.Proc

func spawn(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	return child.Spawn(dir, name, env, false, bin, args...)
}

// killPIDFile SIGKILLs the PID in file if that process still runs a command
// whose name contains want (guards against PID reuse).
func killPIDFile(file, want string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || (want != "" && !strings.Contains(string(cmdline), want)) {
		return
	}
	syscall.Kill(pid, syscall.SIGKILL)
}
