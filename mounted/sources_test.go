package mounted_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/sanity/needroot"
	"github.com/secretfs/secretfs/sanity/syncbuf"
)

// These tests mount volumes of several sources (Config.Sources) for real
// (FUSE, as root) from a file source: both Secrets live in one manifest,
// rewritten whole (rename), so "changed together" means one write.

type srcEnv struct {
	dir   string
	cache *cache.Cache
	log   *syncbuf.Buffer
	rep   reports // what every volume of the env reports
}

func newSrcEnv(t *testing.T) *srcEnv {
	t.Helper()
	needroot.FUSE(t, "volumes of several sources mount FUSE")
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(b, cache.Options{})
	t.Cleanup(c.Close)
	return &srcEnv{dir: dir, cache: c, log: &syncbuf.Buffer{}}
}

// write replaces the manifest with these Secrets (name → key=value ...),
// in one rename.
func (e *srcEnv) write(t *testing.T, secrets map[string][]string) {
	t.Helper()
	var b strings.Builder
	for name, kvs := range secrets {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: default}\nstringData:\n", name)
		for _, kv := range kvs {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&b, "  %q: %q\n", k, v)
		}
	}
	tmp := filepath.Join(e.dir, ".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, "secrets.yaml")); err != nil {
		t.Fatal(err)
	}
}

func (e *srcEnv) mount(t *testing.T, srcs ...mounted.Source) (*mounted.Volume, string, error) {
	return e.mountCfg(t, mounted.Config{Sources: srcs})
}

// mountCfg mounts a volume made with cfg, logging and reporting to e.
func (e *srcEnv) mountCfg(t *testing.T, cfg mounted.Config) (*mounted.Volume, string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m")
	os.Mkdir(dir, 0o755)
	cfg.Logger, cfg.Report = slog.New(slog.NewTextHandler(e.log, nil)), &e.rep
	v, err := mounted.Mount(context.Background(), e.cache, dir, cfg)
	if err == nil {
		t.Cleanup(func() { v.Unmount(); <-v.Done() })
	}
	return v, dir, err
}

func src(name string, optional bool, items ...projection.Item) mounted.Source {
	return mounted.Source{Spec: projection.Spec{Namespace: "default", SecretName: name, Optional: optional, Items: items}}
}

// logged is the volumes' log so far, quotes unescaped.
func (e *srcEnv) logged() string { return strings.ReplaceAll(e.log.String(), `\"`, `"`) }

// switches is how many times the volumes of e switched so far.
func (e *srcEnv) switches() int { return strings.Count(e.log.String(), `msg="volume updated"`) }

// A volume of two Secrets shows both; a change of either is one switch of
// the whole volume; both changed in one write are one switch, and a
// reader never sees a certificate with the other version's key.
func TestSourcesSwitch(t *testing.T) {
	e := newSrcEnv(t)
	e.write(t, map[string][]string{"db": {"password=pw1"}, "tls": {"tls.crt=crt1", "tls.key=key1"}})
	_, dir, err := e.mount(t, src("db", false), src("tls", false))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"password": "pw1", "tls.crt": "crt1", "tls.key": "key1"} {
		if got := content(dir, name); got != want {
			t.Fatalf("%s = %q, want %q", name, got, want)
		}
	}
	e.write(t, map[string][]string{"db": {"password=pw2"}, "tls": {"tls.crt=crt1", "tls.key=key1"}})
	eventually(t, "db's change", func() bool { return content(dir, "password") == "pw2" })
	e.write(t, map[string][]string{"db": {"password=pw2"}, "tls": {"tls.crt=crt2", "tls.key=key2"}})
	eventually(t, "tls's change", func() bool { return content(dir, "tls.key") == "key2" })
	if n := e.switches(); n != 2 {
		t.Errorf("%d switches for two changes, want 2", n)
	}

	// A reader checks every pair it reads through one version folder.
	var mixed atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ver, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				continue
			}
			crt, key := content(filepath.Join(dir, ver), "tls.crt"), content(filepath.Join(dir, ver), "tls.key")
			if strings.HasPrefix(crt, "<") || strings.HasPrefix(key, "<") {
				continue // the version retired meanwhile
			}
			if strings.TrimPrefix(crt, "crt") != strings.TrimPrefix(key, "key") {
				mixed.Store(crt + "/" + key)
			}
		}
	}()
	before := e.switches()
	t0 := time.Now()
	e.write(t, map[string][]string{"db": {"password=pw3"}, "tls": {"tls.crt=crt3", "tls.key=key3"}})
	eventually(t, "both changes", func() bool {
		return content(dir, "password") == "pw3" && content(dir, "tls.crt") == "crt3" && content(dir, "tls.key") == "key3"
	})
	t.Logf("both changes visible %v after the write (the window is %v)", time.Since(t0).Round(time.Millisecond), mounted.DefaultWindow)
	close(stop)
	wg.Wait()
	if n := e.switches() - before; n != 1 {
		t.Errorf("two sources changed together made %d switches, want 1", n)
	}
	if m := mixed.Load(); m != nil {
		t.Errorf("a reader saw %v", m)
	}
}

