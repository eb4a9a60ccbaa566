package supervise

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// forwarded: none. The console delivers Ctrl-C and Ctrl-Break to every
// process attached to it, the command among them; this process only
// catches os.Interrupt so that it outlives the command meanwhile.
var forwarded = []os.Signal{os.Interrupt}

// ending: an interrupt reached the command too; do not restart it.
func ending(sig os.Signal) bool { return sig == os.Interrupt }

// sentByTerminal: the console sent it to the command too (see forwarded).
func sentByTerminal(os.Signal, *os.File) bool { return true }

// job is a run's job object: terminating it ends the command and every
// process it started, however they were re-parented.
type job struct {
	mu sync.Mutex // h is closed (0) once the command ended
	h  windows.Handle
}

// childSys: the run's job.
type childSys struct{ job *job }

func startChild(cmd Command, env []string) (*child, error) {
	jh, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("create job object: %w", err)
	}
	// Closing the job's last handle (this process ends) ends the tree too.
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	windows.SetInformationJobObject(jh, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)))
	p, err := os.StartProcess(cmd.Path, cmd.Args, &os.ProcAttr{Env: env,
		Files: []*os.File{cmd.Stdin, cmd.Stdout, cmd.Stderr}})
	if err != nil {
		windows.CloseHandle(jh)
		return nil, err
	}
	// A process the command starts before this line is outside the job;
	// what it starts later is inside.
	if h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(p.Pid)); err == nil {
		windows.AssignProcessToJobObject(jh, h)
		windows.CloseHandle(h)
	}
	j := &job{h: jh}
	c := &child{pid: p.Pid, done: make(chan struct{}), sys: childSys{job: j}}
	go func() {
		st, err := p.Wait()
		code := 255
		if err == nil {
			code = st.ExitCode()
		}
		j.mu.Lock()
		windows.CloseHandle(j.h)
		j.h = 0
		j.mu.Unlock()
		c.finish(code)
	}()
	return c, nil
}

// signal: Windows can send no signal but os.Kill (the whole tree).
func (c *child) signal(sig os.Signal) error {
	if sig == os.Kill {
		c.kill()
		return nil
	}
	if sig == os.Interrupt {
		return nil // the console delivered it already
	}
	return errors.New("windows cannot send signals; use --on-change restart")
}

func (c *child) terminate() { c.kill() }

func (c *child) kill() {
	j := c.sys.job
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.h != 0 {
		windows.TerminateJobObject(j.h, 1)
	}
}

// becomeReaper: Windows has no zombies to reap.
func becomeReaper() {}

// ParseSignal: no signal can be sent to another process on Windows.
func ParseSignal(name string) (os.Signal, error) {
	return nil, fmt.Errorf("signal %q: windows cannot send signals; use restart", name)
}
