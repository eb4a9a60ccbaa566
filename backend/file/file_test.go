package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/secret"
)

var ref = backend.Ref{Namespace: "default", Name: "db"}

func manifest(name, password string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\nstringData:\n  password: %q\n", name, password)
}

func write(t testing.TB, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replace writes like kubectl and most editors: a temporary file renamed
// over the old one.
func replace(t testing.TB, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	write(t, dir, ".tmp-"+name, content)
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func newBackend(t testing.TB, dir string) *Backend {
	t.Helper()
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func password(s *secret.Secret) string {
	if s == nil {
		return "<nil>"
	}
	return string(s.Data["password"])
}

func TestGet(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	ctx := context.Background()
	get := func() (*secret.Secret, error) { return b.Get(ctx, ref) }

	if _, err := get(); !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "default/db") {
		t.Fatalf("empty folder: %v", err)
	}
	write(t, dir, "a.yaml", manifest("db", "one")+"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
	write(t, dir, "notes.txt", "not a manifest")
	write(t, dir, ".a.yaml.swp", "garbage: [")
	if s, err := get(); err != nil || password(s) != "one" {
		t.Fatalf("found: %v %v", password(s), err)
	}

	// Another object's problem is not ours.
	write(t, dir, "other.json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"other"},"data":{"k":"!!"}}`)
	if s, err := get(); err != nil || password(s) != "one" {
		t.Fatalf("with invalid neighbour: %v %v", password(s), err)
	}
	var inv *secret.InvalidError
	if _, err := b.Get(ctx, backend.Ref{Namespace: "default", Name: "other"}); !errors.As(err, &inv) {
		t.Fatalf("invalid: %v", err)
	}

	write(t, dir, "b.yml", manifest("db", "two"))
	_, err := get()
	if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "a.yaml") || !strings.Contains(err.Error(), "b.yml") {
		t.Fatalf("duplicate: %v", err)
	}
	os.Remove(filepath.Join(dir, "b.yml"))

	// A broken manifest: an absent Secret is unreachable, not deleted.
	write(t, dir, "broken.yaml", "apiVersion: v1\nkind: Secret\nmetadata: [\n")
	if s, err := get(); err != nil || password(s) != "one" {
		t.Fatalf("found despite broken neighbour: %v", err)
	}
	_, err = b.Get(ctx, backend.Ref{Namespace: "default", Name: "gone"})
	if errors.Is(err, backend.ErrNotFound) || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("broken: %v", err)
	}

	os.RemoveAll(dir)
	if _, err := get(); errors.Is(err, backend.ErrNotFound) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("folder gone: %v", err)
	}
	if _, err := New(filepath.Join(dir, "nope")); err == nil {
		t.Fatal("New of a missing folder succeeded")
	}
}

// watcher collects the events of one Watch.
type watcher struct {
	ch     chan backend.Event
	cancel context.CancelFunc
	done   chan error
}

func watch(t testing.TB, b *Backend, r backend.Ref) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{ch: make(chan backend.Event, 1000), cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- b.Watch(ctx, r, func(ev backend.Event) { w.ch <- ev }) }()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *watcher) stop() {
	w.cancel()
	<-w.done
	w.done <- nil // let a second stop return
}

func (w *watcher) next(t testing.TB) backend.Event {
	t.Helper()
	select {
	case ev := <-w.ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return backend.Event{}
	}
}

func (w *watcher) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-w.ch:
		t.Fatalf("unexpected event: deleted=%v err=%v password=%s", ev.Deleted, ev.Err, password(ev.Secret))
	case <-time.After(d):
	}
}

func expectSecret(t *testing.T, ev backend.Event, want string) {
	t.Helper()
	if ev.Err != nil || ev.Deleted || password(ev.Secret) != want {
		t.Fatalf("want %q, got deleted=%v err=%v password=%s", want, ev.Deleted, ev.Err, password(ev.Secret))
	}
}

