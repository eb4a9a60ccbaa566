//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/secretfs/secretfs/backend/provider/providertest"
	"github.com/secretfs/secretfs/sanity/syncbuf"
)

// `secretfs mount --secret A --secret B`: one volume of both Secrets,
// each --item belonging to the --secret before it, each Secret followed.
func TestMountSeveralSecrets(t *testing.T) {
	src := t.TempDir()
	writeManifest(t, filepath.Join(src, "db.yaml"), secretYAML("db", "password", "pw", "user", "u"))
	writeManifest(t, filepath.Join(src, "tls.yaml"), secretYAML("tls", "tls.crt", "c1", "tls.key", "k1"))
	dir := filepath.Join(t.TempDir(), "m")
	startMount(t, dir, "--source", "file:"+src, "--secret", "db", "--item", "password=db/password:0400",
		"--secret", "tls", "--item", "tls.crt=tls/crt", "--item", "tls.key=tls/key")
	for path, want := range map[string]string{"db/password": "pw", "tls/crt": "c1", "tls/key": "k1"} {
		if got := readFile(t, filepath.Join(dir, path)); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "db/password")); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("db/password: %v %v, want 0400", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "user")); !os.IsNotExist(err) {
		t.Errorf("db's unlisted key shows: %v", err)
	}
	writeManifest(t, filepath.Join(src, "tls.yaml"), secretYAML("tls", "tls.crt", "c2", "tls.key", "k2"))
	waitFor(t, "tls's change", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "tls/key"))
		return string(b) == "k2"
	})
	if got := readFile(t, filepath.Join(dir, "tls/crt")); got != "c2" {
		t.Errorf("tls/crt = %q after the switch", got)
	}
}

