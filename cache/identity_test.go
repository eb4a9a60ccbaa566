package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/secret"
)

// rbac wraps the file source with a token check, as the apiserver makes
// one: only tokens in ok may read. The kube backend's own behaviour is
// tested against a real apiserver (backend/kube, live); this is the
// cache's side of it, fast.
type rbac struct {
	*counting
	mu      sync.Mutex
	ok      map[string]bool
	refused map[string]int
}

func newRBAC(b *counting, ok ...string) *rbac {
	r := &rbac{counting: b, ok: map[string]bool{}, refused: map[string]int{}}
	r.allow(ok...)
	return r
}

func (r *rbac) allow(toks ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range toks {
		r.ok[t] = true
	}
}

func (r *rbac) revoke(tok string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ok, tok)
}

func (r *rbac) refusals(tok string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused[tok]
}

func (r *rbac) check(ref backend.Ref) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ok[ref.Token] {
		r.refused[ref.Token]++
		return fmt.Errorf("secret %s: %w: the token may not read it", ref, backend.ErrForbidden)
	}
	return nil
}

func (r *rbac) Get(ctx context.Context, ref backend.Ref) (*secret.Secret, error) {
	if err := r.check(ref); err != nil {
		return nil, err
	}
	return r.counting.Get(ctx, ref)
}

// Watch runs the file source's watch in requests of rewatchAfter, like
// the kube backend's watch requests that end after their timeout: each
// further request asks ref.Rewatch for its token and checks it.
func (r *rbac) Watch(ctx context.Context, ref backend.Ref, fn func(backend.Event)) error {
	for again := false; ; again = true {
		if again && ref.Rewatch != nil {
			tok, ok := ref.Rewatch()
			if !ok {
				return fmt.Errorf("secret %s: %w: no token left", ref, backend.ErrForbidden)
			}
			ref.Token = tok
		}
		if err := r.check(ref); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, rewatchAfter)
		err := r.counting.Watch(rctx, ref, fn)
		cancel()
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

const rewatchAfter = 200 * time.Millisecond

func sa(name string, toks ...backend.Token) backend.Identity {
	return backend.Identity{Namespace: "default", ServiceAccount: name, Tokens: toks}
}

func tok(v string, ttl time.Duration) backend.Token {
	return backend.Token{Value: v, Expiry: time.Now().Add(ttl)}
}

func authFailures(outcome string) float64 {
	return testutil.ToFloat64(metrics.AuthFailures.WithLabelValues(outcome))
}

// 20 volumes of one service account, each with its own token, share one
// entry: one read, one watch. Another account gets its own.
func TestTokensOfOneAccountShare(t *testing.T) {
	dir, fb := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "v1", false))
	var toks []string
	for i := range 21 {
		toks = append(toks, fmt.Sprint("t", i))
	}
	b := newRBAC(fb, toks...)
	c := newCache(t, b, Options{})
	recs := make([]*recorder, 21)
	var wg sync.WaitGroup
	for i := range 20 {
		recs[i] = &recorder{}
		wg.Go(func() {
			s, st := c.Subscribe(ctx, ref("db"), sa("web", tok(toks[i], time.Hour)), StrategyWatch, 0, recs[i].onChange)
			t.Cleanup(s.Close)
			if password(st.Secret) != "v1" {
				t.Errorf("volume %d: %+v", i, st)
			}
		})
	}
	wg.Wait()
	eventually(t, "the watch", func() bool { return fb.open.Load() == 1 })
	if g, w := fb.gets.Load(), fb.watches.Load(); g != 1 || w != 1 {
		t.Fatalf("20 volumes of one account: %d gets, %d watches; want 1 and 1", g, w)
	}
	recs[20] = &recorder{}
	s, st := c.Subscribe(ctx, ref("db"), sa("batch", tok(toks[20], time.Hour)), StrategyWatch, 0, recs[20].onChange)
	defer s.Close()
	if password(st.Secret) != "v1" {
		t.Fatalf("other account: %+v", st)
	}
	eventually(t, "the second watch", func() bool { return fb.open.Load() == 2 })
	write(t, dir, "db.yaml", manifest("db", "v2", false))
	for i, r := range recs {
		eventually(t, fmt.Sprint("volume ", i, " to update"), func() bool { return r.last() == "v2" })
	}
}

