//go:build linux

package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/sanity/mountns"
	"github.com/secretfs/secretfs/sanity/syncbuf"
)

// inPrivateNS runs the calling test again inside a private mount
// namespace and reports false: the caller returns, its result is the
// child's. Inside, it reports true, and whatever the test mounts (over
// /dev/fuse, /etc/fuse.conf, /dev) goes with the namespace.
func inPrivateNS(t *testing.T) bool {
	t.Helper()
	needRoot(t)
	return mountns.Enter(t)
}

// userWorld is a folder every user can reach (a tmpfs inside the private
// namespace), holding a copy of the binary, a manifest folder and a
// mount point owned by uid 65534; /dev/fuse is a 0666 node bound over
// the real one (never chmod'ed).
type userWorld struct {
	dir, bin, src, mnt string
	confBound          bool
}

const nobody = 65534

func newUserWorld(t *testing.T) *userWorld {
	t.Helper()
	mountns.Require(t)
	dir, err := os.MkdirTemp("", "secretfs-user")
	if err != nil {
		t.Fatal(err)
	}
	must(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"))
	t.Cleanup(func() {
		unix.Unmount(dir, unix.MNT_DETACH)
		os.Remove(dir)
	})
	w := &userWorld{dir: dir, bin: filepath.Join(dir, "secretfs"), src: filepath.Join(dir, "src"), mnt: filepath.Join(dir, "m")}
	must(t, unix.Mknod(filepath.Join(dir, "fuse"), unix.S_IFCHR|0o666, int(unix.Mkdev(10, 229))))
	must(t, os.Chmod(filepath.Join(dir, "fuse"), 0o666))
	must(t, unix.Mount(filepath.Join(dir, "fuse"), "/dev/fuse", "", unix.MS_BIND, ""))
	data, err := os.ReadFile(bin)
	must(t, err)
	must(t, os.WriteFile(w.bin, data, 0o755))
	must(t, os.Mkdir(w.src, 0o755))
	must(t, os.WriteFile(filepath.Join(w.src, "s.yaml"), []byte(secretYAML("s", "k", "hello", "private", "p4ss")), 0o644))
	must(t, os.Mkdir(w.mnt, 0o755))
	must(t, os.Chown(w.mnt, nobody, nobody))
	// fusermount3 refuses a user's mount when the namespace (a copy of the
	// host's) holds over mount_max (1000) FUSE mounts, as a benchmark
	// running beside this test may have.
	w.fuseConf(t, "")
	return w
}

// fuseConf binds a fuse.conf holding extra (and a high mount_max) over
// /etc/fuse.conf, in this namespace only.
func (w *userWorld) fuseConf(t *testing.T, extra string) {
	t.Helper()
	conf := filepath.Join(w.dir, "fuse.conf")
	must(t, os.WriteFile(conf, []byte("mount_max = 100000\n"+extra), 0o644))
	if !w.confBound { // later writes reach the bound file itself
		must(t, unix.Mount(conf, "/etc/fuse.conf", "", unix.MS_BIND, ""))
		w.confBound = true
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// asUser runs argv as uid:gid with no supplementary groups, as setpriv does.
func asUser(uid int, env []string, argv ...string) *exec.Cmd {
	cmd := exec.Command("/usr/bin/setpriv", append([]string{"--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(uid), "--clear-groups"}, argv...)...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader("") // no /dev/null needed
	return cmd
}

// mountOf returns the mountinfo entry at dir, or nil.
func mountOf(t *testing.T, dir string) *mountinfo.Info {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	must(t, err)
	if len(infos) == 0 {
		return nil
	}
	return infos[len(infos)-1]
}

func hasOption(opts, o string) bool { return strings.Contains(","+opts+",", ","+o+",") }

// userMount starts `secretfs mount` as uid 65534 and waits until it says
// it is mounted (root cannot look into the mount: no allow_other).
func (w *userWorld) userMount(t *testing.T, args ...string) (*exec.Cmd, *syncbuf.Buffer, chan error) {
	t.Helper()
	argv := append(append([]string{w.bin, "mount", "--source", "file:" + w.src, "--secret", "s"}, args...), w.mnt)
	cmd := asUser(nobody, []string{"PATH=/usr/bin:/bin"}, argv...)
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "msg=mounted") {
		select {
		case err := <-done:
			t.Fatalf("mount as uid %d exited: %v\n%s", nobody, err, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount as uid %d did not show up\n%s", nobody, stderr.String())
		}
	}
	if mountOf(t, w.mnt) == nil {
		t.Fatalf("said mounted, but nothing is mounted at %s", w.mnt)
	}
	return cmd, stderr, done
}

func readAs(uid int, path string) (string, error) {
	cmd := asUser(uid, nil, "/bin/cat", path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", &exec.ExitError{Stderr: out, ProcessState: cmd.ProcessState}
	}
	return string(out), nil
}

func waitExit(t *testing.T, done chan error, stderr *syncbuf.Buffer) int {
	t.Helper()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		must(t, err)
		return 0
	case <-time.After(10 * time.Second):
		t.Fatalf("secretfs mount did not exit\n%s", stderr.String())
	}
	return -1
}

// checkHardened: the process is non-dumpable (its /proc files belong to
// root whoever runs it), may write no core, and holds locked memory.
func checkHardened(t *testing.T, pid int, wantOwner uint32) {
	t.Helper()
	limits, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	must(t, err)
	if !regexp.MustCompile(`(?m)^Max core file size\s+0\s+0\s+bytes`).Match(limits) {
		t.Errorf("core size not 0:\n%s", limits)
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	must(t, err)
	m := regexp.MustCompile(`VmLck:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil || string(m[1]) == "0" {
		t.Errorf("no locked memory: %s", m)
	}
	var st unix.Stat_t
	must(t, unix.Stat("/proc/"+strconv.Itoa(pid)+"/status", &st))
	if st.Uid != wantOwner {
		t.Errorf("/proc/%d/status belongs to uid %d, want %d (non-dumpable)", pid, st.Uid, wantOwner)
	}
}

// TestRegularUserMount: uid 65534 mounts through fusermount3 and reads
// the Secret; other users, root included, are refused; SIGTERM and an
// outside `fusermount3 -u` both end it with exit 0.
func TestRegularUserMount(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	w := newUserWorld(t)
	cmd, stderr, done := w.userMount(t)
	mi := mountOf(t, w.mnt)
	if mi.FSType != "fuse.secretfs" || hasOption(mi.VFSOptions, "allow_other") || !hasOption(mi.VFSOptions, "user_id=65534") {
		t.Errorf("mount: type %s, super options %q; want fuse.secretfs, user_id=65534, no allow_other", mi.FSType, mi.VFSOptions)
	}
	if got, err := readAs(nobody, filepath.Join(w.mnt, "k")); got != "hello" || err != nil {
		t.Errorf("uid %d reads %q, %v", nobody, got, err)
	}
	if _, err := readAs(nobody-1, filepath.Join(w.mnt, "k")); err == nil || !strings.Contains(string(err.(*exec.ExitError).Stderr), "Permission denied") {
		t.Errorf("uid %d read another user's mount: %v", nobody-1, err)
	}
	if _, err := os.ReadFile(filepath.Join(w.mnt, "k")); !os.IsPermission(err) {
		t.Errorf("root read a mount without allow_other: %v", err)
	}
	// The owner uid 0 of its /proc files proves it non-dumpable: a
	// dumpable process of uid 65534 owns them.
	checkHardened(t, cmd.Process.Pid, 0)
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if code := waitExit(t, done, stderr); code != 0 {
		t.Errorf("SIGTERM: exit %d\n%s", code, stderr)
	}
	if mountOf(t, w.mnt) != nil {
		t.Error("still mounted after SIGTERM")
	}

	// Busy (a file held open by its owner): SIGTERM detaches lazily.
	cmd, stderr, done = w.userMount(t)
	holder := asUser(nobody, nil, "/bin/sh", "-c", "exec 3<"+filepath.Join(w.mnt, "k")+"; echo open; exec sleep 30")
	out, err := holder.StdoutPipe()
	must(t, err)
	must(t, holder.Start())
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "open\n" {
		t.Fatalf("holder: %q %v", line, err)
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if code := waitExit(t, done, stderr); code != 0 {
		t.Errorf("SIGTERM while busy: exit %d\n%s", code, stderr)
	}
	if mountOf(t, w.mnt) != nil {
		t.Error("busy mount still in the tree after SIGTERM")
	}
	holder.Process.Kill()
	holder.Wait()

	// Unmounted from outside, by its owner.
	_, stderr, done = w.userMount(t)
	if out, err := asUser(nobody, nil, "/usr/bin/fusermount3", "-u", w.mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v %s", err, out)
	}
	if code := waitExit(t, done, stderr); code != 0 {
		t.Errorf("outside unmount: exit %d\n%s", code, stderr)
	}
}

// TestRegularUserAllowOther: --allow-other and --fs-group need
// user_allow_other in /etc/fuse.conf; with it, other users read.
func TestRegularUserAllowOther(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	w := newUserWorld(t)
	w.fuseConf(t, "# no user_allow_other\n")
	for flag, want := range map[string][]string{
		"--allow-other": {"--allow-other", "--allow-other needs root or user_allow_other in /etc/fuse.conf"},
		"--fs-group":    {"--fs-group", "2000", "--fs-group implies --allow-other, which needs root or user_allow_other in /etc/fuse.conf"},
	} {
		args, msg := want[:len(want)-1], want[len(want)-1]
		cmd := asUser(nobody, []string{"PATH=/usr/bin:/bin"}, append(append([]string{w.bin, "mount", "--source", "file:" + w.src, "--secret", "s"}, args...), w.mnt)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil || strings.TrimSpace(stderr.String()) != "secretfs mount: "+msg || stdout.Len() > 0 {
			t.Errorf("%s without user_allow_other: %v, stderr %q stdout %q", flag, err, stderr.String(), stdout.String())
		}
		if mountOf(t, w.mnt) != nil {
			t.Fatalf("%s: mounted anyway", flag)
		}
	}
	w.fuseConf(t, "user_allow_other\n")
	cmd, stderr, done := w.userMount(t, "--allow-other")
	if mi := mountOf(t, w.mnt); !hasOption(mi.VFSOptions, "allow_other") {
		t.Errorf("super options %q lack allow_other", mi.VFSOptions)
	}
	if got, err := readAs(nobody-1, filepath.Join(w.mnt, "k")); got != "hello" || err != nil {
		t.Errorf("another user with --allow-other reads %q, %v", got, err)
	}
	must(t, cmd.Process.Signal(syscall.SIGINT))
	if code := waitExit(t, done, stderr); code != 0 {
		t.Errorf("SIGINT: exit %d\n%s", code, stderr)
	}
}

// TestMountPrerequisites: without fusermount3 a regular user is told to
// install fuse3; without /dev/fuse anyone is told so.
func TestMountPrerequisites(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	w := newUserWorld(t)
	run := func(uid int, env []string) (int, string) {
		argv := []string{w.bin, "mount", "--source", "file:" + w.src, "--secret", "s", w.mnt}
		cmd := asUser(uid, env, argv...)
		if uid == 0 {
			cmd = exec.Command(argv[0], argv[1:]...)
			cmd.Env, cmd.Stdin = env, strings.NewReader("")
		}
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		err := cmd.Run()
		if err == nil {
			t.Errorf("uid %d: mounted", uid)
			return 0, stderr.String()
		}
		return err.(*exec.ExitError).ExitCode(), strings.TrimSpace(stderr.String())
	}
	noFusermount := []string{"PATH=" + w.dir} // secretfs alone
	if code, msg := run(nobody, noFusermount); code != 1 || !strings.Contains(msg, "install fuse3") || strings.Count(msg, "\n") > 0 {
		t.Errorf("no fusermount3: exit %d, %q; want one line saying install fuse3", code, msg)
	}
	// No /dev at all: a tmpfs over it, in this namespace only.
	must(t, unix.Mount("tmpfs", "/dev", "tmpfs", 0, "mode=0755"))
	for _, uid := range []int{0, nobody} {
		if code, msg := run(uid, []string{"PATH=/usr/bin:/bin"}); code != 1 || !strings.Contains(msg, "/dev/fuse is missing") || strings.Count(msg, "\n") > 0 {
			t.Errorf("uid %d without /dev/fuse: exit %d, %q", uid, code, msg)
		}
	}
}

// TestRootMountHardened: root's mount has no allow_other unless asked,
// and the process writes no core and locks the secret's memory.
func TestRootMountHardened(t *testing.T) {
	needRoot(t)
	src := t.TempDir()
	writeManifest(t, filepath.Join(src, "s.yaml"), secretYAML("s", "k", "v"))
	for _, allow := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "m")
		args := []string{"--source", "file:" + src, "--secret", "s"}
		if allow {
			args = append(args, "--allow-other")
		}
		p := startMount(t, dir, args...)
		mi := mountOf(t, dir)
		if mi == nil || hasOption(mi.VFSOptions, "allow_other") != allow {
			t.Errorf("--allow-other %v: super options %v", allow, mi)
		}
		checkHardened(t, p.cmd.Process.Pid, 0)
		if code := p.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("exit %d", code)
		}
	}
}
