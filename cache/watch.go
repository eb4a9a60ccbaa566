package cache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
)

// watch follows the Secret with one backend watch at a time until the
// entry ends or the Secret turns immutable. Each round:
//  1. pick the freshest usable token (none: wait until a volume brings one);
//  2. watch with it; every further request of that watch (a resume after
//     the watch timeout, a relist) asks rewatch for the freshest token
//     then, so tokens rotate and volumes leave without a restart;
//  3. after a refusal, go on with the next token at once; after any other
//     error, wait for the entry's backoff (reset once a watch delivered
//     events).
func (e *entry) watch() {
	for e.ctx.Err() == nil {
		tok, err := e.pick()
		if err != nil {
			if err != errNoVolume {
				e.apply(nil, false, err, time.Now())
			}
			if !e.waitToken() {
				return
			}
			continue
		}
		ctx, cancel := context.WithCancel(e.ctx)
		e.mu.Lock()
		e.watchToken = tok
		e.mu.Unlock()
		ref := e.ref(tok)
		if tok != "" {
			ref.Rewatch = e.rewatch
		}
		var healthy, immutable atomic.Bool
		metrics.Watches.Inc()
		err = e.c.b.Watch(ctx, ref, func(ev backend.Event) {
			switch {
			case ev.Err != nil:
				e.apply(nil, false, ev.Err, time.Now())
			case ev.Deleted:
				healthy.Store(true)
				e.apply(nil, true, nil, time.Now())
			default:
				healthy.Store(true)
				if e.apply(ev.Secret, false, nil, time.Now()); e.isImmutable() {
					immutable.Store(true)
					cancel() // an immutable Secret cannot change: stop watching
				}
			}
		})
		metrics.Watches.Dec()
		cancel()
		e.mu.Lock()
		tok = e.watchToken // the one the last request sent
		if healthy.Load() {
			e.resetBackoff() // it worked for a while: retry soon
		}
		e.mu.Unlock()
		switch {
		case e.ctx.Err() != nil, immutable.Load():
			return
		case errors.Is(err, backend.ErrNoWatch):
			e.pollLoop()
			return
		case errors.Is(err, backend.ErrForbidden) && e.refuse(tok, err):
			continue
		}
		if err != nil {
			e.apply(nil, false, fmt.Errorf("secret %s: watch: %w", e, err), time.Now())
		}
		if !e.backoff(e.ctx, "watch") {
			return
		}
	}
}

// rewatch is the running watch's backend.Ref.Rewatch: the freshest
// usable token now, remembered as the one the watch uses.
func (e *entry) rewatch() (string, bool) {
	tok, err := e.pick()
	if err != nil {
		return "", false
	}
	e.mu.Lock()
	e.watchToken = tok
	e.mu.Unlock()
	return tok, true
}

// waitToken waits until a volume brings or takes tokens; false if the
// entry ended first.
func (e *entry) waitToken() bool {
	select {
	case <-e.rekey:
		return true
	case <-e.ctx.Done():
		return false
	}
}

// pollLoop stands in for a watch on a source that cannot watch.
func (e *entry) pollLoop() {
	for sleep(e.ctx, e.poll) {
		for {
			st := e.read(e.ctx, time.Now())
			if e.isImmutable() || e.ctx.Err() != nil {
				return
			}
			if st.Err == nil {
				e.mu.Lock()
				e.resetBackoff()
				e.mu.Unlock()
				break
			}
			if !e.backoff(e.ctx, "poll") {
				return
			}
		}
	}
}
