//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretfs/secretfs/sanity/needroot"
)

// These tests drive the real binary, as a user would: real FUSE mounts,
// real signals, real manifest folders.

var bin string

func TestMain(m *testing.M) {
	// A test re-run inside a private mount namespace (inPrivateNS)
	// reuses the binary its parent built.
	if b := os.Getenv("SECRETFS_TEST_BIN"); b != "" {
		bin = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "secretfs-bin")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "secretfs")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("build: %v\n%s", err, out))
	}
	os.Setenv("SECRETFS_TEST_BIN", bin)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needRoot(t *testing.T) {
	needroot.FUSE(t, "secretfs mount mounts FUSE")
}

type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
}

// start runs secretfs mount ... DIR and waits until the volume shows.
func startMount(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	needRoot(t)
	p := &proc{cmd: exec.Command(bin, append(append([]string{"mount"}, args...), dir)...), done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Lstat(filepath.Join(dir, "..data")); err == nil {
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("mount exited early: %v\n%s", err, p.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("mount did not show up\n%s", p.stderr.String())
	return nil
}

func (p *proc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("secretfs mount did not exit")
	}
	p.done <- nil // for the cleanup
	return p.cmd.ProcessState.ExitCode()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSeedExamples(t *testing.T) {
	src := "file:testdata/seed"
	cases := []struct {
		name  string
		args  []string
		files map[string]string // path → content
		modes map[string]os.FileMode
	}{
		{"mysecret", []string{"--secret", "mysecret"},
			map[string]string{"username": "admin", "password": "1f2d1e2e67df"},
			map[string]os.FileMode{"username": 0o644}},
		{"items", []string{"--secret", "mysecret", "--item", "username=my-group/my-username"},
			map[string]string{"my-group/my-username": "admin"}, nil},
		{"defaultMode 0400", []string{"--secret", "mysecret", "--default-mode", "0400"},
			map[string]string{"username": "admin"}, map[string]os.FileMode{"username": 0o400, "password": 0o400}},
		{"item modes", []string{"--secret", "mysecret", "--item", "username=my-group/my-username:0777", "--item", "password=p:400"},
			map[string]string{"p": "1f2d1e2e67df"}, map[string]os.FileMode{"my-group/my-username": 0o777, "p": 0o400}},
		{"dotfile", []string{"--secret", "dotfile-secret"},
			map[string]string{".secret-file": "value-2\r\n\r\n"}, nil},
		{"ssh-key", []string{"--secret", "ssh-key-secret"},
			map[string]string{"ssh-publickey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA test@example"}, nil},
		{"prod-db", []string{"--secret", "prod-db-secret"}, map[string]string{"password": "Y4nys7f11"}, nil},
		{"test-db", []string{"--secret", "test-db-secret"}, map[string]string{"username": "testuser"}, nil},
		{"basic-auth", []string{"--secret", "secret-basic-auth"}, map[string]string{"password": "t0p-Secret"}, nil},
		{"tls", []string{"--secret", "secret-tls"}, map[string]string{"tls.crt": "cert", "tls.key": "key"}, nil},
		{"dockerconfigjson", []string{"--secret", "secret-dockercfg"}, map[string]string{".dockerconfigjson": `{"auths":{"r.example":{"auth":"eDp5"}}}`}, nil},
		{"dockercfg", []string{"--secret", "legacy-dockercfg"}, map[string]string{".dockercfg": `{"r.example":{"auth":"eDp5"}}`}, nil},
		{"service-account-token", []string{"--secret", "sa-token"}, map[string]string{"extra": "bar"}, nil},
		{"bootstrap token", []string{"--secret", "bootstrap-token-5emitj", "-n", "kube-system"}, map[string]string{"token-id": "5emitj"}, nil},
		{"fsGroup", []string{"--secret", "mysecret", "--fs-group", "1001", "--default-mode", "0400"},
			map[string]string{"username": "admin"}, map[string]os.FileMode{"username": 0o440}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			startMount(t, dir, append([]string{"--source", src}, c.args...)...)
			for path, want := range c.files {
				if got := readFile(t, filepath.Join(dir, path)); got != want {
					t.Errorf("%s = %q, want %q", path, got, want)
				}
			}
			for path, want := range c.modes {
				fi, err := os.Stat(filepath.Join(dir, path))
				if err != nil || fi.Mode().Perm() != want {
					t.Errorf("mode of %s = %v, %v; want %v", path, fi.Mode(), err, want)
				}
			}
		})
	}
}

// TestBadInput: non-zero exit before mounting, one line on stderr naming
// what is wrong, nothing on stdout, no mount point left behind.
func TestBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "-bogus"},
		{"bad default mode", []string{"--secret", "mysecret", "--default-mode", "0999"}, "0999"},
		{"mode over 0777", []string{"--secret", "mysecret", "--default-mode", "01777"}, "01777"},
		{"bad item mode", []string{"--secret", "mysecret", "--item", "username=a:rw"}, `"rw"`},
		{"absolute item path", []string{"--secret", "mysecret", "--item", "username=/etc/x"}, "/etc/x"},
		{"dotdot item path", []string{"--secret", "mysecret", "--item", "username=a/../../x"}, "a/../../x"},
		{"item path starting with ..", []string{"--secret", "mysecret", "--item", "username=..x"}, "..x"},
		{"missing secret", []string{"--secret", "nope"}, "default/nope"},
		{"missing key", []string{"--secret", "mysecret", "--item", "nokey=x"}, "nokey"},
		{"missing namespace's secret", []string{"--secret", "mysecret", "-n", "other"}, "other/mysecret"},
		{"bad base64", []string{"--source", "file:testdata/bad", "--secret", "badbase64"}, `"token"`},
		{"bad key", []string{"--source", "file:testdata/bad", "--secret", "badkey"}, "bad/key"},
		{"tls without key", []string{"--source", "file:testdata/bad", "--secret", "tls-missing-key", "--optional"}, "tls.key"},
		{"bad strategy", []string{"--secret", "mysecret", "--change-detection", "Poll"}, "Poll"},
		{"unknown source", []string{"--source", "vault:x", "--secret", "mysecret"}, "vault:x"},
		{"no secret", []string{}, "--secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			args := append([]string{"mount"}, c.args...)
			if !hasFlag(c.args, "--source") {
				args = append(args, "--source", "file:testdata/seed")
			}
			cmd := exec.Command(bin, append(args, dir)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err == nil {
				t.Fatal("exit 0 for bad input")
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty: %q", stdout.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if !strings.Contains(lines[0], c.want) {
				t.Errorf("first stderr line %q does not name %q", lines[0], c.want)
			}
			if len(lines) > 1 && c.name != "unknown flag" {
				t.Errorf("stderr has %d lines, want one:\n%s", len(lines), stderr.String())
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("mount point %s left behind", dir)
			}
		})
	}
}

