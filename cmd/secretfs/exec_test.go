//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretfs/secretfs/sanity/atomicwriter"
	"github.com/secretfs/secretfs/sanity/syncbuf"
)

// app is the command under secretfs exec in these tests: it prints its
// $V at start and what it is told, and waits interruptibly (sh runs a
// trap only between commands).
const app = `echo "start V=$V"
trap 'echo term; exit 0' TERM
trap 'echo hup' HUP
while :; do sleep 0.05 & wait $!; done`

type execRun struct {
	cmd         *exec.Cmd
	out, stderr syncbuf.Buffer
	done        chan struct{}
}

// startExec runs `secretfs ARGS...` (exec with its flags and command).
func startExec(t *testing.T, args ...string) *execRun {
	t.Helper()
	r := &execRun{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.stderr
	// Killed in the cleanup, secretfs leaves the command running (and
	// holding the output pipes): do not wait for them.
	r.cmd.WaitDelay = time.Second
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

func (r *execRun) lines() []string {
	return strings.FieldsFunc(r.out.String(), func(c rune) bool { return c == '\n' })
}

// waitLines waits until the command has printed exactly want.
func (r *execRun) waitLines(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := r.lines()
		if len(got) >= len(want) {
			if !slices.Equal(got, want) {
				t.Fatalf("the command printed %q, want %q\nstderr: %s", got, want, r.stderr.String())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command printed %q, want %q\nstderr: %s", got, want, r.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exitCode waits for secretfs exec to end.
func (r *execRun) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		t.Fatal("secretfs exec did not exit")
	}
	return 0
}

// Bad values exit non-zero before anything runs, with one line naming
// the flag.
func TestExecBadFlags(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	base := []string{"exec", "--source", "file:testdata/seed", "--secret", "mysecret"}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--on-change", "bogus"}, "--on-change"},
		{[]string{"--on-change", "signal:NOPE"}, "--on-change"},
		{[]string{"--on-change", "signal:"}, "--on-change"},
		{[]string{"--grace", "-1s"}, "--grace"},
		{[]string{"--grace", "soon"}, "--grace"},
		{[]string{"--splay", "x"}, "--splay"},
		{[]string{"--debounce", "-1ms"}, "--debounce"},
		{[]string{"--splay", "-5s"}, "--splay"},
		{[]string{"--dir", "/tmp"}, "--dir"},
	} {
		args := append(append(append([]string{}, base...), c.args...), "--", "touch", marker)
		cmd := exec.Command(bin, args...)
		var stdout, stderr syncbuf.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		msg := stderr.String()
		if err == nil || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, c.flag) || stdout.String() != "" {
			t.Errorf("%q: err %v, stderr %q, stdout %q", c.args, err, msg, stdout.String())
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%q: the command ran", c.args)
		}
	}
	cmd := exec.Command(bin, "exec", "--source", "file:testdata/seed", "--", "touch", marker)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--secret") {
		t.Errorf("no --secret: %v, %q", err, out)
	}
}

