package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/secret"
)

// entry is one Secret as seen by one identity and strategy family.
type entry struct {
	c    *Cache
	key  key
	poll time.Duration // Watch family on a source that cannot watch
	// ctx ends with the entry (freed, cache closed); reads and the
	// watch run under it, not under a subscriber's ctx, because they
	// serve every subscriber.
	ctx     context.Context
	cancel  context.CancelFunc
	nsubs   int           // guarded by c.mu
	idleGen int           // guarded by c.mu; bumped at each revival
	ready   chan struct{} // closed once the first read is applied

	mu        sync.Mutex
	state     State
	appliedAt time.Time // start of the newest read applied; older results lose
	readAt    time.Time // start of the last completed read, for the TTL
	immutable bool
	inflight  *call
	logged    string // last error logged, to log each error once
	told      string // last error told to subscribers ("" once a read succeeds)
	subs      map[*Subscription]struct{}
	bo        wait.Backoff // retry delays, shared by the watch and polls

	// identity.go: the tokens of the live volumes and which are refused.
	tokens     map[*Subscription][]*cred
	denied     bool          // no token accepted: new subscribers get the refusal
	stale      bool          // nothing reads now (denied, or the watch waits for a token)
	rekey      chan struct{} // a volume brought or took tokens (capacity 1)
	watchToken string        // the token the running watch's last request sent
	refusal    error         // the last refusal, for the denial's message
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
	e := &entry{c: c, key: k, poll: poll, ctx: ctx, cancel: cancel,
		ready: make(chan struct{}), subs: map[*Subscription]struct{}{},
		tokens: map[*Subscription][]*cred{}, rekey: make(chan struct{}, 1)}
	e.resetBackoff()
	return e
}

func (e *entry) String() string { return e.key.ns + "/" + e.key.name }

// ref is the backend's name for the Secret, read with token.
func (e *entry) ref(token string) backend.Ref {
	return backend.Ref{Namespace: e.key.ns, Name: e.key.name, Token: token}
}

// first makes the entry's first read, then starts its watch.
func (e *entry) first() {
	e.read(e.ctx, time.Time{})
	close(e.ready)
	if e.key.fam == watchFamily && !e.isImmutable() {
		e.watch()
	}
}

// stop ends the entry's reads and watch; with wipe, the bytes of the
// Secret it holds are overwritten (only when the backend gave them to us
// alone: the file source shares its parsed Secrets between callers).
func (e *entry) stop(wipe bool) {
	e.cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	if wipe && e.state.Secret != nil {
		for _, v := range e.state.Secret.Data {
			clear(v)
		}
		e.state = State{Err: ErrClosed}
	}
	clear(e.tokens)
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
		st.Err = fmt.Errorf("secret %s: read: %w", e, ctx.Err())
		return st
	}
}

// do reads with the entry's best token, and with the next one as long as
// a token is refused.
func (e *entry) do(c *call) {
	for {
		tok, err := e.pick()
		if err != nil {
			c.state = e.apply(nil, false, err, c.start)
			break
		}
		sec, err := e.c.b.Get(e.ctx, e.ref(tok))
		metrics.BackendReads.WithLabelValues(metrics.Result(err)).Inc()
		if errors.Is(err, backend.ErrForbidden) && e.refuse(tok, err) {
			continue
		}
		if errors.Is(err, backend.ErrNotFound) {
			c.state = e.apply(nil, true, nil, c.start)
		} else {
			c.state = e.apply(sec, false, err, c.start)
		}
		break
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

// apply records one observation made at time at and queues onChange for
// every subscriber if the content changed, on a new error, and when a read
// succeeds after errors (tell). Errors keep the last good Secret
// (stale-while-error).
func (e *entry) apply(sec *secret.Secret, missing bool, err error, at time.Time) State {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx.Err() != nil || at.Before(e.appliedAt) {
		return e.state // freed, or a newer observation is already in
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
		metrics.RefreshErrors.WithLabelValues(metrics.Result(err)).Inc()
		if msg := err.Error(); msg != e.logged {
			e.logged = msg
			e.c.log.Warn("secret refresh failed; keeping the last good version",
				"secret", e.String(), "strategy", e.key.fam.String(), "err", msg)
		}
		if msg := err.Error(); msg != e.told {
			// Each new error once, not each retry: subscribers report it
			// (their volumes keep their last good version).
			e.told = msg
			e.tell()
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
	e.accepted()
	if e.logged != "" {
		e.logged = ""
		e.c.log.Info("secret readable again", "secret", e.String(), "strategy", e.key.fam.String())
	}
	recovered := e.told != ""
	e.told = ""
	if changed {
		e.state.Changed = time.Now()
	}
	if changed || recovered {
		e.tell()
	}
	return e.state
}

// tell queues the entry's state for every subscriber: a content change,
// a new error, or the first good read after errors (the same content,
// State.Err nil). Under e.mu.
func (e *entry) tell() {
	for s := range e.subs {
		s.enqueue(e.state)
	}
}

// resetBackoff starts the retry delays over: 100ms, 200ms, … up to the
// cap, each jittered by up to +50% so that entries failing together (an
// apiserver restart) do not come back together. Under e.mu or before the
// entry is shared.
func (e *entry) resetBackoff() {
	e.bo = wait.Backoff{Duration: e.c.minBackoff, Factor: 2, Jitter: 0.5, Steps: math.MaxInt32, Cap: e.c.maxBackoff}
}

// backoff waits for the entry's next retry delay; false if the entry
// ended meanwhile.
func (e *entry) backoff(ctx context.Context, op string) bool {
	e.mu.Lock()
	d := e.bo.Step()
	e.mu.Unlock()
	metrics.Retries.WithLabelValues(op).Inc()
	metrics.RetryDelay.Observe(d.Seconds())
	return sleep(ctx, d)
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
