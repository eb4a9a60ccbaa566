package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/backend/file"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/secret"
)

var ctx = context.Background()

// own is the backend's own identity (no pod tokens).
var own backend.Identity

func ref(name string) backend.Ref { return backend.Ref{Namespace: "default", Name: name} }

func manifest(name, password string, immutable bool) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\nimmutable: %v\nstringData:\n  password: %q\n",
		name, immutable, password)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func password(s *secret.Secret) string {
	if s == nil {
		return "<nil>"
	}
	return string(s.Data["password"])
}

// counting wraps a real backend to count what the cache asks of it.
type counting struct {
	backend.Backend
	gets, watches, open atomic.Int32
	gate                chan struct{} // if set, Get waits for it
}

func (c *counting) Get(ctx context.Context, r backend.Ref) (*secret.Secret, error) {
	c.gets.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return c.Backend.Get(ctx, r)
}

func (c *counting) Watch(ctx context.Context, r backend.Ref, fn func(backend.Event)) error {
	c.watches.Add(1)
	c.open.Add(1)
	defer c.open.Add(-1)
	return c.Backend.Watch(ctx, r, fn)
}

func fileBackend(t *testing.T) (string, *counting) {
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, &counting{Backend: b}
}

func newCache(t *testing.T, b backend.Backend, opts Options) *Cache {
	c := New(b, opts)
	t.Cleanup(c.Close)
	return c
}

// eventually polls cond; the cache works in the background.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// recorder collects onChange calls.
type recorder struct {
	mu  sync.Mutex
	got []State
}

func (r *recorder) onChange(s State) { r.mu.Lock(); r.got = append(r.got, s); r.mu.Unlock() }

func (r *recorder) states() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]State(nil), r.got...)
}

func (r *recorder) last() string {
	if s := r.states(); len(s) > 0 {
		return password(s[len(s)-1].Secret)
	}
	return ""
}

func TestParseStrategy(t *testing.T) {
	for in, want := range map[string]Strategy{"": StrategyWatch, "Watch": StrategyWatch, "cache": StrategyCache, "GET": StrategyGet} {
		if got, err := ParseStrategy(in); err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseStrategy("Poll"); err == nil || !strings.Contains(err.Error(), `"Poll"`) {
		t.Errorf("ParseStrategy(Poll): %v", err)
	}
}

func TestSharedWatch(t *testing.T) {
	dir, b := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "v1", false))
	c := newCache(t, b, Options{})

	const n = 100
	recs := make([]*recorder, n)
	subs := make([]*Subscription, n)
	var wg sync.WaitGroup
	for i := range n {
		recs[i] = &recorder{}
		wg.Go(func() {
			var st State
			subs[i], st = c.Subscribe(ctx, ref("db"), own, StrategyWatch, 0, recs[i].onChange)
			if password(st.Secret) != "v1" || st.Err != nil || st.Missing {
				t.Errorf("first state: %+v", st)
			}
		})
	}
	wg.Wait()
	eventually(t, "the watch", func() bool { return b.open.Load() == 1 })

	write(t, dir, "db.yaml", manifest("db", "v2", false))
	for i := range n {
		eventually(t, "update", func() bool { return recs[i].last() == "v2" })
	}
	// The same content again, and an unrelated Secret: no calls.
	write(t, dir, "db.yaml", manifest("db", "v2", false))
	write(t, dir, "other.yaml", manifest("other", "x", false))
	time.Sleep(100 * time.Millisecond)
	for i := range n {
		if got := len(recs[i].states()); got != 1 {
			t.Fatalf("subscriber %d: %d calls, want 1", i, got)
		}
	}
	if g, w := b.gets.Load(), b.watches.Load(); g != 1 || w != 1 {
		t.Fatalf("backend: %d gets, %d watches; want 1 and 1", g, w)
	}
	for _, s := range subs {
		s.Close()
	}
	c.Close()
	eventually(t, "the watch to stop", func() bool { return b.open.Load() == 0 })
}