// --on-change restart with a file: source: a rewrite with the same data
// (a label added) restarts nothing; a change restarts once with the new
// value; edits within --debounce restart once, with the last value. No
// value reaches stderr.
func TestExecRestartFollowsFileSource(t *testing.T) {
	src := t.TempDir()
	manifest := filepath.Join(src, "s.yaml")
	writeManifest(t, manifest, secretYAML("s", "V", "val-one"))
	r := startExec(t, "exec", "--source", "file:"+src, "--secret", "s", "--on-change", "restart",
		"--debounce", "500ms", "--", "sh", "-c", app)
	r.waitLines(t, "start V=val-one")
	writeManifest(t, manifest, strings.Replace(secretYAML("s", "V", "val-one"), "name: s\n", "name: s\n  labels: {a: b}\n", 1))
	writeManifest(t, manifest, secretYAML("s", "V", "val-two"))
	r.waitLines(t, "start V=val-one", "term", "start V=val-two")
	for _, v := range []string{"val-3", "val-4", "val-5"} {
		writeManifest(t, manifest, secretYAML("s", "V", v))
	}
	r.waitLines(t, "start V=val-one", "term", "start V=val-two", "term", "start V=val-5")
	// stderr and stdout are two pipes, copied apart: wait for stderr.
	waitFor(t, "stderr to name two restarts", func() bool { return strings.Count(r.stderr.String(), "V changed; restarting") >= 2 })
	if e := r.stderr.String(); strings.Contains(e, "val-") || strings.Count(e, "V changed; restarting") != 2 {
		t.Errorf("stderr %q: want two restarts named by variable, no value", e)
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	if code := r.exitCode(t); code != 0 || !strings.HasSuffix(r.out.String(), "term\n") {
		t.Errorf("after TERM: exit %d, printed %q", code, r.out.String())
	}
}

// --on-change signal:HUP: the command gets SIGHUP per change (keeping its
// environment), and an outside HUP reaches it too.
func TestExecSignal(t *testing.T) {
	src := t.TempDir()
	manifest := filepath.Join(src, "s.yaml")
	writeManifest(t, manifest, secretYAML("s", "V", "one"))
	r := startExec(t, "exec", "--source", "file:"+src, "--secret", "s", "--on-change", "signal:HUP", "--", "sh", "-c", app)
	r.waitLines(t, "start V=one")
	writeManifest(t, manifest, secretYAML("s", "V", "two"))
	r.waitLines(t, "start V=one", "hup")
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLines(t, "start V=one", "hup", "hup")
	r.cmd.Process.Signal(syscall.SIGUSR1) // sh's default: killed by it
	if code := r.exitCode(t); code != 128+int(syscall.SIGUSR1) {
		t.Errorf("killed by USR1: exit %d, want %d", code, 128+int(syscall.SIGUSR1))
	}
}

// A command that ignores SIGTERM is killed after --grace and started
// again; one that exits by itself is never restarted: its status is ours.
func TestExecGraceAndOwnExit(t *testing.T) {
	src := t.TempDir()
	manifest := filepath.Join(src, "s.yaml")
	writeManifest(t, manifest, secretYAML("s", "V", "one"))
	stubborn := `echo "start V=$V"; trap '' TERM; while :; do sleep 0.05; done`
	r := startExec(t, "exec", "--source", "file:"+src, "--secret", "s", "--on-change", "restart", "--grace", "200ms",
		"--", "sh", "-c", stubborn)
	r.waitLines(t, "start V=one")
	writeManifest(t, manifest, secretYAML("s", "V", "two"))
	r.waitLines(t, "start V=one", "start V=two")

	r = startExec(t, "exec", "--source", "file:"+src, "--secret", "s", "--on-change", "restart", "--", "sh", "-c", "exit 7")
	if code := r.exitCode(t); code != 7 {
		t.Errorf("a command that exited 7: secretfs exec exited %d", code)
	}
}

// A command that cannot start exits as a shell's would: 127 when it is
// not found, 126 when it is found but cannot be run.
func TestExecCannotRun(t *testing.T) {
	noexec := filepath.Join(t.TempDir(), "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for cmd, want := range map[string]int{"secretfs-no-such-command": 127, noexec + ".missing": 127, noexec: 126} {
		c := exec.Command(bin, "exec", "--source", "file:testdata/seed", "--secret", "mysecret", "--", cmd)
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != want || strings.Count(string(out), "\n") != 1 {
			t.Errorf("%s: %v, %q; want exit status %d and one line", cmd, err, out, want)
		}
	}
}

// --dir on kubelet's layout, switched by kubelet's writer: a switch to an
// identical version restarts nothing, a change restarts once.
func TestExecDirKubeletLayout(t *testing.T) {
	dir := t.TempDir()
	write := func(v string) {
		if err := atomicwriter.Write(dir, map[string][]byte{"V": []byte(v), "tls.crt": []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	r := startExec(t, "exec", "--dir", dir, "--on-change", "restart", "--", "sh", "-c", app)
	r.waitLines(t, "start V=one")
	// stderr and stdout are two pipes, copied apart: wait for each.
	waitFor(t, "stderr to name the skipped key", func() bool { return strings.Contains(r.stderr.String(), "Keys [tls.crt]") })
	write("one")
	write("two")
	r.waitLines(t, "start V=one", "term", "start V=two")
	write("three")
	r.waitLines(t, "start V=one", "term", "start V=two", "term", "start V=three")
}

// --dir on a secretfs volume (secretfs mount): the edit of the manifest
// reaches the command through the mount's switch.
func TestExecDirSecretfs(t *testing.T) {
	src, mnt := t.TempDir(), t.TempDir()
	manifest := filepath.Join(src, "s.yaml")
	writeManifest(t, manifest, secretYAML("s", "V", "one"))
	startMount(t, mnt, "--source", "file:"+src, "--secret", "s")
	r := startExec(t, "exec", "--dir", mnt, "--on-change", "restart", "--", "sh", "-c", app)
	r.waitLines(t, "start V=one")
	writeManifest(t, manifest, secretYAML("s", "V", "two"))
	r.waitLines(t, "start V=one", "term", "start V=two")
	writeManifest(t, manifest, secretYAML("s", "V", "three"))
	r.waitLines(t, "start V=one", "term", "start V=two", "term", "start V=three")
}

// Several --secret: a later one wins a variable, the name (never the
// value) is reported; a change of either restarts.
func TestExecSeveralSecrets(t *testing.T) {
	src := t.TempDir()
	writeManifest(t, filepath.Join(src, "a.yaml"), secretYAML("a", "V", "from-a", "W", "w-a"))
	writeManifest(t, filepath.Join(src, "b.yaml"), secretYAML("b", "V", "from-b"))
	out, err := exec.Command(bin, "env", "--source", "file:"+src, "--secret", "a", "--secret", "b").CombinedOutput()
	want := "Variable V from the EnvFrom secret default/a is overridden by the EnvFrom secret default/b.\nexport V='from-b'\nexport W='w-a'\n"
	if err != nil || string(out) != want {
		t.Errorf("env of a, b: %v\n%s\nwant\n%s", err, out, want)
	}
	show := `echo "start V=$V W=$W"; trap 'exit 0' TERM; while :; do sleep 0.05 & wait $!; done`
	r := startExec(t, "exec", "--source", "file:"+src, "--secret", "a", "--secret", "b", "--on-change", "restart", "--", "sh", "-c", show)
	r.waitLines(t, "start V=from-b W=w-a")
	writeManifest(t, filepath.Join(src, "a.yaml"), secretYAML("a", "V", "from-a", "W", "w-a2"))
	r.waitLines(t, "start V=from-b W=w-a", "start V=from-b W=w-a2")
	if strings.Contains(r.stderr.String(), "from-") {
		t.Errorf("a value on stderr: %q", r.stderr.String())
	}
}

// As PID 1 of a PID namespace: the command's parent is secretfs exec
// (pid 1), an orphan's zombie is reaped, a TERM from outside reaches the
// command and its death by it is the exit status (128+15).
func TestExecPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP (needs root: unshare --pid)")
	}
	src := t.TempDir()
	writeManifest(t, filepath.Join(src, "s.yaml"), secretYAML("s", "V", "one"))
	script := `echo "pid=$$ ppid=$PPID"
o=$(sh -c 'sleep 0.2 >/dev/null & echo $!')
i=0; while [ -e /proc/$o ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
if [ -e /proc/$o ]; then echo "orphan $o: $(cut -d' ' -f3 /proc/$o/stat)"; else echo reaped; fi
while :; do sleep 0.05; done`
	u := exec.Command("unshare", "--pid", "--fork", "--mount-proc", bin, "exec", "--source", "file:"+src, "--secret", "s",
		"--on-change", "restart", "--", "sh", "-c", script)
	var out, stderr syncbuf.Buffer
	u.Stdout, u.Stderr = &out, &stderr
	u.WaitDelay = time.Second
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- u.Wait() }()
	defer func() { u.Process.Kill() }()
	waitFor(t, "the command to report", func() bool { return strings.Count(out.String(), "\n") >= 2 })
	// pid is not 2: secretfs exec's threads take pids of the namespace too.
	if got := out.String(); !regexp.MustCompile(`^pid=[0-9]+ ppid=1\nreaped\n$`).MatchString(got) {
		t.Fatalf("in the PID namespace the command printed %q (stderr %q)", got, stderr.String())
	}
	// secretfs exec is unshare's child: send it TERM from outside.
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", u.Process.Pid, u.Process.Pid))
	var pid int
	if _, err2 := fmt.Sscan(string(kids), &pid); err != nil || err2 != nil {
		t.Fatalf("secretfs exec's pid: %q, %v %v", kids, err, err2)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("secretfs exec as PID 1 did not end after TERM")
	}
	if code := u.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d, want %d (the command's death by TERM)", code, 128+int(syscall.SIGTERM))
	}
}

// install copies the binary (into a folder as "secretfs"), and the copy
// runs.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command(bin, "install", dir).CombinedOutput(); err != nil {
		t.Fatalf("install: %v, %s", err, out)
	}
	out, err := exec.Command(filepath.Join(dir, "secretfs"), "version").Output()
	if err != nil || len(out) == 0 {
		t.Errorf("the copy: %v, %q", err, out)
	}
	if out, err := exec.Command(bin, "install", filepath.Join(dir, "missing", "x")).CombinedOutput(); err == nil || strings.Count(string(out), "\n") != 1 {
		t.Errorf("install into a missing folder: %v, %q", err, out)
	}
}

