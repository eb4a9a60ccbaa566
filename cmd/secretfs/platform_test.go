package main

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// What mount, csi and keeper are on a system without FUSE
// (linuxonly_other.go): one line naming the need, exit status 1.
func TestLinuxOnlyRefusal(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := linuxOnly("mount", "show a Secret").run([]string{"--source", "kube", "x"}, &stdout, &stderr)
	msg := stderr.String()
	if code == 0 || stdout.Len() != 0 || strings.Count(msg, "\n") != 1 ||
		!strings.HasPrefix(msg, "secretfs mount: needs Linux (FUSE)") || strings.Contains(strings.ToLower(msg), "macfuse") {
		t.Errorf("refusal: exit %d, stdout %q, stderr %q", code, stdout.String(), msg)
	}
}

// The test binary is the child of TestRunChild: SECRETFS_TEST_CHILD says
// what it does, before any test (or TestMain) runs.
func init() {
	switch os.Getenv("SECRETFS_TEST_CHILD") {
	case "":
		return
	case "exit3":
		os.Stdout.WriteString(os.Getenv("SECRETFS_TEST_VAR"))
		os.Exit(3)
	case "term":
		p, _ := os.FindProcess(os.Getpid())
		p.Signal(syscall.SIGTERM)
		time.Sleep(10 * time.Second)
	case "sleep":
		time.Sleep(500 * time.Millisecond)
		os.Exit(0)
	}
	os.Exit(99)
}

// runChild (secretfs exec where there is no execve: Windows) passes the
// environment, returns the child's exit status, 128+N for a signal, and
// outlives an interrupt while the child runs.
func TestRunChild(t *testing.T) {
	child := func(mode string) *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "SECRETFS_TEST_CHILD="+mode, "SECRETFS_TEST_VAR=v-from-env")
		return cmd
	}
	cmd := child("exit3")
	var out bytes.Buffer
	cmd.Stdout = &out
	if code, err := runChild(cmd); code != 3 || err != nil || out.String() != "v-from-env" {
		t.Errorf("exit3: code %d, err %v, stdout %q", code, err, out.String())
	}
	if _, err := runChild(exec.Command("/nonexistent/secretfs-test")); err == nil {
		t.Error("a command that cannot start: no error")
	}
	if runtime.GOOS == "windows" {
		return // no signals to send there
	}
	if code, err := runChild(child("term")); code != 128+int(syscall.SIGTERM) || err != nil {
		t.Errorf("term: code %d, err %v, want %d", code, err, 128+int(syscall.SIGTERM))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if code, err := runChild(child("sleep")); code != 0 || err != nil {
			t.Errorf("sleep: code %d, err %v", code, err)
		}
	}()
	time.Sleep(200 * time.Millisecond) // the child runs; Notify is set
	self, _ := os.FindProcess(os.Getpid())
	if err := self.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-done
}