// Bad input with several Secrets: one line on stderr naming what is
// wrong, nothing mounted.
func TestMountSeveralSecretsBadInput(t *testing.T) {
	src := t.TempDir()
	writeManifest(t, filepath.Join(src, "a.yaml"), secretYAML("a", "x", "1", "conf", "c"))
	writeManifest(t, filepath.Join(src, "b.yaml"), secretYAML("b", "x", "secret-value", "yy", "2"))
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"same path", []string{"--secret", "a", "--secret", "b"}, `secretfs mount: sources conflict at path "x": secret "default/a" and secret "default/b" both give it`},
		{"file and folder", []string{"--secret", "a", "--secret", "b", "--item", "yy=conf/y"}, `secretfs mount: sources conflict at path "conf": secret "default/a" and secret "default/b" give a file and a folder there`},
		{"missing", []string{"--secret", "a", "--secret", "nope"}, `secretfs mount: secret "default/nope" not found`},
		{"item before several secrets", []string{"--item", "x=z", "--secret", "a", "--secret", "b"}, `secretfs mount: --item x comes before any --secret`},
		{"bad item of the second", []string{"--secret", "a", "--secret", "b", "--item", "yy=../y"}, `secretfs mount: --secret b: items[0].path "../y"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needRoot(t)
			dir := filepath.Join(t.TempDir(), "m")
			cmd := exec.Command(bin, append(append([]string{"mount", "--source", "file:" + src}, c.args...), dir)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err == nil {
				t.Fatal("exit 0 for bad input")
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if stdout.Len() != 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], c.want) {
				t.Errorf("stdout %q, stderr:\n%s\nwant one line starting %q", stdout.String(), stderr.String(), c.want)
			}
			if strings.Contains(stderr.String(), "secret-value") {
				t.Errorf("a value on stderr")
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("mount point %s left behind", dir)
			}
		})
	}
}

// A volume of several Secrets outlives its server with a keeper: the
// next `secretfs mount` with the same arguments takes it over (rebuilt
// from the keeper's snapshot, every source followed again).
func TestMountSeveralSecretsTakeover(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	work := t.TempDir()
	sock := filepath.Join(work, "keeper.sock")
	k := exec.Command(bin, "keeper", "--socket", sock)
	must(t, k.Start())
	t.Cleanup(func() { k.Process.Kill(); k.Wait() })
	waitFor(t, "keeper socket", func() bool { _, err := os.Stat(sock); return err == nil })
	src := filepath.Join(work, "src")
	must(t, os.Mkdir(src, 0o755))
	writeManifest(t, filepath.Join(src, "a.yaml"), secretYAML("a", "x", "1"))
	writeManifest(t, filepath.Join(src, "b.yaml"), secretYAML("b", "z", "1"))
	dir := filepath.Join(work, "m")
	args := []string{"mount", "--keeper", sock, "--source", "file:" + src, "--secret", "a", "--secret", "b", "--item", "z=b/z", dir}
	var stderr, stderr2 syncbuf.Buffer
	first := exec.Command(bin, args...)
	first.Stderr = &stderr
	must(t, first.Start())
	// "mounted" is said once the keeper holds the mount: a kill then
	// loses nothing.
	waitFor(t, "mount", func() bool { return strings.Contains(stderr.String(), "mounted") })
	ver, err := os.Readlink(filepath.Join(dir, "..data"))
	must(t, err)
	first.Process.Kill()
	first.Wait()

	next := exec.Command(bin, args...)
	next.Stderr = &stderr2
	must(t, next.Start())
	t.Cleanup(func() { next.Process.Signal(syscall.SIGTERM); next.Wait() })
	waitFor(t, "the takeover", func() bool { return strings.Contains(stderr2.String(), "mounted") })
	if readFile(t, filepath.Join(dir, "x")) != "1" || readFile(t, filepath.Join(dir, "b/z")) != "1" {
		t.Fatalf("after the takeover: %v", stderr2.String())
	}
	if now, err := os.Readlink(filepath.Join(dir, "..data")); err != nil || now != ver {
		t.Errorf("..data -> %s %v after the takeover, want the held version %s", now, err, ver)
	}
	writeManifest(t, filepath.Join(src, "b.yaml"), secretYAML("b", "z", "2"))
	waitFor(t, "b followed after the takeover", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "b/z")); return string(b) == "2" })
	writeManifest(t, filepath.Join(src, "a.yaml"), secretYAML("a", "x", "2"))
	waitFor(t, "a followed after the takeover", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "x")); return string(b) == "2" })

	// A source that fails across a takeover keeps its last files while
	// the others follow, as without one: the snapshot says which source
	// gave which file.
	next.Process.Kill()
	next.Wait()
	must(t, os.Rename(filepath.Join(src, "a.yaml"), filepath.Join(work, "a.yaml")))
	var stderr3 syncbuf.Buffer
	third := exec.Command(bin, args...)
	third.Stderr = &stderr3
	must(t, third.Start())
	t.Cleanup(func() { third.Process.Signal(syscall.SIGTERM); third.Wait() })
	waitFor(t, "the second takeover", func() bool { return strings.Contains(stderr3.String(), "mounted") })
	writeManifest(t, filepath.Join(src, "b.yaml"), secretYAML("b", "z", "3"))
	waitFor(t, "b followed while a is missing", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "b/z")); return string(b) == "3" })
	if got := readFile(t, filepath.Join(dir, "x")); got != "2" {
		t.Errorf("x = %q while a is missing after a takeover, want its last good 2", got)
	}
	writeManifest(t, filepath.Join(src, "a.yaml"), secretYAML("a", "x", "4"))
	waitFor(t, "a followed when it came back", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "x")); return string(b) == "4" })
}

// A CSI volume of several sources (two Secrets and a provider class)
// survives a SIGKILL of `secretfs csi --keeper`: the next process takes
// it back from the keeper's record and follows every source again.
func TestSourcesVolumeSurvivesKill(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	w := newCSIKeeper(t)
	srv := providertest.Start(t, w.socks, "vault")
	srv.SetFiles(map[string]string{"db-password": "v1"}, "1")
	writeManifest(t, filepath.Join(w.src, "spc.yaml"), "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: db, namespace: default}\nspec: {provider: vault, parameters: {roleName: app}}\n")
	writeManifest(t, filepath.Join(w.src, "tls.yaml"), secretYAML("tls", "tls.crt", "c1", "tls.key", "k1"))
	writeManifest(t, filepath.Join(w.src, "cfg.yaml"), secretYAML("cfg", "mode", "a"))
	w.start()
	req := w.inline("uid-1", "app", map[string]string{"sources": `[{"secret": {"name": "tls"}}, {"secret": {"name": "cfg", "items": [{"key": "mode", "path": "conf/mode"}]}}, {"secretProviderClass": {"name": "db"}}]`})
	w.publish(req)
	dir := req.TargetPath
	ver, err := os.Readlink(filepath.Join(dir, "..data"))
	must(t, err)
	w.kill()
	calls := srv.Calls()
	w.start()
	waitFor(t, "the takeover's call to the provider", func() bool { return srv.Calls() > calls })
	if now, err := os.Readlink(filepath.Join(dir, "..data")); err != nil || now != ver {
		t.Errorf("..data -> %s %v after the takeover, want the held version %s", now, err, ver)
	}
	for path, want := range map[string]string{"tls.key": "k1", "conf/mode": "a", "db-password": "v1"} {
		if got := readFile(t, filepath.Join(dir, path)); got != want {
			t.Errorf("%s = %q after the takeover, want %q", path, got, want)
		}
	}
	writeManifest(t, filepath.Join(w.src, "tls.yaml"), secretYAML("tls", "tls.crt", "c2", "tls.key", "k2"))
	waitFor(t, "tls followed after the takeover", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "tls.key")); return string(b) == "k2" })
	srv.SetFiles(map[string]string{"db-password": "v2"}, "2")
	w.publish(req) // kubelet's republish reaches the new process
	waitFor(t, "the provider followed after the takeover", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "db-password")); return string(b) == "v2" })
	w.unpublish(req)
}