func TestSingleFlightFirstRead(t *testing.T) {
	for _, st := range []Strategy{StrategyWatch, StrategyGet, StrategyCache} {
		t.Run(string(st), func(t *testing.T) {
			dir, b := fileBackend(t)
			write(t, dir, "db.yaml", manifest("db", "v1", false))
			b.gate = make(chan struct{})
			c := newCache(t, b, Options{})
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() {
					s, state := c.Subscribe(ctx, ref("db"), own, st, time.Hour, nil)
					defer s.Close()
					if password(state.Secret) != "v1" {
						t.Errorf("state %+v", state)
					}
				})
			}
			eventually(t, "the first Get", func() bool { return b.gets.Load() == 1 })
			time.Sleep(50 * time.Millisecond) // let every Subscribe arrive
			close(b.gate)
			wg.Wait()
			// Get subscribers joining an existing entry read again (each
			// publish sees fresh data); the first read was still one.
			if st != StrategyGet && b.gets.Load() != 1 {
				t.Fatalf("%d backend Gets, want 1", b.gets.Load())
			}
		})
	}
}

func TestChangesInOrder(t *testing.T) {
	dir, b := fileBackend(t)
	c := newCache(t, b, Options{})
	var rec recorder
	s, st := c.Subscribe(ctx, ref("db"), own, StrategyWatch, 0, rec.onChange)
	defer s.Close()
	if !st.Missing || st.Secret != nil {
		t.Fatalf("missing Secret: %+v", st)
	}
	for i := range 30 {
		write(t, dir, "db.yaml", manifest("db", fmt.Sprint(i), false))
		time.Sleep(time.Millisecond)
	}
	eventually(t, "last version", func() bool { return rec.last() == "29" })
	prev := -1
	for _, st := range rec.states() {
		var v int
		fmt.Sscan(password(st.Secret), &v)
		if v <= prev {
			t.Fatalf("out of order or repeated: %d after %d", v, prev)
		}
		prev = v
	}
	os.Remove(filepath.Join(dir, "db.yaml"))
	eventually(t, "deletion", func() bool { l := rec.states(); return l[len(l)-1].Missing })
	if st := s.State(); st.Secret != nil || !st.Missing {
		t.Fatalf("after delete: %+v", st)
	}
}

func TestImmutableNeverReread(t *testing.T) {
	dir, b := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "v1", true))
	c := newCache(t, b, Options{})
	var rec recorder
	for _, st := range []Strategy{StrategyWatch, StrategyGet, StrategyCache} {
		s, state := c.Subscribe(ctx, ref("db"), own, st, time.Nanosecond, rec.onChange)
		defer s.Close()
		if password(state.Secret) != "v1" {
			t.Fatalf("%s: %+v", st, state)
		}
	}
	write(t, dir, "db.yaml", manifest("db", "v2", true))
	time.Sleep(50 * time.Millisecond)
	for range 5 {
		for _, st := range []Strategy{StrategyGet, StrategyCache} {
			s, _ := c.Subscribe(ctx, ref("db"), own, st, time.Nanosecond, nil)
			if got := s.Refresh(ctx); password(got.Secret) != "v1" {
				t.Fatalf("refresh re-read: %+v", got)
			}
			s.Close()
		}
	}
	// One Get per family, and no watch at all.
	if g, w := b.gets.Load(), b.watches.Load(); g != 2 || w != 0 {
		t.Fatalf("backend: %d gets, %d watches; want 2 and 0", g, w)
	}
	if n := len(rec.states()); n != 0 {
		t.Fatalf("%d onChange calls", n)
	}
}

