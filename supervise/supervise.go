package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"time"
)

// Command is what a Supervisor runs: Path is resolved (exec.LookPath),
// Args holds argv[0]. Stdin, Stdout and Stderr default to this process's.
type Command struct {
	Path                  string
	Args                  []string
	Stdin, Stdout, Stderr *os.File
}

// ErrEnded is returned by Restart and Signal once the command has ended
// for good (it exited by itself, or after a forwarded TERM, INT or QUIT).
var ErrEnded = errors.New("the command has ended")

// Supervisor is the parent of one running command; see the package doc.
type Supervisor struct {
	cmd   Command
	grace time.Duration
	sigs  chan os.Signal

	mu      sync.Mutex
	cur     *child // the running command
	ending  bool   // a TERM, INT or QUIT was forwarded: no more restarts
	stopped bool   // Done is closed
	done    chan struct{}
	code    int
}

// Start runs cmd with env (KEY=VALUE lines) and supervises it; grace is
// how long Restart waits after SIGTERM before it sends SIGKILL.
func Start(cmd Command, env []string, grace time.Duration) (*Supervisor, error) {
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	becomeReaper()
	s := &Supervisor{cmd: cmd, grace: grace, done: make(chan struct{}), sigs: make(chan os.Signal, 8)}
	// Before the command runs: a signal that arrives at once is not lost.
	signal.Notify(s.sigs, forwarded...)
	c, err := startChild(cmd, env)
	if err != nil {
		signal.Stop(s.sigs)
		return nil, err
	}
	s.cur = c
	go s.watch(c)
	go s.forward()
	return s, nil
}

// Done is closed when the command has ended for good; Code is then its
// exit status.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Code is the command's exit status once Done is closed: its own, or
// 128+N when signal N ended it.
func (s *Supervisor) Code() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code
}

// Pid is the process id of the command running now.
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.pid
}

// Signal sends sig to the command.
func (s *Supervisor) Signal(sig os.Signal) error {
	s.mu.Lock()
	c, ended := s.cur, s.ending || s.stopped
	s.mu.Unlock()
	if ended {
		return ErrEnded
	}
	return c.signal(sig)
}

// Restart stops the command (SIGTERM, then SIGKILL after the grace
// period; on Windows its process tree is terminated) and runs it again
// with env. A command that has ended by itself is not started again
// (ErrEnded). If the new command cannot start, the Supervisor ends with
// status 127 and Restart says why.
func (s *Supervisor) Restart(env []string) error {
	s.mu.Lock()
	c := s.cur
	if s.ending || s.stopped || c.exited() {
		s.mu.Unlock()
		return ErrEnded
	}
	c.restarting = true // watch: this exit is ours, not the command's
	s.mu.Unlock()

	c.stop(s.grace)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ending {
		// A TERM, INT or QUIT arrived meanwhile: the old command's
		// status is the last word (watch may have looked before it
		// came: end here too).
		s.end(c.code)
		return ErrEnded
	}
	n, err := startChild(s.cmd, env)
	if err != nil {
		s.end(127)
		return fmt.Errorf("start again: %w", err)
	}
	s.cur = n
	go s.watch(n)
	return nil
}

// stop ends c as kubelet ends a container: SIGTERM to the command,
// SIGKILL once the grace is over; and once the command has gone, SIGKILL
// to whatever it left in its group (Windows: the whole tree at once), as
// the end of a container's first process ends the rest.
func (c *child) stop(grace time.Duration) {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	c.terminate()
	select {
	case <-c.done:
	case <-timer.C:
	}
	c.kill()
	<-c.done
}

// watch waits for c to end; unless Restart is replacing it, that ends
// the Supervisor with c's status.
func (s *Supervisor) watch(c *child) {
	<-c.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.restarting || s.ending {
		s.end(c.code)
	}
}

// end closes Done with code (s.mu held).
func (s *Supervisor) end(code int) {
	if s.stopped {
		return
	}
	s.stopped, s.code = true, code
	signal.Stop(s.sigs)
	close(s.done)
}

// forward passes every signal this process receives on to the command.
func (s *Supervisor) forward() {
	for {
		select {
		case sig := <-s.sigs:
			s.mu.Lock()
			c := s.cur
			if ending(sig) {
				s.ending = true
			}
			s.mu.Unlock()
			if !sentByTerminal(sig, s.cmd.Stdin) {
				c.signal(sig)
			}
		case <-s.done:
			return
		}
	}
}
