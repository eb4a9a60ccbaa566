package mounted_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/mounted"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/sanity/needroot"
	"github.com/secretfs/secretfs/secret"
)

// reports records what a volume tells its mounted.Reporter, in order;
// package events turns the same calls into Pod events.
type reports struct {
	mu  sync.Mutex
	got []error // nil: Followed
}

func (r *reports) Failed(err error) { r.mu.Lock(); r.got = append(r.got, err); r.mu.Unlock() }
func (r *reports) Followed()        { r.mu.Lock(); r.got = append(r.got, nil); r.mu.Unlock() }

func (r *reports) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.got...)
}

// last is the latest report: "none", "followed" or the error's category
// (metrics.Result's words).
func (r *reports) last() string {
	got := r.all()
	if len(got) == 0 {
		return "none"
	}
	var invalid *secret.InvalidError
	var missing *projection.NotFoundError
	var conflict *projection.ConflictError
	switch err := got[len(got)-1]; {
	case err == nil:
		return "followed"
	case errors.As(err, &conflict):
		return "conflict"
	case errors.As(err, &missing):
		return "notfound"
	case errors.As(err, &invalid):
		return "invalid"
	case errors.Is(err, file.ErrUnreachable):
		return "unreachable"
	default:
		return "other: " + err.Error()
	}
}

// TestReportsEachRefresh: a mounted volume of a file source tells its
// Reporter of every failed refresh (invalid Secret, Secret deleted,
// source unreadable), each while the last good version stays, and of the
// good ones that follow; a republish's Refresh reports each time.
func TestReportsEachRefresh(t *testing.T) {
	needroot.FUSE(t, "volumes mount FUSE")
	src := t.TempDir()
	put := func(body string) {
		t.Helper()
		tmp := filepath.Join(src, ".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(src, "db.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	valid := func(v string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: app}\nstringData: {k: " + v + "}\n"
	}
	put(valid("v1"))
	b, err := file.New(src)
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(b, cache.Options{})
	t.Cleanup(c.Close)
	var rep, getRep reports
	mount := func(st cache.Strategy, r *reports) (*mounted.Volume, string) {
		dir := filepath.Join(t.TempDir(), "m")
		os.Mkdir(dir, 0o755)
		v, err := mounted.Mount(context.Background(), c, dir, mounted.Config{Spec: projection.Spec{Namespace: "app", SecretName: "db"}, Strategy: st, Report: r})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Unmount(); <-v.Done() })
		return v, dir
	}
	_, dir := mount(cache.StrategyWatch, &rep)
	getVol, _ := mount(cache.StrategyGet, &getRep)
	if got := rep.all(); len(got) != 0 {
		t.Fatalf("reports before any change: %v", got)
	}
	step := func(body, want, shows string) {
		t.Helper()
		if body == "" {
			os.Remove(filepath.Join(src, "db.yaml"))
		} else {
			put(body)
		}
		eventually(t, want, func() bool { return rep.last() == want })
		if got := content(dir, "k"); got != shows {
			t.Errorf("after %s the volume shows %q, want %q", want, got, shows)
		}
	}
	step("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: app}\ndata: {k: \"*\"}\n", "invalid", "v1")
	step(valid("v2"), "followed", "v2")
	step("", "notfound", "v2")
	step("apiVersion: v1\nkind: Secret\nmetadata: [\n", "unreachable", "v2")
	step(valid("v3"), "followed", "v3")

	os.Remove(filepath.Join(src, "db.yaml"))
	eventually(t, "the deletion", func() bool { return rep.last() == "notfound" })
	before := len(getRep.all())
	for range 2 {
		if err := getVol.Refresh(context.Background()); err == nil {
			t.Error("Refresh of a deleted Secret: no error")
		}
	}
	got := getRep.all()[before:]
	var missing *projection.NotFoundError
	if n := len(got); n < 2 || !errors.As(got[n-1], &missing) || !errors.As(got[n-2], &missing) {
		t.Errorf("two failed Refreshes reported %v, want NotFound twice", got)
	}
}