func TestGetStrategy(t *testing.T) {
	dir, b := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "v1", false))
	c := newCache(t, b, Options{})
	var rec recorder
	s, _ := c.Subscribe(ctx, ref("db"), own, StrategyGet, 0, rec.onChange)
	defer s.Close()
	for i := 2; i <= 6; i++ {
		if i%2 == 0 {
			write(t, dir, "db.yaml", manifest("db", fmt.Sprint("v", i), false))
		}
		want := fmt.Sprint("v", i-i%2)
		if got := s.Refresh(ctx); password(got.Secret) != want {
			t.Fatalf("refresh %d: %s, want %s", i, password(got.Secret), want)
		}
	}
	time.Sleep(20 * time.Millisecond) // no background reads
	if g, w := b.gets.Load(), b.watches.Load(); g != 6 || w != 0 {
		t.Fatalf("backend: %d gets, %d watches; want 6 and 0", g, w)
	}
	eventually(t, "3 changes", func() bool { return len(rec.states()) == 3 })
}

func TestCacheStrategy(t *testing.T) {
	dir, b := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "v1", false))
	c := newCache(t, b, Options{})
	const ttl = 200 * time.Millisecond
	s, _ := c.Subscribe(ctx, ref("db"), own, StrategyCache, ttl, nil)
	defer s.Close()
	write(t, dir, "db.yaml", manifest("db", "v2", false))
	for range 10 {
		if got := s.Refresh(ctx); password(got.Secret) != "v1" {
			t.Fatalf("re-read before the TTL: %s", password(got.Secret))
		}
	}
	if g := b.gets.Load(); g != 1 {
		t.Fatalf("%d gets before the TTL", g)
	}
	time.Sleep(ttl)
	if got := s.Refresh(ctx); password(got.Secret) != "v2" {
		t.Fatalf("after the TTL: %s", password(got.Secret))
	}
	if got := s.Refresh(ctx); password(got.Secret) != "v2" || b.gets.Load() != 2 {
		t.Fatalf("gets %d", b.gets.Load())
	}
}

// TestIdleFreed: an entry without subscribers stays (and keeps its
// watch) for the idle time, is revived without a read, and is then freed:
// its watch stops, the live-entries gauge drops.
func TestIdleFreed(t *testing.T) {
	dir, b := fileBackend(t)
	write(t, dir, "a.yaml", manifest("a", "a", false))
	write(t, dir, "b.yaml", manifest("b", "b", false))
	const idle = 300 * time.Millisecond
	c := newCache(t, b, Options{Idle: idle})
	entries := func() float64 { return testutil.ToFloat64(metrics.CacheEntries) }
	before := entries()

	sa, _ := c.Subscribe(ctx, ref("a"), own, StrategyWatch, 0, nil)
	sa.Close() // idle, still watched
	eventually(t, "a's watch", func() bool { return b.open.Load() == 1 })
	sa, st := c.Subscribe(ctx, ref("a"), own, StrategyWatch, 0, nil) // a hit
	if password(st.Secret) != "a" || b.gets.Load() != 1 || b.watches.Load() != 1 {
		t.Fatalf("revive: %+v gets=%d watches=%d", st, b.gets.Load(), b.watches.Load())
	}
	sb, _ := c.Subscribe(ctx, ref("b"), own, StrategyWatch, 0, nil)
	eventually(t, "b's watch", func() bool { return b.open.Load() == 2 })
	if n := entries() - before; n != 2 {
		t.Fatalf("%v live entries, want 2", n)
	}
	sb.Close()
	time.Sleep(idle / 2)
	if b.open.Load() != 2 || entries()-before != 2 {
		t.Fatal("b freed before its idle time")
	}
	eventually(t, "b's watch to stop", func() bool { return b.open.Load() == 1 })
	if n := entries() - before; n != 1 {
		t.Fatalf("%v live entries after b was freed, want 1", n)
	}
	// a kept its subscriber all along; b comes back with a new read.
	time.Sleep(idle)
	if b.open.Load() != 1 {
		t.Fatal("a's watch stopped while subscribed")
	}
	sb, st = c.Subscribe(ctx, ref("b"), own, StrategyWatch, 0, nil)
	if password(st.Secret) != "b" || b.gets.Load() != 3 {
		t.Fatalf("b after free: %+v, %d gets; want a new read (3)", st, b.gets.Load())
	}
	sa.Close()
	sb.Close()
	eventually(t, "every watch to stop", func() bool { return b.open.Load() == 0 })
	eventually(t, "the gauge to drop", func() bool { return entries() == before })
}

