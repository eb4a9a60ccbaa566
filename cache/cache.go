package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/secret"
)

// Strategy is how a subscriber learns of changes, with the names of
// kubelet's configMapAndSecretChangeDetectionStrategy.
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
	// DefaultIdle is how long an entry without subscribers is kept.
	DefaultIdle = time.Minute
	// freeAfter is how long after the last free of a wave the memory is
	// given back to the OS.
	freeAfter = time.Second
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
	// Idle is how long an entry without subscribers stays (still
	// watched, its bytes kept) before it is stopped, wiped and freed;
	// default DefaultIdle (--cache-idle). Negative: at once.
	Idle time.Duration
	// MinBackoff and MaxBackoff bound the jittered retry delay after
	// errors; defaults 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
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

// key is what an entry is shared by. scope is the identity: "" for the
// backend's own credentials, "sa:NS/NAME" for pod tokens of a known
// service account, "tokens:HASH" for tokens of an unknown one (shared
// only by volumes bringing the very same tokens).
type key struct {
	ns, name string
	scope    string
	fam      family
}

func scopeOf(id backend.Identity) string {
	switch {
	case id.Own():
		return ""
	case id.ServiceAccount != "":
		return "sa:" + id.Namespace + "/" + id.ServiceAccount
	}
	h := sha256.New()
	for _, t := range id.Tokens {
		h.Write([]byte(t.Value))
		h.Write([]byte{0})
	}
	return "tokens:" + hex.EncodeToString(h.Sum(nil))
}

// Cache is safe for concurrent use.
type Cache struct {
	b          backend.Backend
	owns       bool // the backend hands out Secrets nobody else holds: free wipes them
	log        *slog.Logger
	idle       time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration

	mu       sync.Mutex
	entries  map[key]*entry // every live entry, with or without subscribers
	freeWave *time.Timer    // pending debug.FreeOSMemory after frees
	closed   bool
}

// New returns a cache reading from b.
func New(b backend.Backend, opts Options) *Cache {
	c := &Cache{b: b, log: opts.Logger, idle: opts.Idle, minBackoff: opts.MinBackoff, maxBackoff: opts.MaxBackoff,
		entries: map[key]*entry{}}
	if o, ok := b.(backend.Owner); ok {
		c.owns = o.CallerOwnsSecrets()
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.idle == 0 {
		c.idle = DefaultIdle
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = 30 * time.Second
	}
	if c.minBackoff <= 0 {
		c.minBackoff = 100 * time.Millisecond
	}
	c.minBackoff = min(c.minBackoff, c.maxBackoff)
	return c
}

// Subscribe registers onChange for the Secret ref (ref.Token is ignored:
// tokens come from id) and returns once the Secret was read for the first
// time (one backend read however many subscribe at once) or ctx is done.
// id's tokens join the entry of its service account; a Get subscriber
// re-reads an existing entry, a Cache one does when its ttl expired. ttl
// is the Cache strategy's TTL (default 1m) and, for Watch on a source
// that cannot watch, the poll interval (default 1s). onChange runs outside
// locks, in order, after the returned State: once per content change,
// once per new error (State.Err set, the last good Secret kept; not at
// every retry) and once at the first good read after errors (State.Err
// nil, maybe the same content), so subscribers can report both.
//
// If no token of the entry is accepted (its own included), the State
// holds only the refusal: never data read before.
func (c *Cache) Subscribe(ctx context.Context, ref backend.Ref, id backend.Identity, st Strategy, ttl time.Duration, onChange func(State)) (*Subscription, State) {
	st, _ = ParseStrategy(string(st)) // unknown values fall back to Watch
	if st == "" {
		st = StrategyWatch
	}
	k := key{ns: ref.Namespace, name: ref.Name, scope: scopeOf(id), fam: readFamily}
	if st == StrategyWatch {
		k.fam = watchFamily
	}
	s := &Subscription{st: st, ttl: ttl, onChange: onChange}
	if st == StrategyCache && s.ttl <= 0 {
		s.ttl = DefaultTTL
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
		metrics.CacheEntries.Inc()
	}
	e.nsubs++
	e.idleGen++ // revived: a pending idle timer no longer applies
	s.e = e
	// The tokens join before the first read, which needs one.
	e.mu.Lock()
	e.setTokens(s, id.Tokens)
	e.mu.Unlock()
	c.mu.Unlock()
	if !hit {
		go e.first()
	}

	select {
	case <-e.ready:
		if hit {
			// An existing entry may be older than this subscriber
			// accepts, or refused so far (the new token may do).
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
	if e.denied {
		state = State{Err: state.Err}
	}
	if state.Secret == nil && !state.Missing && state.Err == nil && ctx.Err() != nil {
		state.Err = fmt.Errorf("secret %s/%s: first read: %w", k.ns, k.name, ctx.Err())
	}
	return s, state
}

// park is called under c.mu when an entry lost its last subscriber: it is
// freed after the idle time unless a subscriber comes back.
func (c *Cache) park(e *entry) {
	switch {
	case c.closed:
		return
	case c.idle < 0:
		c.free(e)
		return
	}
	gen := e.idleGen
	time.AfterFunc(c.idle, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if e.nsubs == 0 && e.idleGen == gen && c.entries[e.key] == e {
			c.free(e)
		}
	})
}

// free stops an entry, wipes the bytes it owns and forgets it; called
// under c.mu. Memory goes back to the OS once a wave of frees is over.
func (c *Cache) free(e *entry) {
	if c.entries[e.key] != e {
		return
	}
	delete(c.entries, e.key)
	metrics.CacheEntries.Dec()
	e.stop(c.owns)
	if c.freeWave == nil {
		c.freeWave = time.AfterFunc(freeAfter, func() {
			c.mu.Lock()
			c.freeWave = nil
			c.mu.Unlock()
			debug.FreeOSMemory()
		})
	} else {
		c.freeWave.Reset(freeAfter)
	}
}

// Close stops every watch and poll. Subscriptions keep their last State;
// nothing is wiped, since they may still show it.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, e := range c.entries {
		e.stop(false)
		metrics.CacheEntries.Dec()
	}
	clear(c.entries)
}