// One of two volumes brings a refused token that expires later (so it is
// the first choice): at the watch's next request the entry tries it,
// drops it, counts it, and goes on with the other; both volumes keep
// updating.
func TestRefusedTokenFallsBack(t *testing.T) {
	dir, fb := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "v1", false))
	b := newRBAC(fb, "good", "good2")
	c := newCache(t, b, Options{})
	var ra, rb recorder
	a, st := c.Subscribe(ctx, ref("db"), sa("web", tok("good", time.Hour)), StrategyWatch, 0, ra.onChange)
	defer a.Close()
	if password(st.Secret) != "v1" {
		t.Fatalf("a: %+v", st)
	}
	before := authFailures("token")
	bs, st := c.Subscribe(ctx, ref("db"), sa("web", tok("bad", 2*time.Hour)), StrategyWatch, 0, rb.onChange)
	defer bs.Close()
	if password(st.Secret) != "v1" {
		t.Fatalf("b joined: %+v", st)
	}
	// a's token rotates; the next watch request takes the freshest, "bad",
	// is refused and the entry goes on with "good2".
	if err := a.SetIdentity(sa("web", tok("good2", time.Hour))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refusal", func() bool { return b.refusals("bad") == 1 })
	eventually(t, "a watch with good2", func() bool { return fb.open.Load() == 1 && b.refusals("bad") == 1 })
	if got := authFailures("token") - before; got != 1 {
		t.Errorf("auth failures (token) +%v, want +1", got)
	}
	write(t, dir, "db.yaml", manifest("db", "v2", false))
	eventually(t, "both volumes to update", func() bool { return ra.last() == "v2" && rb.last() == "v2" })
	time.Sleep(2 * rewatchAfter) // further requests use good2, "bad" is dropped
	if b.refusals("bad") != 1 || b.refusals("good") != 0 || b.refusals("good2") != 0 {
		t.Errorf("refusals: bad %d, good %d; want 1 and 0", b.refusals("bad"), b.refusals("good"))
	}
	if err := a.SetIdentity(sa("other", tok("x", time.Hour))); err != ErrOtherIdentity {
		t.Errorf("SetIdentity of another account: %v", err)
	}
}

// With no token accepted, a new subscriber gets the refusal and never the
// data read before; the live ones keep it. A token that works again lifts
// the denial.
func TestDeniedGivesNoData(t *testing.T) {
	dir, fb := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "v1", false))
	b := newRBAC(fb, "a")
	c := newCache(t, b, Options{})
	denied := authFailures("denied")
	a, st := c.Subscribe(ctx, ref("db"), sa("web", tok("a", time.Hour)), StrategyGet, 0, nil)
	defer a.Close()
	if password(st.Secret) != "v1" {
		t.Fatalf("a: %+v", st)
	}
	b.revoke("a") // the Role is gone
	if st := a.Refresh(ctx); password(st.Secret) != "v1" || !errors.Is(st.Err, backend.ErrForbidden) {
		t.Fatalf("a after the revocation: %+v; want the last good version and the refusal", st)
	}
	if got := authFailures("denied") - denied; got != 1 {
		t.Errorf("auth failures (denied) +%v, want +1", got)
	}
	n, st := c.Subscribe(ctx, ref("db"), sa("web", tok("n", time.Hour)), StrategyGet, 0, nil)
	if st.Secret != nil || !errors.Is(st.Err, backend.ErrForbidden) || !strings.Contains(st.Err.Error(), "default/db") || !strings.Contains(st.Err.Error(), "service account default/web") {
		t.Fatalf("new volume of a denied account: %+v; want the refusal naming the Secret and account, no data", st)
	}
	n.Close()
	b.allow("n2")
	n, st = c.Subscribe(ctx, ref("db"), sa("web", tok("n2", time.Hour)), StrategyGet, 0, nil)
	defer n.Close()
	if password(st.Secret) != "v1" || st.Err != nil {
		t.Fatalf("a token accepted again: %+v", st)
	}
}

// Expired tokens are never sent; a watch's further requests move to an
// unexpired one, and with none left the watch waits for a volume to bring
// one.
func TestExpiredTokens(t *testing.T) {
	dir, fb := fileBackend(t)
	write(t, dir, "db.yaml", manifest("db", "v1", false))
	b := newRBAC(fb, "old", "short", "long", "fresh")
	c := newCache(t, b, Options{})
	s, st := c.Subscribe(ctx, ref("db"), sa("web", tok("old", -time.Second)), StrategyWatch, 0, nil)
	if st.Secret != nil || !errors.Is(st.Err, backend.ErrForbidden) || !strings.Contains(st.Err.Error(), "expired") {
		t.Fatalf("expired token: %+v", st)
	}
	if b.refusals("old") != 0 || fb.gets.Load() != 0 {
		t.Fatal("an expired token was sent")
	}
	s.Close()
	var r recorder
	s, st = c.Subscribe(ctx, ref("db"), sa("web", tok("short", 2*rewatchAfter), tok("long", 3*rewatchAfter)), StrategyWatch, 0, r.onChange)
	defer s.Close()
	if password(st.Secret) != "v1" {
		t.Fatalf("%+v", st)
	}
	// Both expire: the watch stops asking and waits.
	eventually(t, "the watch to wait for a token", func() bool { return fb.open.Load() == 0 && fb.watches.Load() >= 2 })
	write(t, dir, "db.yaml", manifest("db", "v2", false))
	s.SetIdentity(sa("web", tok("fresh", time.Minute)))
	eventually(t, "a watch with a fresh token", func() bool { return fb.open.Load() == 1 })
	eventually(t, "the update", func() bool { return r.last() == "v2" })
}
