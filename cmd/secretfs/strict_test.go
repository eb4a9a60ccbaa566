//go:build linux

package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretfs/secretfs/sanity/needroot"
)

// leak stands for a secret value: it must reach no output.
const leak = "Zq7xK9mW2vRt4pLs8nBdQ3"

// hostileSecrets are Secret bodies that YAML decoders quote values for or
// that YAML reads as other than a map of strings; want is the key path and
// reason the one error line must name.
var hostileSecrets = []struct{ name, body, want string }{
	{"data !!int", "data:\n  password: !!int " + leak, "data.password: value tagged !!int"},
	{"data !!float", "data:\n  password: !!float " + leak, "data.password: value tagged !!float"},
	{"data !!bool", "data:\n  password: !!bool " + leak, "data.password: value tagged !!bool"},
	{"data !!timestamp", "data:\n  password: !!timestamp " + leak, "data.password: value tagged !!timestamp"},
	{"data !!null", "data:\n  password: !!null " + leak, "data.password: value tagged !!null"},
	{"data !!binary", "data:\n  password: !!binary " + leak, "data.password: value tagged !!binary"},
	{"stringData !!int", "stringData:\n  password: !!int " + leak, "stringData.password: value tagged !!int"},
	{"stringData !!float", "stringData:\n  password: !!float " + leak, "stringData.password: value tagged !!float"},
	{"stringData !!bool", "stringData:\n  password: !!bool " + leak, "stringData.password: value tagged !!bool"},
	{"stringData !!timestamp", "stringData:\n  password: !!timestamp " + leak, "stringData.password: value tagged !!timestamp"},
	{"stringData !!null", "stringData:\n  password: !!null " + leak, "stringData.password: value tagged !!null"},
	{"stringData !!binary", "stringData:\n  password: !!binary " + leak, "stringData.password: value tagged !!binary"},
	{"tag on data", "data: !!binary\n  password: " + leak, "data: must be an untagged map"},
	{"duplicate key", "stringData:\n  password: " + leak + "\n  password: " + leak + "2", "stringData.password: duplicate key"},
	{"complex key", "stringData:\n  ? [" + leak + "]\n  : " + leak, "stringData: complex key"},
	{"null key", "stringData:\n  ~: " + leak, "stringData: null key"},
	{"int key", "stringData:\n  1: " + leak, "stringData: key is a !!int"},
	{"unterminated quote", "stringData:\n  a: \"" + leak + "\n  b: x\n", "invalid YAML syntax"},
}

// hostileFolder writes one hostile Secret as document 2 of x.yaml.
func hostileFolder(t *testing.T, body string) string {
	src := t.TempDir()
	doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n---\n" +
		"apiVersion: v1\nkind: Secret\nmetadata: {name: m}\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(src, "x.yaml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return src
}

// runBad runs secretfs with args and checks: non-zero exit, nothing on
// stdout, stderr naming the file and want, and no value anywhere.
func runBad(t *testing.T, src, want string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("%s: exit 0 for a hostile Secret", args[0])
	}
	out := stdout.String() + stderr.String()
	if strings.Contains(out, leak) {
		t.Errorf("%s: output leaks the value:\n%s", args[0], out)
	}
	if stdout.Len() != 0 {
		t.Errorf("%s: stdout not empty: %q", args[0], stdout.String())
	}
	for _, w := range []string{filepath.Join(src, "x.yaml") + ": document 2", want} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("%s: stderr %q does not name %q", args[0], stderr.String(), w)
		}
	}
}

func TestHostileManifestsQuiet(t *testing.T) {
	for _, tc := range hostileSecrets {
		t.Run(tc.name, func(t *testing.T) {
			src := hostileFolder(t, tc.body)
			source := "file:" + src
			runBad(t, src, tc.want, "env", "--source", source, "--secret", "m")
			runBad(t, src, tc.want, "exec", "--source", source, "--secret", "m", "--", "true")
		})
	}
}

func TestHostileManifestsMountQuiet(t *testing.T) {
	needroot.FUSE(t, "secretfs mount")
	for _, tc := range hostileSecrets {
		t.Run(tc.name, func(t *testing.T) {
			src := hostileFolder(t, tc.body)
			mnt := filepath.Join(t.TempDir(), "mnt")
			runBad(t, src, tc.want, "mount", "--source", "file:"+src, "--secret", "m", mnt)
			if _, err := os.Lstat(filepath.Join(mnt, "..data")); err == nil {
				t.Errorf("a volume shows at %s after a refused mount", mnt)
			}
		})
	}
}

// TestSpecialFilesBesideSecret: a FIFO, a socket and a sparse 200 MB file
// named like manifests do not stop the mount, are each named once on
// stderr, and are never read: the process stays small.
func TestSpecialFilesBesideSecret(t *testing.T) {
	needroot.FUSE(t, "secretfs mount")
	src := t.TempDir()
	writeManifest(t, filepath.Join(src, "s.yaml"), secretYAML("app", "a", "1"))
	if err := syscall.Mkfifo(filepath.Join(src, "fifo.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(src, "sock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	big, err := os.Create(filepath.Join(src, "big.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(200 << 20); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	big.Close()

	dir := filepath.Join(t.TempDir(), "m")
	p := startMount(t, dir, "--source", "file:"+src, "--secret", "app")
	if got := readFile(t, filepath.Join(dir, "a")); got != "1" {
		t.Fatalf("a = %q", got)
	}
	// The watcher is not stuck on the FIFO either: an edit shows.
	writeManifest(t, filepath.Join(src, "s.yaml"), secretYAML("app", "a", "2"))
	waitFor(t, "a=2", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "a")); return string(b) == "2" })
	// Touch the big file so the watcher rescans, and it still is not read.
	os.Chtimes(filepath.Join(src, "big.yaml"), time.Now(), time.Now())
	writeManifest(t, filepath.Join(src, "s.yaml"), secretYAML("app", "a", "3"))
	waitFor(t, "a=3", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "a")); return string(b) == "3" })

	hwm := vmHWM(t, p.cmd.Process.Pid)
	t.Logf("secretfs mount VmHWM %d KiB", hwm)
	if hwm > 150<<10 {
		t.Errorf("VmHWM %d KiB, over 150 MiB: a left-out file was read", hwm)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
	stderr := p.stderr.String()
	for _, f := range []string{"fifo.yaml", "sock.yaml", "big.yaml"} {
		if n := strings.Count(stderr, filepath.Join(src, f)); n != 1 {
			t.Errorf("%s named %d times on stderr, want once:\n%s", f, n, stderr)
		}
	}
	if !strings.Contains(stderr, "16777216") {
		t.Errorf("stderr does not name the limit:\n%s", stderr)
	}
}

// vmHWM is the peak resident set of pid in KiB.
func vmHWM(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}