// A conflict refuses the mount, naming both Secrets and the path; at an
// update it keeps the last good version (reported), and the volume
// follows again once the conflict is gone.
func TestSourcesConflict(t *testing.T) {
	e := newSrcEnv(t)
	e.write(t, map[string][]string{"a": {"x=1"}, "b": {"x=2"}})
	_, _, err := e.mount(t, src("a", false), src("b", false))
	var ce *projection.ConflictError
	if !errors.As(err, &ce) || err.Error() != `sources conflict at path "x": secret "default/a" and secret "default/b" both give it` {
		t.Fatalf("got %v, want a conflict at x", err)
	}
	// Items set the paths apart.
	_, dir, err := e.mount(t, src("a", false), src("b", false, projection.Item{Key: "x", Path: "b/x"}))
	if err != nil {
		t.Fatal(err)
	}
	if content(dir, "x") != "1" || content(dir, "b/x") != "2" {
		t.Fatalf("got x=%s b/x=%s", content(dir, "x"), content(dir, "b/x"))
	}
	// a gains a file "b": a file where b needs a folder.
	before := e.switches()
	e.write(t, map[string][]string{"a": {"x=1", "b=3"}, "b": {"x=2"}})
	eventually(t, "the conflict reported", func() bool {
		return strings.Contains(e.logged(), `sources conflict at path "b": secret "default/a" and secret "default/b" give a file and a folder there`)
	})
	if content(dir, "x") != "1" || content(dir, "b/x") != "2" || e.switches() != before {
		t.Errorf("a conflicting update switched the volume")
	}
	if strings.Contains(e.log.String(), `=3`) {
		t.Errorf("a value in the log: %s", e.log.String())
	}
	if got := e.rep.last(); got != "conflict" {
		t.Errorf("the conflict reported as %s", got)
	}
	// a drops the clash and changes x: the volume follows again.
	e.write(t, map[string][]string{"a": {"x=4"}, "b": {"x=2"}})
	eventually(t, "the update after the conflict", func() bool { return content(dir, "x") == "4" })
	eventually(t, "the recovery reported", func() bool { return e.rep.last() == "followed" })
}

// A missing non-optional source refuses the mount naming it; a missing
// optional one shows nothing until it appears, and goes when deleted;
// an invalid one refuses the mount.
func TestSourcesMissingAndOptional(t *testing.T) {
	e := newSrcEnv(t)
	e.write(t, map[string][]string{"a": {"x=1"}})
	_, _, err := e.mount(t, src("a", false), src("gone", false))
	var nf *projection.NotFoundError
	if !errors.As(err, &nf) || err.Error() != `secret "default/gone" not found` {
		t.Fatalf("got %v, want NotFound naming default/gone", err)
	}
	_, dir, err := e.mount(t, src("a", false), src("later", true))
	if err != nil {
		t.Fatal(err)
	}
	if content(dir, "x") != "1" || len(names(t, dir)) != 1 {
		t.Fatalf("got %v", names(t, dir))
	}
	e.write(t, map[string][]string{"a": {"x=1"}, "later": {"y=2"}})
	eventually(t, "the optional source appearing", func() bool { return content(dir, "y") == "2" })
	e.write(t, map[string][]string{"a": {"x=1"}})
	eventually(t, "the optional source going", func() bool { return len(names(t, dir)) == 1 })
	// a deleted: a non-optional source keeps its last good files.
	e.write(t, map[string][]string{"later": {"y=5"}})
	eventually(t, "later's change", func() bool { return content(dir, "y") == "5" })
	eventually(t, "the missing source reported", func() bool { return strings.Contains(e.logged(), `secret "default/a" not found`) })
	if content(dir, "x") != "1" {
		t.Errorf("a deleted non-optional source lost its files")
	}
}

// names lists the volume's top-level names, hidden entries aside.
func names(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), "..") {
			out = append(out, de.Name())
		}
	}
	return out
}

// With the Get strategy nothing changes until Refresh, which re-reads
// every source and switches once for all of them.
func TestSourcesRefreshGet(t *testing.T) {
	e := newSrcEnv(t)
	e.write(t, map[string][]string{"a": {"x=1"}, "b": {"z=1"}})
	v, dir, err := e.mountCfg(t, mounted.Config{Sources: []mounted.Source{src("a", false), src("b", false)},
		Strategy: cache.StrategyGet})
	if err != nil {
		t.Fatal(err)
	}
	e.write(t, map[string][]string{"a": {"x=2"}, "b": {"z=2"}})
	if content(dir, "x") != "1" || content(dir, "z") != "1" {
		t.Fatalf("a Get volume changed before a refresh")
	}
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if content(dir, "x") != "2" || content(dir, "z") != "2" || e.switches() != 1 {
		t.Errorf("after Refresh: x=%s z=%s, %d switches; want 2, 2, 1", content(dir, "x"), content(dir, "z"), e.switches())
	}
	// A refresh that finds a conflict keeps the last good version and
	// says so.
	e.write(t, map[string][]string{"a": {"x=3"}, "b": {"z=3", "x=3"}})
	var ce *projection.ConflictError
	if err := v.Refresh(context.Background()); !errors.As(err, &ce) {
		t.Errorf("refresh into a conflict: %v", err)
	}
	if content(dir, "x") != "2" || e.switches() != 1 {
		t.Errorf("a conflicting refresh switched")
	}
}

// With subPathUpdates a volume of several sources has real top-level
// files whose inode stays while either source changes them.
func TestSourcesSubPathUpdates(t *testing.T) {
	e := newSrcEnv(t)
	e.write(t, map[string][]string{"a": {"x=1"}, "b": {"z=1"}})
	_, dir, err := e.mountCfg(t, mounted.Config{Sources: []mounted.Source{src("a", false), src("b", false)},
		FS: fusefs.Options{SubPathUpdates: true}})
	if err != nil {
		t.Fatal(err)
	}
	ino := func(name string) uint64 {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s: %v, %v; want a regular file", name, fi, err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	x, z := ino("x"), ino("z")
	e.write(t, map[string][]string{"a": {"x=2"}, "b": {"z=2"}})
	eventually(t, "both sources' update", func() bool { return content(dir, "x") == "2" && content(dir, "z") == "2" })
	if ino("x") != x || ino("z") != z {
		t.Errorf("the inodes changed with the update")
	}
}
