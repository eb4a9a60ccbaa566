// Package cache shares Secret reads between mounts, as kubelet's
// configMapAndSecretChangeDetectionStrategy does: one entry per Secret (and
// identity) and strategy family, so every mount of a Secret shares one
// backend watch or one read. It keeps the last good version through errors
// and tells subscribers only about real content changes.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/secret"
)

// Strategy is how a subscriber learns of changes (SPEC §2 "Updates").
type Strategy string

const (
	StrategyWatch Strategy = "Watch" // a backend watch shared by all subscribers (default)
	StrategyCache Strategy = "Cache" // re-read on Refresh once the TTL expired
	StrategyGet   Strategy = "Get"   // re-read on every Refresh
)

const (
	// DefaultTTL is the Cache strategy's TTL when none is given.
	DefaultTTL = time.Minute
	// DefaultPoll is how often a Watch entry polls a source that cannot
	// watch, when no TTL is given.
	DefaultPoll = time.Second
)

// ErrClosed is the State.Err of a subscription made after Cache.Close.
var ErrClosed = errors.New("cache closed")

// ParseStrategy reads a strategy name (any case); "" is Watch.
func ParseStrategy(s string) (Strategy, error) {
	for _, st := range []Strategy{StrategyWatch, StrategyCache, StrategyGet} {
		if strings.EqualFold(s, string(st)) {
			return st, nil
		}
	}
	if s == "" {
		return StrategyWatch, nil
	}
	return "", fmt.Errorf("unknown change detection strategy %q (want Watch, Cache or Get)", s)
}

// Options tune a Cache; zero values mean the defaults.
type Options struct {
	// MaxIdle is how many entries without subscribers stay cached (and
	// watched); default 1000. Negative: none, an entry stops when its
	// last subscriber leaves.
	MaxIdle int
	// MaxBackoff caps the retry delay after errors; default 30s.
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// State is what the cache knows about one Secret.
type State struct {
	Secret  *secret.Secret // last good version; nil if never read or missing
	Missing bool           // the backend says the Secret does not exist (now)
	Err     error          // the last error (invalid or unreachable); Secret may still hold the last good one
	Changed time.Time      // when the cache saw the current content
}

// family groups strategies that can share an entry: Cache and Get both
// read on demand, so a Get refresh also renews a Cache subscriber's data.
type family uint8

const (
	watchFamily family = iota
	readFamily
)

func (f family) String() string { return [...]string{"Watch", "Cache/Get"}[f] }

type key struct {
	ref backend.Ref
	fam family
}

// Cache is safe for concurrent use.
type Cache struct {
	b          backend.Backend
	log        *slog.Logger
	maxBackoff time.Duration
	minBackoff time.Duration // first retry delay; tests shorten it

	mu      sync.Mutex
	entries map[key]*entry              // every live entry, with or without subscribers
	idle    *simplelru.LRU[key, *entry] // entries without subscribers; nil if MaxIdle < 0
	closed  bool
}

// New returns a cache reading from b.
func New(b backend.Backend, opts Options) *Cache {
	c := &Cache{b: b, log: opts.Logger, maxBackoff: opts.MaxBackoff, entries: map[key]*entry{}}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = 30 * time.Second
	}
	c.minBackoff = min(100*time.Millisecond, c.maxBackoff)
	if opts.MaxIdle == 0 {
		opts.MaxIdle = 1000
	}
	if opts.MaxIdle > 0 {
		// Called under c.mu, by Add (evicting) and Remove (reviving):
		// only an entry still without subscribers is stopped.
		c.idle, _ = simplelru.NewLRU(opts.MaxIdle, func(_ key, e *entry) {
			if e.nsubs == 0 {
				c.drop(e)
			}
		})
	}
	return c
}

// Subscribe registers onChange for ref and returns once the Secret was
// read for the first time (one backend read however many subscribe at
// once) or ctx is done. A Get subscriber re-reads an existing entry, a
// Cache one does when its ttl expired. ttl is the Cache strategy's TTL
// (default 1m) and, for Watch on a source that cannot watch, the poll
// interval (default 1s). onChange runs outside locks, in order, once per
// content change after the returned State.
func (c *Cache) Subscribe(ctx context.Context, ref backend.Ref, st Strategy, ttl time.Duration, onChange func(State)) (*Subscription, State) {
	st, _ = ParseStrategy(string(st)) // unknown values fall back to Watch
	if st == "" {
		st = StrategyWatch
	}
	k := key{ref, readFamily}
	if st == StrategyWatch {
		k.fam = watchFamily
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return &Subscription{closed: true}, State{Err: ErrClosed}
	}
	e, hit := c.entries[k]
	if !hit {
		e = c.newEntry(k, ttl)
		c.entries[k] = e
		go e.first()
	}
	e.nsubs++
	if hit && e.nsubs == 1 && c.idle != nil {
		c.idle.Remove(k) // revived; nsubs > 0 keeps it running
	}
	c.mu.Unlock()
	s := &Subscription{e: e, st: st, ttl: ttl, onChange: onChange}
	if st == StrategyCache && s.ttl <= 0 {
		s.ttl = DefaultTTL
	}

	select {
	case <-e.ready:
		if hit {
			// An existing entry may be older than this subscriber accepts.
			s.refresh(ctx)
		} else {
			metrics.CacheRequests.WithLabelValues("miss").Inc()
		}
	case <-ctx.Done():
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.subs[s] = struct{}{}
	state := e.state
	if state.Secret == nil && !state.Missing && state.Err == nil && ctx.Err() != nil {
		state.Err = fmt.Errorf("secret %s: first read: %w", ref, ctx.Err())
	}
	return s, state
}

// park is called under c.mu when an entry lost its last subscriber.
func (c *Cache) park(e *entry) {
	switch {
	case c.closed:
	case c.idle == nil, e.key.ref.Token != "":
		// A pod's token expires and is replaced at each republish: an
		// idle entry read with it would only go on failing.
		c.drop(e)
	default:
		c.idle.Add(e.key, e)
	}
}

// drop forgets and stops an entry; called under c.mu.
func (c *Cache) drop(e *entry) {
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
	e.cancel()
}

// Close stops every watch and poll. Subscriptions keep their last State.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, e := range c.entries {
		e.cancel()
	}
	clear(c.entries)
	c.idle = nil
}
