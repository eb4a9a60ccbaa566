package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// An orphan of the command is re-parented to us (PR_SET_CHILD_SUBREAPER)
// and its zombie reaped: its /proc entry goes. Without the reaper it
// would stay a zombie for the life of this process.
func TestReapOrphans(t *testing.T) {
	s, lines := started(t, "orphan", time.Second)
	l := expect(t, lines, "orphan ")
	var pid int
	fmt.Sscanf(l, "orphan %d", &pid)
	waitDone(t, s)
	stat := fmt.Sprintf("/proc/%d/stat", pid)
	sawZombieOrRunning := false
	for deadline := time.Now().Add(20 * time.Second); ; {
		b, err := os.ReadFile(stat)
		if err != nil {
			break // reaped
		}
		if !strings.Contains(string(b), fmt.Sprintf(" %d ", os.Getpid())) {
			t.Fatalf("the orphan was not re-parented to us: %s", b)
		}
		sawZombieOrRunning = true
		if time.Now().After(deadline) {
			t.Fatalf("the orphan %d is still there: %s", pid, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawZombieOrRunning {
		t.Log("the orphan was gone before the first look")
	}
}

// Children this process starts itself through os/exec (a kubeconfig
// credential plugin) are left to their own Wait: the reaper takes only
// zombies that stayed orphanGrace.
func TestOwnChildrenLeftToTheirWait(t *testing.T) {
	_, lines := started(t, "report", time.Second)
	expect(t, lines, "ready V=one")
	for i := range 50 {
		err := exec.Command("/bin/sh", "-c", "exit 5").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 5 {
			t.Fatalf("run %d of an os/exec child: %v, want exit status 5", i, err)
		}
	}
}