func TestWatchEdits(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	w := watch(t, b, ref)
	if ev := w.next(t); !ev.Deleted {
		t.Fatalf("first report: %+v", ev)
	}

	write(t, dir, "db.yaml", manifest("db", "v1"))
	expectSecret(t, w.next(t), "v1")
	write(t, dir, "db.yaml", manifest("db", "v2")) // in place
	expectSecret(t, w.next(t), "v2")
	replace(t, dir, "db.yaml", manifest("db", "v3")) // atomic replace
	expectSecret(t, w.next(t), "v3")

	// Rewriting the same content or touching other Secrets is no change.
	replace(t, dir, "db.yaml", manifest("db", "v3"))
	write(t, dir, "x.yaml", manifest("x", "x"))
	write(t, dir, "bad-neighbour.json", `{"kind":"Secret","metadata":{"name":"y"},"data":{"k":"!!"}}`)
	w.quiet(t, 200*time.Millisecond)

	// Renaming the file that holds it is no change either.
	if err := os.Rename(filepath.Join(dir, "db.yaml"), filepath.Join(dir, "renamed.yml")); err != nil {
		t.Fatal(err)
	}
	w.quiet(t, 200*time.Millisecond)

	// cp over the file: truncate, then write. Never Deleted in between.
	for i := range 20 {
		f, err := os.OpenFile(filepath.Join(dir, "renamed.yml"), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // slower than the debounce
		fmt.Fprint(f, manifest("db", fmt.Sprint("cp", i)))
		f.Close()
		expectSecret(t, w.next(t), fmt.Sprint("cp", i))
	}

	// Half-written: an error that keeps the Secret (not Deleted), then fixed.
	full := manifest("db", "v4")
	write(t, dir, "renamed.yml", full[:len(full)-25])
	if ev := w.next(t); ev.Err == nil || ev.Deleted || !strings.Contains(ev.Err.Error(), "renamed.yml") {
		t.Fatalf("half-written: %+v", ev)
	}
	write(t, dir, "renamed.yml", full)
	expectSecret(t, w.next(t), "v4")

	// Invalid, then valid again.
	write(t, dir, "renamed.yml", strings.Replace(full, "stringData:\n  password", "data:\n  password", 1))
	var inv *secret.InvalidError
	if ev := w.next(t); !errors.As(ev.Err, &inv) {
		t.Fatalf("invalid: %+v", ev)
	}
	write(t, dir, "renamed.yml", full)
	expectSecret(t, w.next(t), "v4")

	// Duplicate across files.
	write(t, dir, "dup.json", manifest("db", "v4"))
	if ev := w.next(t); !errors.Is(ev.Err, ErrDuplicate) {
		t.Fatalf("duplicate: %+v", ev)
	}
	os.Remove(filepath.Join(dir, "dup.json"))
	expectSecret(t, w.next(t), "v4")

	// Deleted for real.
	os.Remove(filepath.Join(dir, "renamed.yml"))
	if ev := w.next(t); !ev.Deleted || ev.Err != nil {
		t.Fatalf("deleted: %+v", ev)
	}
	write(t, dir, "again.yaml", manifest("db", "v5"))
	expectSecret(t, w.next(t), "v5")
}

func TestWatchFolderRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	os.Mkdir(dir, 0o755)
	write(t, dir, "db.yaml", manifest("db", "v1"))
	b := newBackend(t, dir)
	w := watch(t, b, ref)
	expectSecret(t, w.next(t), "v1")

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if ev := w.next(t); ev.Err == nil || ev.Deleted || !errors.Is(ev.Err, ErrUnreachable) {
		t.Fatalf("folder removed: %+v", ev)
	}
	os.Mkdir(dir, 0o755)
	write(t, dir, "db.yaml", manifest("db", "v2"))
	expectSecret(t, w.next(t), "v2")
	// Watched again (not just polled): a later edit arrives too.
	write(t, dir, "db.yaml", manifest("db", "v3"))
	expectSecret(t, w.next(t), "v3")
}

func TestWatchShared(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "db.yaml", manifest("db", "v1")+"---\n"+manifest("other", "o1"))
	b := newBackend(t, dir)
	var ws []*watcher
	for i := range 10 {
		r := ref
		if i%2 == 1 {
			r.Name = "other"
		}
		ws = append(ws, watch(t, b, r))
	}
	for i, w := range ws {
		expectSecret(t, w.next(t), []string{"v1", "o1"}[i%2])
	}
	b.mu.Lock()
	l := b.loop
	b.mu.Unlock()
	write(t, dir, "db.yaml", manifest("db", "v2")+"---\n"+manifest("other", "o1"))
	for i, w := range ws {
		if i%2 == 0 {
			expectSecret(t, w.next(t), "v2")
		}
	}
	for i, w := range ws {
		if i%2 == 1 {
			w.quiet(t, 0)
		}
		w.stop()
	}
	select {
	case <-l.done: // the last watcher gone, the fsnotify watcher is closed
	case <-time.After(5 * time.Second):
		t.Fatal("loop still running")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.loop != nil || len(b.subs) != 0 {
		t.Fatal("watch state left behind")
	}
}

// TestWatchOneEventPerEdit: 200 atomic replaces, each awaited, give
// exactly one callback each, carrying the new value: no edit is lost,
// reported twice, or reported with a stale value, and nothing follows the
// last. The median write→callback time must stay under a second, 20 times
// maxDelay: a generous bound, there to catch an edit that waits for a
// timer (settle, a retry, polling) instead of its inotify event. The
// figures themselves are make bench's (BenchmarkBackendWatch/file).
func TestWatchOneEventPerEdit(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "db.yaml", manifest("db", "start"))
	b := newBackend(t, dir)
	w := watch(t, b, ref)
	expectSecret(t, w.next(t), "start")
	const edits = 200
	lat := make([]time.Duration, 0, edits)
	for i := range edits {
		want := fmt.Sprint("v", i)
		start := time.Now()
		replace(t, dir, "db.yaml", manifest("db", want))
		expectSecret(t, w.next(t), want)
		lat = append(lat, time.Since(start))
	}
	w.quiet(t, 200*time.Millisecond)
	slices.Sort(lat)
	if p50 := lat[len(lat)/2]; p50 > time.Second {
		t.Errorf("median write→callback over %d edits is %v (max %v); the debounce is %v, at most %v under a stream of events",
			edits, p50, lat[len(lat)-1], debounce, maxDelay)
	}
}