// TestWipeOnlyOwned: a freed entry wipes its Secret's bytes only when the
// backend handed them to the cache alone. The file source shares one
// parsed Secret between its readers: its bytes must stay.
func TestWipeOnlyOwned(t *testing.T) {
	for _, owned := range []bool{false, true} {
		t.Run(fmt.Sprint("owned=", owned), func(t *testing.T) {
			dir, fb := fileBackend(t)
			write(t, dir, "a.yaml", manifest("a", "secret-bytes", false))
			var b backend.Backend = fb
			if owned {
				b = &owning{fb}
			}
			c := newCache(t, b, Options{Idle: -1})
			s, st := c.Subscribe(ctx, ref("a"), own, StrategyGet, 0, nil)
			if password(st.Secret) != "secret-bytes" {
				t.Fatalf("state %+v", st)
			}
			data := st.Secret.Data["password"]
			s.Close() // Idle < 0: freed at once
			want := "secret-bytes"
			if owned {
				want = string(make([]byte, len(want)))
			}
			if string(data) != want {
				t.Fatalf("after free the bytes read %q, want %q", data, want)
			}
			if !owned {
				again, err := fb.Get(ctx, ref("a"))
				if err != nil || password(again) != "secret-bytes" {
					t.Fatalf("the file source's Secret was damaged: %v %q", err, password(again))
				}
			}
		})
	}
}

// owning is a backend that gives each caller its own copy (as the kube
// backend does), so the cache owns what it gets.
type owning struct{ *counting }

func (o *owning) CallerOwnsSecrets() bool { return true }

func (o *owning) Get(ctx context.Context, r backend.Ref) (*secret.Secret, error) {
	s, err := o.counting.Get(ctx, r)
	if s != nil {
		cp := *s
		cp.Data = map[string][]byte{}
		for k, v := range s.Data {
			cp.Data[k] = slices.Clone(v)
		}
		s = &cp
	}
	return s, err
}

func TestStaleWhileError(t *testing.T) {
	dir, b := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "v1", false))
	c := newCache(t, b, Options{})
	var rec recorder
	s, _ := c.Subscribe(ctx, ref("db"), own, StrategyWatch, 0, rec.onChange)
	defer s.Close()

	write(t, dir, "db.yaml", "apiVersion: v1\nkind: Secret\nmetadata: [\n")
	eventually(t, "the error", func() bool { return s.State().Err != nil })
	if st := s.State(); password(st.Secret) != "v1" || st.Missing || !errors.Is(st.Err, file.ErrUnreachable) {
		t.Fatalf("broken file: %+v", st)
	}
	write(t, dir, "db.yaml", manifest("db", "v1", false))
	eventually(t, "recovery", func() bool { return s.State().Err == nil })
	write(t, dir, "db.yaml", manifest("db", "v2", false))
	eventually(t, "v2", func() bool { return rec.last() == "v2" })
	// Subscribers hear of the error once (not at each retry), of the
	// recovery once, and of the change: their volumes report all three.
	got := rec.states()
	if len(got) != 3 {
		t.Fatalf("%d onChange calls, want 3 (the error, the recovery, v2): %+v", len(got), got)
	}
	if st := got[0]; st.Err == nil || password(st.Secret) != "v1" {
		t.Errorf("first onChange %+v: want the error with the last good v1", st)
	}
	if st := got[1]; st.Err != nil || password(st.Secret) != "v1" || !st.Changed.Equal(got[0].Changed) {
		t.Errorf("second onChange %+v: want the recovery, v1, Changed as before", st)
	}
	if st := got[2]; st.Err != nil || !st.Changed.After(got[1].Changed) {
		t.Errorf("third onChange %+v: want v2 with a new Changed", st)
	}
}

