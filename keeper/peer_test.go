package keeper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The peer tests run one end as nobody: this test binary, re-executed
// with KEEPER_TEST_HELPER set, is that end.
func TestMain(m *testing.M) {
	switch h := os.Getenv("KEEPER_TEST_HELPER"); {
	case strings.HasPrefix(h, "serve:"):
		New(slog.New(slog.DiscardHandler)).Serve(context.Background(), strings.TrimPrefix(h, "serve:"))
		os.Exit(1)
	case strings.HasPrefix(h, "dial:"):
		checkPeer = false // to reach the keeper's own check
		_, err := Dial(strings.TrimPrefix(h, "dial:"), KindCSI)
		var refused *RefusedError
		fmt.Println(errors.As(err, &refused), err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const nobody = 65534

// asNobody prepares a folder nobody can use inside t.TempDir() and a copy
// of this test binary there, and returns a command running it as nobody.
func asNobody(t *testing.T, helper string) (*exec.Cmd, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP (needs root: runs the other end as uid 65534)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("running as root but setpriv (util-linux) is missing (%v): this test must not skip as root", err)
	}
	base := t.TempDir()
	dir := filepath.Join(base, "shared")
	for _, d := range []string{filepath.Dir(base), base} {
		os.Chmod(d, 0o755)
	}
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper.test")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	sock := filepath.Join(dir, "keeper.sock")
	cmd := exec.Command("setpriv", fmt.Sprintf("--reuid=%d", nobody), fmt.Sprintf("--regid=%d", nobody), "--clear-groups", bin)
	cmd.Env = append(os.Environ(), "KEEPER_TEST_HELPER="+helper+sock)
	return cmd, sock
}

func TestKeeperOfAnotherUIDRefused(t *testing.T) {
	cmd, sock := asNobody(t, "serve:")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nobody's keeper did not start")
		}
	}
	t0 := time.Now()
	_, err := DialWait(sock, KindCSI, 10*time.Second)
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "the keeper runs as uid 65534, this process as uid 0") {
		t.Fatalf("dialing a keeper of uid %d: %v", nobody, err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("refusal took %v: DialWait must not retry a refusing keeper", d)
	}
}

func TestKeeperRefusesClientOfAnotherUID(t *testing.T) {
	cmd, sock := asNobody(t, "dial:")
	k, err := startKeeperAt(t, sock)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666) // let nobody reach the check itself
	t0 := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as nobody: %v", err)
	}
	want := "true keeper " + sock + ": keeper refused: keeper runs as uid 0 and refuses a client of uid 65534"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("client of uid %d got:\n%s\nwant:\n%s", nobody, got, want)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("refusal took %v", d)
	}
	if k.Held() != 0 {
		t.Error("a refused client registered something")
	}
}

// startKeeperAt serves a keeper on sock, set up by each of opts first.
func startKeeperAt(t *testing.T, sock string, opts ...func(*Keeper)) (*Keeper, error) {
	k := New(slog.New(slog.DiscardHandler))
	for _, o := range opts {
		o(k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Serve(ctx, sock) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return k, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("keeper socket did not appear")
		}
	}
}
