//go:build unix

package file

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/sanity/syncbuf"
	"github.com/secretfs/secretfs/secret"
)

func captureLog(t *testing.T) *syncbuf.Buffer {
	l := &syncbuf.Buffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(l, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return l
}

// getWithin fails the test if Get blocks: a FIFO opened for reading
// blocks until a writer comes, which never happens here.
func getWithin(t *testing.T, b *Backend, r backend.Ref) (*secret.Secret, error) {
	t.Helper()
	type res struct {
		s   *secret.Secret
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := b.Get(context.Background(), r)
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(5 * time.Second):
		t.Fatal("Get hangs")
		return nil, nil
	}
}

// specialFolder makes a folder with the Secret db and, beside it, a FIFO,
// a socket, a link to the FIFO, a character device (root only) and a
// sparse 200 MB file, all named like manifests.
func specialFolder(t *testing.T) (dir string, left []string) {
	dir = t.TempDir()
	write(t, dir, "db.yaml", manifest("db", "one"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "sock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := os.Symlink("fifo.yaml", filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	left = []string{"fifo.yaml", "sock.yaml", "link.yaml", "big.yaml"}
	if os.Geteuid() == 0 {
		// /dev/null's numbers: harmless even if it were opened.
		if err := syscall.Mknod(filepath.Join(dir, "dev.yaml"), syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
			t.Fatal(err)
		}
		left = append(left, "dev.yaml")
	} else {
		t.Log("SKIP (needs root: mknod) the character device case")
	}
	big, err := os.Create(filepath.Join(dir, "big.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	if err := big.Truncate(200 << 20); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	return dir, left
}

func TestSpecialFilesLeftOut(t *testing.T) {
	logs := captureLog(t)
	dir, left := specialFolder(t)
	b := newBackend(t, dir)
	for range 3 {
		if s, err := getWithin(t, b, ref); err != nil || password(s) != "one" {
			t.Fatalf("Get beside special files: %v %v", password(s), err)
		}
	}
	_, err := getWithin(t, b, backend.Ref{Namespace: "default", Name: "absent"})
	if !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("absent: %v, want not found (left-out files are not broken ones)", err)
	}
	for _, want := range []string{"big.yaml", "209715200 bytes", "16777216", "fifo.yaml", "a FIFO"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("not-found error %q does not name %q", err, want)
		}
	}
	out := logs.String()
	for _, f := range left {
		if n := strings.Count(out, filepath.Join(dir, f)); n != 1 {
			t.Errorf("%s named %d times in the log, want once:\n%s", f, n, out)
		}
	}
	if !strings.Contains(out, "16777216") {
		t.Errorf("log does not name the limit:\n%s", out)
	}
}

func TestWatchBesideFIFO(t *testing.T) {
	captureLog(t)
	dir, _ := specialFolder(t)
	b := newBackend(t, dir)
	w := watch(t, b, ref)
	expectSecret(t, w.next(t), "one")
	replace(t, dir, "db.yaml", manifest("db", "two"))
	expectSecret(t, w.next(t), "two")
	// The FIFO becoming a regular manifest is read at the next scan.
	os.Remove(filepath.Join(dir, "link.yaml"))
	os.Remove(filepath.Join(dir, "fifo.yaml"))
	write(t, dir, "fifo.yaml", manifest("other", "o"))
	if s, err := getWithin(t, b, backend.Ref{Namespace: "default", Name: "other"}); err != nil || password(s) != "o" {
		t.Fatalf("former FIFO: %v %v", password(s), err)
	}
}

func TestManifestSizeLimit(t *testing.T) {
	logs := captureLog(t)
	dir := t.TempDir()
	padded := func(size int) string {
		m := manifest("db", "one")
		pad := size - len(m)
		line := "#" + strings.Repeat("x", 1022) + "\n"
		var sb strings.Builder
		sb.WriteString(m)
		for pad >= len(line) {
			sb.WriteString(line)
			pad -= len(line)
		}
		if pad > 0 {
			sb.WriteString("#" + strings.Repeat("x", pad-1))
		}
		return sb.String()
	}
	write(t, dir, "db.yaml", padded(MaxManifestSize))
	b := newBackend(t, dir)
	if s, err := getWithin(t, b, ref); err != nil || password(s) != "one" {
		t.Fatalf("at the limit: %v %v", password(s), err)
	}
	write(t, dir, "db.yaml", padded(MaxManifestSize+1))
	_, err := getWithin(t, b, ref)
	if !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "16777217 bytes") || !strings.Contains(err.Error(), "16777216") {
		t.Fatalf("over the limit: %v", err)
	}
	if !strings.Contains(logs.String(), "db.yaml") {
		t.Errorf("no warning naming the file:\n%s", logs)
	}
}

func TestSymlinkedManifest(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	write(t, other, "real.yaml", manifest("db", "linked"))
	if err := os.Symlink(filepath.Join(other, "real.yaml"), filepath.Join(dir, "db.yaml")); err != nil {
		t.Fatal(err)
	}
	if s, err := getWithin(t, newBackend(t, dir), ref); err != nil || password(s) != "linked" {
		t.Fatalf("symlinked manifest: %v %v", password(s), err)
	}
}
