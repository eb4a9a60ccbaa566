package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/secret"
)

// entry is one Secret as seen by one identity and strategy family.
type entry struct {
	c    *Cache
	key  key
	poll time.Duration // Watch family on a source that cannot watch
	// ctx ends with the entry (evicted, cache closed); reads and the
	// watch run under it, not under a subscriber's ctx, because they
	// serve every subscriber.
	ctx    context.Context
	cancel context.CancelFunc
	nsubs  int           // guarded by c.mu
	ready  chan struct{} // closed once the first read is applied

	mu        sync.Mutex
	state     State
	appliedAt time.Time // start of the newest read applied; older results lose
	readAt    time.Time // start of the last completed read, for the TTL
	immutable bool
	inflight  *call
	logged    string // last error logged, to log each error once
	subs      map[*Subscription]struct{}
}

// call is one backend Get that concurrent readers share.
type call struct {
	start time.Time
	done  chan struct{}
	state State
}

func (c *Cache) newEntry(k key, ttl time.Duration) *entry {
	ctx, cancel := context.WithCancel(context.Background())
	poll := ttl
	if poll <= 0 {
		poll = DefaultPoll
	}
	return &entry{c: c, key: k, poll: poll, ctx: ctx, cancel: cancel,
		ready: make(chan struct{}), subs: map[*Subscription]struct{}{}}
}

// first makes the entry's first read, then starts its watch.
func (e *entry) first() {
	e.read(e.ctx, time.Time{})
	close(e.ready)
	if e.key.fam == watchFamily && !e.isImmutable() {
		e.watch()
	}
}

func (e *entry) isImmutable() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.immutable
}

func (e *entry) current() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

// read returns the state after a backend Get that started no earlier than
// notBefore, joining one in flight if it qualifies (single-flight).
func (e *entry) read(ctx context.Context, notBefore time.Time) State {
	e.mu.Lock()
	c := e.inflight
	if c == nil || c.start.Before(notBefore) {
		c = &call{start: time.Now(), done: make(chan struct{})}
		e.inflight = c
		go e.do(c)
	}
	e.mu.Unlock()
	select {
	case <-c.done:
		return c.state
	case <-ctx.Done():
		st := e.current()
		st.Err = fmt.Errorf("secret %s: read: %w", e.key.ref, ctx.Err())
		return st
	}
}

func (e *entry) do(c *call) {
	sec, err := e.c.b.Get(e.ctx, e.key.ref)
	metrics.BackendReads.WithLabelValues(readResult(err)).Inc()
	if errors.Is(err, backend.ErrNotFound) {
		c.state = e.apply(nil, true, nil, c.start)
	} else {
		c.state = e.apply(sec, false, err, c.start)
	}
	e.mu.Lock()
	if e.inflight == c {
		e.inflight = nil
	}
	if !c.start.Before(e.readAt) {
		e.readAt = c.start
	}
	e.mu.Unlock()
	close(c.done)
}

func readResult(err error) string {
	var inv *secret.InvalidError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, backend.ErrNotFound):
		return "notfound"
	case errors.As(err, &inv):
		return "invalid"
	}
	return "error"
}

// apply records one observation made at time at and queues onChange for
// every subscriber if the content changed. Errors keep the last good
// Secret (stale-while-error).
func (e *entry) apply(sec *secret.Secret, missing bool, err error, at time.Time) State {
	e.mu.Lock()
	defer e.mu.Unlock()
	if at.Before(e.appliedAt) {
		return e.state // a newer observation is already in
	}
	e.appliedAt = at
	old := e.state
	changed := false
	switch {
	case err != nil:
		e.state.Err = err
		var invalid *secret.InvalidError
		if errors.As(err, &invalid) {
			e.state.Missing = false // it exists, it is just not valid
		}
		metrics.RefreshErrors.WithLabelValues(readResult(err)).Inc()
		if msg := err.Error(); msg != e.logged {
			e.logged = msg
			e.c.log.Warn("secret refresh failed; keeping the last good version",
				"secret", e.key.ref.String(), "strategy", e.key.fam.String(), "err", msg)
		}
		return e.state
	case missing:
		changed = !old.Missing
		e.state = State{Missing: true, Changed: old.Changed}
	default:
		changed = old.Missing || !old.Secret.SameContent(sec)
		e.state = State{Secret: sec, Changed: old.Changed}
		e.immutable = sec.Immutable
	}
	if e.logged != "" {
		e.logged = ""
		e.c.log.Info("secret readable again", "secret", e.key.ref.String(), "strategy", e.key.fam.String())
	}
	if changed {
		e.state.Changed = time.Now()
		for s := range e.subs {
			s.enqueue(e.state)
		}
	}
	return e.state
}

// watch follows the Secret with one backend watch, restarted with backoff
// when it fails, until the entry ends or the Secret turns immutable.
func (e *entry) watch() {
	ctx, stop := context.WithCancel(e.ctx)
	defer stop()
	bo := e.c.newBackoff()
	for {
		var healthy atomic.Bool
		metrics.Watches.Inc()
		err := e.c.b.Watch(ctx, e.key.ref, func(ev backend.Event) {
			switch {
			case ev.Err != nil:
				e.apply(nil, false, ev.Err, time.Now())
			case ev.Deleted:
				healthy.Store(true)
				e.apply(nil, true, nil, time.Now())
			default:
				healthy.Store(true)
				if e.apply(ev.Secret, false, nil, time.Now()); e.isImmutable() {
					stop() // SPEC §1: never re-read an immutable Secret
				}
			}
		})
		metrics.Watches.Dec()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, backend.ErrNoWatch):
			e.pollLoop(ctx, bo)
			return
		case healthy.Load():
			bo.reset() // it worked for a while: retry soon
		}
		if err != nil {
			e.apply(nil, false, fmt.Errorf("secret %s: watch: %w", e.key.ref, err), time.Now())
		}
		if !sleep(ctx, bo.next()) {
			return
		}
	}
}

// pollLoop stands in for a watch on a source that cannot watch.
func (e *entry) pollLoop(ctx context.Context, bo *backoff) {
	wait := e.poll
	for sleep(ctx, wait) {
		st := e.read(ctx, time.Now())
		if e.isImmutable() || ctx.Err() != nil {
			return
		}
		if st.Err != nil {
			wait = bo.next()
		} else {
			bo.reset()
			wait = e.poll
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff is exponential with jitter, so that many entries failing
// together do not retry in lockstep.
type backoff struct{ base, max, cur time.Duration }

func (c *Cache) newBackoff() *backoff { return &backoff{base: c.minBackoff, max: c.maxBackoff} }

func (b *backoff) reset() { b.cur = 0 }

// next returns a delay in [cur/2, cur], cur doubling up to max.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.base
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}