// On a terminal, Ctrl-C reaches the command once: from the terminal
// (secretfs exec and the command share its foreground group), not a
// second time from secretfs exec. script(1) gives the run a terminal.
func TestExecTerminalCtrlC(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to run on a terminal")
	}
	src := t.TempDir()
	writeManifest(t, filepath.Join(src, "s.yaml"), secretYAML("s", "V", "one"))
	counter := filepath.Join(t.TempDir(), "count.sh")
	os.WriteFile(counter, []byte(`n=0
trap 'n=$((n+1))' INT
echo ready
while [ ! -e "$1" ]; do sleep 0.02; done
echo "ints=$n"
`), 0o644)
	stop := filepath.Join(t.TempDir(), "stop")
	cmd := exec.Command(script, "-qfec", fmt.Sprintf("%s exec --source file:%s --secret s -- sh %s %s", bin, src, counter, stop), "/dev/null")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "the command to start", func() bool { return strings.Contains(out.String(), "ready") })
	in.Write([]byte{3}) // Ctrl-C
	waitFor(t, "the terminal to show ^C", func() bool { return strings.Contains(out.String(), "^C") })
	time.Sleep(200 * time.Millisecond) // a second SIGINT would be sent at once; give it time to land
	os.WriteFile(stop, nil, 0o644)
	waitFor(t, "the count", func() bool { return strings.Contains(out.String(), "ints=") })
	if !strings.Contains(out.String(), "ints=1") {
		t.Errorf("the command got %q SIGINTs for one Ctrl-C", out.String())
	}
}