// flaky is an in-test backend: Get succeeds once then fails; Watch fails
// (or cannot watch at all).
type flaky struct {
	gets, watches atomic.Int32
	noWatch       bool
}

func (f *flaky) Get(context.Context, backend.Ref) (*secret.Secret, error) {
	if f.gets.Add(1) == 1 {
		return &secret.Secret{Namespace: "default", Name: "db", Data: map[string][]byte{"password": []byte("v1")}}, nil
	}
	return nil, errors.New("connection refused")
}

func (f *flaky) Watch(context.Context, backend.Ref, func(backend.Event)) error {
	f.watches.Add(1)
	if f.noWatch {
		return backend.ErrNoWatch
	}
	return errors.New("connection refused")
}

// failing is an in-test backend whose every Get fails with err.
type failing struct{ err error }

func (f failing) Get(context.Context, backend.Ref) (*secret.Secret, error) { return nil, f.err }
func (f failing) Watch(context.Context, backend.Ref, func(backend.Event)) error {
	return backend.ErrNoWatch
}

// TestReadResultsCounted: every backend read is counted under
// metrics.Result's label, and a failed one also as a refresh error under
// the same label (a missing Secret is no error: it is reported missing).
func TestReadResultsCounted(t *testing.T) {
	for _, c := range []struct {
		err         error
		result      string
		refreshErrs float64
	}{
		{fmt.Errorf("get: %w", backend.ErrNotFound), "notfound", 0},
		{&secret.InvalidError{Object: "default/db", Reason: "bad"}, "invalid", 1},
		{fmt.Errorf("get: %w", backend.ErrForbidden), "forbidden", 1},
		{errors.New("connection refused"), "unavailable", 1},
	} {
		reads := func() float64 { return testutil.ToFloat64(metrics.BackendReads.WithLabelValues(c.result)) }
		refreshErrs := func() float64 { return testutil.ToFloat64(metrics.RefreshErrors.WithLabelValues(c.result)) }
		r0, e0 := reads(), refreshErrs()
		cc := newCache(t, failing{c.err}, Options{Logger: slog.New(slog.DiscardHandler)})
		s, _ := cc.Subscribe(ctx, ref("db"), own, StrategyGet, 0, func(State) {})
		s.Close()
		if d := reads() - r0; d != 1 {
			t.Errorf("%v: backend reads{result=%q} grew by %v, want 1", c.err, c.result, d)
		}
		if d := refreshErrs() - e0; d != c.refreshErrs {
			t.Errorf("%v: refresh errors{reason=%q} grew by %v, want %v", c.err, c.result, d, c.refreshErrs)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Run("watch", func(t *testing.T) {
		f := &flaky{}
		before := testutil.ToFloat64(metrics.Retries.WithLabelValues("watch"))
		c := newCache(t, f, Options{}) // first retry after ~100ms, doubling
		s, _ := c.Subscribe(ctx, ref("db"), own, StrategyWatch, 0, nil)
		defer s.Close()
		time.Sleep(time.Second)
		// Without backoff this would be thousands; with it: 0, .1–.15,
		// .3–.45, .7–1.05 s.
		if n := f.watches.Load(); n < 3 || n > 6 {
			t.Fatalf("%d watch attempts in 1s", n)
		}
		// Every attempt after the first waited for the backoff, counted.
		if got := testutil.ToFloat64(metrics.Retries.WithLabelValues("watch")) - before; got < float64(f.watches.Load()-1) {
			t.Fatalf("secretfs_backend_retries_total{op=watch} = %v after %d attempts", got, f.watches.Load())
		}
		if st := s.State(); password(st.Secret) != "v1" || st.Err == nil {
			t.Fatalf("state %+v", st)
		}
	})
	t.Run("poll", func(t *testing.T) {
		f := &flaky{noWatch: true}
		c := newCache(t, f, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
		s, _ := c.Subscribe(ctx, ref("db"), own, StrategyWatch, 10*time.Millisecond, nil)
		defer s.Close()
		time.Sleep(500 * time.Millisecond)
		// Polling every 10ms would be ~50 reads; backing off to 50ms
		// (jittered up to 75ms) is at most ~15.
		if n := f.gets.Load(); n < 5 || n > 16 {
			t.Fatalf("%d reads in 500ms", n)
		}
		if st := s.State(); password(st.Secret) != "v1" || st.Err == nil {
			t.Fatalf("state %+v", st)
		}
	})
	e := newCache(t, &flaky{}, Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}).newEntry(key{}, 0)
	for i, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		if d := e.bo.Step(); d < want || d > want*3/2 {
			t.Fatalf("step %d: %v not in [%v, %v]", i, d, want, want*3/2)
		}
	}
}

func TestClosedCache(t *testing.T) {
	_, b := fileBackend(t)
	c := New(b, Options{})
	c.Close()
	s, st := c.Subscribe(ctx, ref("db"), own, StrategyWatch, 0, nil)
	if !errors.Is(st.Err, ErrClosed) || !errors.Is(s.Refresh(ctx).Err, ErrClosed) {
		t.Fatalf("after Close: %+v", st)
	}
	s.Close()
}

// TestOneChangePerEdit: 200 edits of the manifest, each awaited, reach
// the subscriber as exactly one onChange each, with the new value, and
// nothing follows the last. The median must stay under a second (the file
// source debounces for 2 ms): a generous bound that catches an edit
// waiting for a timer or a poll instead of its watch event. The figures
// are make bench's (BenchmarkBackendWatch/file for the source alone,
// BenchmarkUpdateLatency through cache and FUSE).
func TestOneChangePerEdit(t *testing.T) {
	dir, b := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "start", false))
	c := newCache(t, b, Options{})
	got := make(chan string, 1000)
	s, _ := c.Subscribe(ctx, ref("db"), own, StrategyWatch, 0, func(st State) { got <- password(st.Secret) })
	defer s.Close()
	const edits = 200
	lat := make([]time.Duration, 0, edits)
	for i := range edits {
		want := fmt.Sprint("v", i)
		start := time.Now()
		write(t, dir, "db.yaml", manifest("db", want, false))
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("edit %d: onChange with %s, want %s", i, v, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("edit %d: no onChange", i)
		}
		lat = append(lat, time.Since(start))
	}
	select {
	case v := <-got:
		t.Fatalf("onChange with %s after the last edit", v)
	case <-time.After(200 * time.Millisecond):
	}
	slices.Sort(lat)
	if p50 := lat[len(lat)/2]; p50 > time.Second {
		t.Errorf("median write→onChange over %d edits is %v (max %v)", edits, p50, lat[len(lat)-1])
	}
}

// TestInvalidIsNotMissing: a Secret that was missing and then appears
// invalid exists; the state must not say missing (an optional volume would
// mount empty instead of failing).
func TestInvalidIsNotMissing(t *testing.T) {
	dir, b := fileBackend(t)
	c := newCache(t, b, Options{})
	s, st := c.Subscribe(ctx, ref("db"), own, StrategyWatch, 0, func(State) {})
	defer s.Close()
	if !st.Missing {
		t.Fatalf("first state %+v, want missing", st)
	}
	write(t, dir, "db.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ndata: {password: \"not*base64\"}\n")
	eventually(t, "the invalid Secret", func() bool { return s.State().Err != nil })
	var invalid *secret.InvalidError
	if st := s.State(); st.Missing || !errors.As(st.Err, &invalid) {
		t.Fatalf("state %+v: want not missing, with the InvalidError", st)
	}
}
