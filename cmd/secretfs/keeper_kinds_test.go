//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretfs/secretfs/sanity/syncbuf"
)

func startProc(t *testing.T, args ...string) (*exec.Cmd, *syncbuf.Buffer) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	out := &syncbuf.Buffer{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", filepath.Base(args[len(args)-1]), out.String())
		}
	})
	return cmd, out
}

// mountID is the mount id of the mount at dir (mountinfo's first field),
// "" if none: a takeover keeps it, a fresh mount gets a new one.
func mountID(dir string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return f[0]
		}
	}
	return ""
}

// TestKeeperCSILeavesMountRecords: `secretfs csi --keeper` beside a
// workstation mount held by the same keeper takes back only csi records;
// the mount stays held and serving, and its next server takes it over.
func TestKeeperCSILeavesMountRecords(t *testing.T) {
	needRoot(t)
	work := t.TempDir()
	sock := filepath.Join(work, "keeper.sock")
	startProc(t, bin, "keeper", "--socket", sock)
	waitFor(t, "keeper socket", func() bool { _, err := os.Stat(sock); return err == nil })
	src := filepath.Join(work, "src")
	os.Mkdir(src, 0o755)
	manifest := filepath.Join(src, "s.yaml")
	writeManifest(t, manifest, secretYAML("app", "k", "v1"))
	dir := filepath.Join(work, "m")
	margs := []string{bin, "mount", "--keeper", sock, "--source", "file:" + src, "--secret", "app", dir}
	m1, _ := startProc(t, margs...)
	read := func() string { b, _ := os.ReadFile(filepath.Join(dir, "k")); return string(b) }
	waitFor(t, "mount", func() bool { return read() == "v1" })
	id := mountID(dir)

	root := filepath.Join(work, "kubelet")
	os.Mkdir(root, 0o750)
	csiSock := filepath.Join(work, "csi.sock")
	_, csiErr := startProc(t, bin, "csi", "--endpoint", "unix://"+csiSock, "--node-id", "n1",
		"--source", "file:"+src, "--keeper", sock, "--mount-root", root)
	waitFor(t, "csi endpoint", func() bool { _, err := os.Stat(csiSock); return err == nil })
	if s := csiErr.String(); strings.Contains(s, "detach") || strings.Contains(s, "keeper record") {
		t.Errorf("csi touched a mount record:\n%s", s)
	}
	if got := read(); got != "v1" {
		t.Fatalf("mount shows %q after csi started, want v1", got)
	}
	// Its record is still held: a new server takes the same mount over.
	m1.Process.Signal(syscall.SIGKILL)
	m1.Wait()
	startProc(t, margs...)
	writeManifest(t, manifest, secretYAML("app", "k", "v2"))
	waitFor(t, "the update through the next server", func() bool { return read() == "v2" })
	if now := mountID(dir); now != id || id == "" {
		t.Errorf("mount id %q became %q: mounted afresh, not taken over", id, now)
	}
}

// TestKeeperOfAnotherUIDRefusedByCSI: the plugin says so within 5 s and
// does not dial that keeper again.
func TestKeeperOfAnotherUIDRefusedByCSI(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("running as root but setpriv (util-linux) is missing (%v): this test must not skip as root", err)
	}
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(base, 0o755)
	shared := filepath.Join(base, "shared")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o777)
	nobin := filepath.Join(shared, "secretfs")
	if b, err := os.ReadFile(bin); err != nil || os.WriteFile(nobin, b, 0o755) != nil {
		t.Fatal("copy the binary where nobody can run it")
	}
	sock := filepath.Join(shared, "keeper.sock")
	_, kerr := startProc(t, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", nobin, "keeper", "--socket", sock)
	waitFor(t, "nobody's keeper", func() bool { _, err := os.Stat(sock); return err == nil })

	src := filepath.Join(base, "src")
	os.Mkdir(src, 0o700)
	root := filepath.Join(base, "kubelet")
	os.Mkdir(root, 0o750)
	t0 := time.Now()
	_, out := startProc(t, bin, "csi", "--endpoint", "unix://"+filepath.Join(base, "csi.sock"), "--node-id", "n1",
		"--source", "file:"+src, "--keeper", sock, "--mount-root", root)
	want := "the keeper runs as uid 65534, this process as uid 0"
	for !strings.Contains(out.String(), want) {
		if time.Since(t0) > 5*time.Second {
			t.Fatalf("csi did not report the keeper's uid within 5s; stderr:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // time enough for retries, if there were any
	if n := strings.Count(kerr.String(), "keeper refused a client of another uid"); n != 1 {
		t.Errorf("the keeper saw %d connections from the plugin, want 1:\n%s", n, kerr.String())
	}
}

// TestKeeperProtocolInVersion: `secretfs version` names the keeper
// protocol versions, which decide whether two releases hand over.
func TestKeeperProtocolInVersion(t *testing.T) {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "secretfs ") || lines[1] != "keeper protocol: 1 2" {
		t.Errorf("secretfs version printed:\n%s", out)
	}
}
