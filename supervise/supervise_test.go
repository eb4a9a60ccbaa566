//go:build unix

package supervise

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is the supervised command when SUPERVISE_TEST_CHILD is
// set: it says "ready V=$V pid=N", then reports each signal it gets.
func init() {
	mode := os.Getenv("SUPERVISE_TEST_CHILD")
	if mode == "" {
		return
	}
	switch mode {
	case "exit3":
		os.Exit(3)
	case "selfterm":
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(time.Minute)
	case "orphan":
		// A grandchild that outlives us for a moment: re-parented to the
		// reaper, it dies there.
		p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "sleep 0.2"}, &os.ProcAttr{})
		if err != nil {
			os.Exit(2)
		}
		fmt.Printf("orphan %d\n", p.Pid)
		p.Release()
		os.Exit(0)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	fmt.Printf("ready V=%s pid=%d\n", os.Getenv("V"), os.Getpid())
	for s := range sigs {
		fmt.Printf("got %s\n", strings.ToUpper(s.String()))
		if s == syscall.SIGTERM && mode != "ignore-term" {
			os.Exit(0)
		}
	}
}

// started supervises the test binary in mode, its stdout read as lines.
func started(t *testing.T, mode string, grace time.Duration) (*Supervisor, <-chan string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(Command{Path: self, Args: []string{"child"}, Stdout: w},
		append(os.Environ(), "SUPERVISE_TEST_CHILD="+mode, "V=one"), grace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !isDone(s) {
			s.cur.kill()
			<-s.Done()
		}
		w.Close() // held open: a restarted command writes to it too
		r.Close()
	})
	return s, lines
}

func isDone(s *Supervisor) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// expect waits for the next line to start with want.
func expect(t *testing.T, lines <-chan string, want string) string {
	t.Helper()
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, want) {
			t.Fatalf("the command said %q, want %q", l, want)
		}
		return l
	case <-time.After(20 * time.Second):
		t.Fatalf("the command did not say %q", want)
	}
	return ""
}

func waitDone(t *testing.T, s *Supervisor) int {
	t.Helper()
	select {
	case <-s.Done():
		return s.Code()
	case <-time.After(20 * time.Second):
		t.Fatal("the supervisor did not end")
	}
	return 0
}

// The exit status is the command's, 128+N for signal N.
func TestExitStatus(t *testing.T) {
	s, _ := started(t, "exit3", time.Second)
	if code := waitDone(t, s); code != 3 {
		t.Errorf("exit status %d, want 3", code)
	}
	if err := s.Restart(os.Environ()); err != ErrEnded {
		t.Errorf("restart of a command that exited by itself: %v, want ErrEnded", err)
	}
	s, _ = started(t, "selfterm", time.Second)
	if code := waitDone(t, s); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d, want %d", code, 128+int(syscall.SIGTERM))
	}
	self, _ := os.Executable()
	if _, err := Start(Command{Path: self + ".missing", Args: []string{"x"}}, nil, time.Second); err == nil {
		t.Error("a command that cannot start: no error")
	}
}

// Signals this process receives reach the command; TERM ends it, and the
// supervisor with its status, never to be restarted.
func TestForwardSignals(t *testing.T) {
	s, lines := started(t, "report", time.Second)
	expect(t, lines, "ready V=one")
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
		syscall.Kill(os.Getpid(), sig)
		expect(t, lines, "got "+strings.ToUpper(sig.String()))
	}
	if err := s.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	expect(t, lines, "got USER DEFINED SIGNAL 1")
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	expect(t, lines, "got TERMINATED")
	if code := waitDone(t, s); code != 0 {
		t.Errorf("exit status %d, want the command's 0", code)
	}
}

// Restart: SIGTERM, then the command again with the new environment.
func TestRestart(t *testing.T) {
	s, lines := started(t, "report", 10*time.Second)
	expect(t, lines, "ready V=one")
	first := s.Pid()
	env := append(os.Environ(), "SUPERVISE_TEST_CHILD=report", "V=two")
	if err := s.Restart(env); err != nil {
		t.Fatal(err)
	}
	expect(t, lines, "got TERMINATED")
	expect(t, lines, "ready V=two")
	if s.Pid() == first || isDone(s) {
		t.Errorf("after restart: pid %d (was %d), done %v", s.Pid(), first, isDone(s))
	}
}

// A command that ignores SIGTERM is killed after the grace period.
func TestRestartGrace(t *testing.T) {
	s, lines := started(t, "ignore-term", 100*time.Millisecond)
	expect(t, lines, "ready V=one")
	env := append(os.Environ(), "SUPERVISE_TEST_CHILD=report", "V=two")
	if err := s.Restart(env); err != nil {
		t.Fatal(err)
	}
	expect(t, lines, "got TERMINATED") // ignored
	expect(t, lines, "ready V=two")
	if isDone(s) {
		t.Error("the supervisor ended with the killed command")
	}
}

func TestParseSignal(t *testing.T) {
	for _, n := range []string{"HUP", "SIGHUP", "hup", "1"} {
		if s, err := ParseSignal(n); err != nil || s != syscall.SIGHUP {
			t.Errorf("%s: %v, %v", n, s, err)
		}
	}
	for _, n := range []string{"", "FOO", "0", "99", "SIG"} {
		if _, err := ParseSignal(n); err == nil {
			t.Errorf("%q parsed", n)
		}
	}
}
