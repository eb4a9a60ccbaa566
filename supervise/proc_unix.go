//go:build unix

package supervise

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded are the signals passed on to the command. SIGCHLD is the
// reaper's; SIGKILL and SIGSTOP cannot be caught.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// ending says whether a forwarded signal means the command is to stop:
// after it, the command is never restarted.
func ending(sig os.Signal) bool {
	return sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGQUIT
}

// sentByTerminal says whether the command got sig from its terminal
// already: the terminal sends INT and QUIT (Ctrl-C, Ctrl-\) and WINCH to
// its whole foreground process group, the command among us, when the
// command's stdin is that terminal and we are in its foreground group.
// Passing such a signal on would deliver it twice (and "press Ctrl-C
// again to force" programs would force).
func sentByTerminal(sig os.Signal, stdin *os.File) bool {
	if sig != syscall.SIGINT && sig != syscall.SIGQUIT && sig != syscall.SIGWINCH {
		return false
	}
	pgrp, err := unix.IoctlGetInt(int(stdin.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == syscall.Getpgrp()
}

// startChild forks and execs the command. The reaper knows its pid before
// it can exit, so its status is never taken for an orphan's.
func startChild(cmd Command, env []string) (*child, error) {
	theReaper.start()
	theReaper.mu.Lock()
	defer theReaper.mu.Unlock()
	// Off a terminal the command leads a process group of its own, so
	// that Restart can end what it leaves behind (a shell's children);
	// on one it stays in ours, the terminal's foreground group, so that
	// job control (Ctrl-Z, fg) keeps working.
	own := !onTerminal(cmd.Stdin)
	pid, err := syscall.ForkExec(cmd.Path, cmd.Args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{cmd.Stdin.Fd(), cmd.Stdout.Fd(), cmd.Stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: own},
	})
	if err != nil {
		return nil, err
	}
	c := &child{pid: pid, done: make(chan struct{})}
	if own {
		c.sys.pgid = pid
	}
	theReaper.kids[pid] = c
	return c, nil
}

// signal sends sig unless c was reaped: its pid may be another's by now.
// The reaper's lock keeps it from reaping c meanwhile.
func (c *child) signal(sig os.Signal) error {
	theReaper.mu.Lock()
	defer theReaper.mu.Unlock()
	if c.exited() {
		return nil
	}
	return syscall.Kill(c.pid, sig.(syscall.Signal))
}

// terminate asks the command to stop, as kubelet asks a container's
// first process: SIGTERM to it alone.
func (c *child) terminate() { c.signal(syscall.SIGTERM) }

// kill ends the command (unless it was reaped already) and, when it
// leads a group, every process left in it. The group id is not reused
// while any member lives.
func (c *child) kill() {
	c.signal(syscall.SIGKILL)
	if c.sys.pgid != 0 {
		syscall.Kill(-c.sys.pgid, syscall.SIGKILL)
	}
}

// childSys: the command's own process group, if it leads one.
type childSys struct{ pgid int }

// onTerminal says whether f is a terminal in this process's session.
func onTerminal(f *os.File) bool {
	_, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil
}

// reaper waits for every child of this process that is ours to wait for:
// the commands it started, and (Linux) orphans re-parented to us.
type reaper struct {
	once    sync.Once
	mu      sync.Mutex
	kids    map[int]*child
	orphans orphans
	wake    chan os.Signal
}

var theReaper = &reaper{kids: map[int]*child{}}

func (r *reaper) start() {
	r.once.Do(func() {
		r.wake = make(chan os.Signal, 1)
		signal.Notify(r.wake, syscall.SIGCHLD)
		go r.run()
	})
}

func (r *reaper) run() {
	for range r.wake {
		r.pass()
	}
}

// pass reaps the commands that ended, then the orphans.
func (r *reaper) pass() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid, c := range r.kids {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		switch {
		case got == pid:
			delete(r.kids, pid)
			c.finish(exitCode(ws))
		case err == syscall.ECHILD:
			// Not ours to wait for any more (cannot happen unless
			// someone else reaped it): its status is lost.
			delete(r.kids, pid)
			c.finish(255)
		}
	}
	r.orphans.reap(r.wake, func(pid int) bool { return r.kids[pid] != nil })
}

// exitCode is a shell's $?: the status, or 128+N for signal N.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