func hasFlag(args []string, f string) bool {
	for _, a := range args {
		if a == f {
			return true
		}
	}
	return false
}

func TestSignalsAndOutsideUnmount(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		dir := filepath.Join(t.TempDir(), "m")
		p := startMount(t, dir, "--source", "file:testdata/seed", "--secret", "mysecret")
		f, err := os.Open(filepath.Join(dir, "username")) // a busy mount detaches lazily
		if err != nil {
			t.Fatal(err)
		}
		if code := p.stop(t, sig); code != 0 {
			t.Errorf("%v: exit %d, want 0\n%s", sig, code, p.stderr.String())
		}
		f.Close()
		if _, err := os.Lstat(filepath.Join(dir, "..data")); err == nil {
			t.Errorf("%v: still mounted", sig)
		}
		if p.stdout.Len() != 0 {
			t.Errorf("stdout not empty: %q", p.stdout.String())
		}
	}
	dir := filepath.Join(t.TempDir(), "m")
	p := startMount(t, dir, "--source", "file:testdata/seed", "--secret", "mysecret")
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("after an outside unmount: %v\n%s", err, p.stderr.String())
		}
		p.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("still running after an outside unmount")
	}
}

func writeManifest(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func secretYAML(name string, kv ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\nstringData:\n", name)
	for i := 0; i < len(kv); i += 2 {
		fmt.Fprintf(&b, "  %s: %q\n", kv[i], kv[i+1])
	}
	return b.String()
}

func TestFollowsManifestEdits(t *testing.T) {
	src := t.TempDir()
	manifest := filepath.Join(src, "s.yaml")
	writeManifest(t, manifest, secretYAML("app", "a", "1", "b", "1"))
	dir := filepath.Join(t.TempDir(), "m")
	startMount(t, dir, "--source", "file:"+src, "--secret", "app")

	writeManifest(t, manifest, secretYAML("app", "a", "2", "c", "2"))
	waitFor(t, "a=2", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "a")); return string(b) == "2" })
	if _, err := os.Stat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Errorf("removed key b still shows: %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "c")); got != "2" {
		t.Errorf("added key c = %q", got)
	}
	// A broken manifest is the source being unreachable: the last good
	// version stays.
	os.WriteFile(manifest, []byte("kind: Secret\n  bad: [indent"), 0o600)
	time.Sleep(100 * time.Millisecond)
	if got := readFile(t, filepath.Join(dir, "a")); got != "2" {
		t.Errorf("after a broken edit a = %q, want the last good 2", got)
	}
	// Deleting the Secret keeps the last good version of a non-optional
	// volume.
	os.Remove(manifest)
	time.Sleep(100 * time.Millisecond)
	if got := readFile(t, filepath.Join(dir, "a")); got != "2" {
		t.Errorf("after delete a = %q, want the last good 2", got)
	}
	writeManifest(t, filepath.Join(src, "other-name.yaml"), secretYAML("app", "a", "3"))
	waitFor(t, "a=3 from a new file", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "a")); return string(b) == "3" })
}