// A restart ends what the command left behind: `sh -c` whose child
// outlives the TERM (the shell dies, its sleep does not) is killed with
// its group once --grace is over, as a container's end would kill it.
func TestExecRestartEndsLeftovers(t *testing.T) {
	src := t.TempDir()
	manifest := filepath.Join(src, "s.yaml")
	writeManifest(t, manifest, secretYAML("s", "V", "one"))
	wrapper := `sleep 300 & echo "start V=$V child=$!"; wait`
	r := startExec(t, "exec", "--source", "file:"+src, "--secret", "s", "--on-change", "restart", "--grace", "300ms",
		"--", "sh", "-c", wrapper)
	waitFor(t, "the first start", func() bool { return len(r.lines()) == 1 })
	var left int
	fmt.Sscanf(r.lines()[0], "start V=one child=%d", &left)
	writeManifest(t, manifest, secretYAML("s", "V", "two"))
	waitFor(t, "the second start", func() bool { return len(r.lines()) == 2 && strings.HasPrefix(r.lines()[1], "start V=two") })
	stat := fmt.Sprintf("/proc/%d/stat", left)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first run's sleep %d is still there: %s", left, b)
		}
	}
	// The second run's sleep is ours to end: secretfs exec leaves what
	// the command left when it exits, as a shell does.
	var second int
	fmt.Sscanf(r.lines()[1], "start V=two child=%d", &second)
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.exitCode(t)
	if second > 0 {
		syscall.Kill(second, syscall.SIGKILL)
	}
}
