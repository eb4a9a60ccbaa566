package cache

import (
	"context"
	"time"

	"github.com/secretfs/secretfs/metrics"
)

// Subscription is one subscriber of an entry.
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
// fresh). An immutable Secret is never re-read. A content change found
// here also reaches every subscriber's onChange, this one's included.
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
		(s.st == StrategyGet || s.st == StrategyCache && time.Since(e.readAt) >= s.ttl)
	e.mu.Unlock()
	if !stale {
		metrics.CacheRequests.WithLabelValues("hit").Inc()
		return e.current()
	}
	metrics.CacheRequests.WithLabelValues("miss").Inc()
	return e.read(ctx, time.Now())
}

// Close ends the subscription; onChange is not called after Close
// returns, except a call already running. The entry stays cached (and
// watched) while idle, until the idle LRU evicts it.
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