func TestOptionalFillsInAndEmpties(t *testing.T) {
	src := t.TempDir()
	dir := filepath.Join(t.TempDir(), "m")
	startMount(t, dir, "--source", "file:"+src, "--secret", "later", "--optional")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "..") {
			t.Errorf("optional volume of a missing Secret shows %s", e.Name())
		}
	}
	manifest := filepath.Join(src, "later.yaml")
	writeManifest(t, manifest, secretYAML("later", "k", "v"))
	waitFor(t, "k to appear", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "k")); return string(b) == "v" })
	os.Remove(manifest)
	waitFor(t, "k to go", func() bool { _, err := os.Stat(filepath.Join(dir, "k")); return os.IsNotExist(err) })
}

func TestEnvAndExec(t *testing.T) {
	out, err := exec.Command(bin, "env", "--source", "file:testdata/seed", "--secret", "mysecret").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "export password='1f2d1e2e67df'\nexport username='admin'\n"; string(out) != want {
		t.Errorf("env printed %q, want %q", out, want)
	}
	cmd := exec.Command(bin, "env", "--source", "file:testdata/seed", "--secret", "dotfile-secret")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil || len(out) != 0 || !strings.Contains(stderr.String(), "Keys [.secret-file]") || strings.Contains(stderr.String(), "value-2") {
		t.Errorf("env of an invalid name: out %q, err %v, stderr %q", out, err, stderr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err = exec.CommandContext(ctx, bin, "exec", "--source", "file:testdata/seed", "--secret", "prod-db-secret", "--",
		"sh", "-c", `printf %s "$username:$password"`).Output()
	if err != nil || string(out) != "produser:Y4nys7f11" {
		t.Errorf("exec saw %q, %v", out, err)
	}
	// Quoting survives a round trip through a shell.
	src := t.TempDir()
	writeManifest(t, filepath.Join(src, "q.yaml"), secretYAML("q", "TRICKY", `it's "$HOME" \n`))
	out, err = exec.Command(bin, "env", "--source", "file:"+src, "--secret", "q").Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command("sh", "-c", string(out)+`printf %s "$TRICKY"`).Output()
	if err != nil || string(got) != `it's "$HOME" \n` {
		t.Errorf("shell read back %q, %v", got, err)
	}
}
