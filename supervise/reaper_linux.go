package supervise

import (
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// becomeReaper makes orphaned descendants of the command our children, so
// that their zombies are reaped here: PID 1 is the reaper of its
// namespace already; any other process asks for it.
func becomeReaper() {
	if os.Getpid() != 1 {
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) // best effort: an old kernel just leaves orphans to init
	}
}

// orphanGrace is how long a zombie child that is not a command of ours
// stays before the reaper takes it. It may be a child this process
// started through os/exec (a kubeconfig credential plugin), whose own
// Wait reaps it at once: reaping it first would fail that Wait.
const orphanGrace = 200 * time.Millisecond

// orphans reaps zombies re-parented to us. waitid with WNOWAIT shows one
// zombie without reaping it; it is reaped once it has stayed orphanGrace.
type orphans struct {
	pid   int
	since time.Time
}

// reap takes every zombie that has waited long enough; for a newer one it
// schedules another pass on wake. known says a pid is a command's.
func (o *orphans) reap(wake chan os.Signal, known func(pid int) bool) {
	for {
		pid := peekZombie()
		if pid <= 0 || known(pid) {
			return
		}
		if pid != o.pid {
			o.pid, o.since = pid, time.Now()
		}
		if wait := orphanGrace - time.Since(o.since); wait > 0 {
			time.AfterFunc(wait, func() {
				select {
				case wake <- syscall.SIGCHLD:
				default:
				}
			})
			return
		}
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		o.pid = 0
	}
}

// peekZombie returns the pid of a zombie child, without reaping it; 0
// if there is none.
func peekZombie() int {
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil {
		return 0
	}
	// si_pid is the union's first field, after signo, errno and code,
	// aligned as a pointer (kernel's struct siginfo).
	off := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), off)))
}
