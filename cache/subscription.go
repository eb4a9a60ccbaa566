package cache

import (
	"context"
	"errors"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
)

// ErrOtherIdentity is returned by SetIdentity for an identity that does
// not share the subscription's entry (another service account).
var ErrOtherIdentity = errors.New("identity of another entry")

// Subscription is one subscriber of an entry: one volume.
type Subscription struct {
	e        *entry
	st       Strategy
	ttl      time.Duration
	onChange func(State)

	// guarded by e.mu
	queue    []State
	draining bool
	closed   bool
}

// State is the entry's current state.
func (s *Subscription) State() State {
	if s.e == nil {
		return State{Err: ErrClosed}
	}
	return s.e.current()
}

// Refresh applies the strategy: Get re-reads now, Cache re-reads if the
// TTL expired, Watch returns the current state (the watch keeps it
// fresh). An entry that nothing reads now (refused, or its watch waiting
// for a token) is re-read whatever the strategy. An immutable Secret is
// never re-read. A content change found here also reaches every
// subscriber's onChange, this one's included.
func (s *Subscription) Refresh(ctx context.Context) State {
	if s.e == nil {
		return State{Err: ErrClosed}
	}
	return s.refresh(ctx)
}

func (s *Subscription) refresh(ctx context.Context) State {
	e := s.e
	e.mu.Lock()
	stale := e.ctx.Err() == nil && !e.immutable &&
		(e.stale || s.st == StrategyGet || s.st == StrategyCache && time.Since(e.readAt) >= s.ttl)
	e.mu.Unlock()
	if !stale {
		metrics.CacheRequests.WithLabelValues("hit").Inc()
		return e.current()
	}
	metrics.CacheRequests.WithLabelValues("miss").Inc()
	return e.read(ctx, time.Now())
}

// SetIdentity replaces the tokens this subscription brings to its entry
// (a republish with a fresh pod token): no second entry or watch. An
// identity of another entry is ErrOtherIdentity: subscribe anew.
func (s *Subscription) SetIdentity(id backend.Identity) error {
	e := s.e
	if e == nil {
		return ErrClosed
	}
	if scopeOf(id) != e.key.scope {
		return ErrOtherIdentity
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !s.closed {
		e.setTokens(s, id.Tokens)
	}
	return nil
}

// Close ends the subscription; onChange is not called after Close
// returns, except a call already running. Its tokens leave the entry; the
// entry stays cached (and watched, with the backend's own credentials)
// for the idle time.
func (s *Subscription) Close() {
	e := s.e
	if e == nil {
		return
	}
	e.mu.Lock()
	if s.closed {
		e.mu.Unlock()
		return
	}
	s.closed = true
	s.queue = nil
	delete(e.subs, s)
	e.setTokens(s, nil)
	e.mu.Unlock()

	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	if e.nsubs--; e.nsubs == 0 {
		e.c.park(e)
	}
}

// enqueue is called under e.mu. One drainer per subscriber keeps its
// calls in order and runs them outside every lock.
func (s *Subscription) enqueue(st State) {
	if s.onChange == nil || s.closed {
		return
	}
	s.queue = append(s.queue, st)
	if !s.draining {
		s.draining = true
		go s.drain()
	}
}

func (s *Subscription) drain() {
	e := s.e
	for {
		e.mu.Lock()
		if len(s.queue) == 0 || s.closed {
			s.draining = false
			e.mu.Unlock()
			return
		}
		st := s.queue[0]
		s.queue = s.queue[1:]
		e.mu.Unlock()
		s.onChange(st)
	}
}
