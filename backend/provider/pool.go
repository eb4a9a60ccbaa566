package provider

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync"
	"time"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/metrics"
)

// Pool shares provider calls between volumes: one entry, one call per
// refresh, one timer, per Request.key.
type Pool struct {
	client  *Client
	classes backend.ClassReader
	log     *slog.Logger

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*entry
}

// NewPool returns a pool asking providers through client and reading
// classes from classes.
func NewPool(client *Client, classes backend.ClassReader, log *slog.Logger) *Pool {
	if log == nil {
		log = slog.Default()
	}
	return &Pool{client: client, classes: classes, log: log, entries: map[[sha256.Size]byte]*entry{}}
}

// entry is the state shared by the volumes of one key. mu orders calls
// and switches: one refresh at a time, and every member switches before
// the next call starts.
type entry struct {
	pool *Pool
	key  [sha256.Size]byte

	mu       sync.Mutex
	dead     bool // removed from the pool: Join must make a new one
	members  map[*Member]struct{}
	seq      uint64 // publish counter: the latest member's request is sent
	provider string // of the last class read ("" before)
	files    *Files // last good reply; nil before the first
	versions []*v1alpha1.ObjectVersion
	fetched  time.Time
	timer    *time.Timer
}

// Member is one volume's place in an entry.
type Member struct {
	e         *entry
	req       *Request
	seq       uint64
	onChange  func(*Files)
	onRefresh func(error)
	closed    bool
}

// Join adds the volume of req to its entry. It asks the provider unless
// the entry holds files younger than the ttl (Cache); a Get volume always
// asks. A failed call fails the join even when the entry holds files: a
// publish fails on the provider's error, as the driver's does; only refreshes of
// mounted volumes keep the last good files. mount gets the files to show
// first (the entry is locked meanwhile, so no switch can pass it);
// onChange gets every later change; onRefresh (may be nil) the outcome of
// every later call for the entry, nil for a good reply (equal files
// included), so the volume can report failures and recoveries. Both run
// under the entry's lock: they must not block. Errors are *Error; the
// volume is then not a member.
func (p *Pool) Join(ctx context.Context, req *Request, mount func(*Files) error, onChange func(*Files), onRefresh func(error)) (*Member, error) {
	e := p.entry(req.key())
	defer e.mu.Unlock()
	m := &Member{e: e, req: req, onChange: onChange, onRefresh: onRefresh}
	e.seq++
	m.seq = e.seq
	if e.files == nil || req.Strategy == StrategyGet || time.Since(e.fetched) >= ttl(req) {
		if err := e.refresh(ctx, req); err != nil {
			e.dropIfEmpty()
			return nil, err
		}
	}
	if err := mount(e.files); err != nil {
		e.dropIfEmpty()
		return nil, err
	}
	e.members[m] = struct{}{}
	e.schedule(req)
	return m, nil
}

// entry returns the live entry of key, locked, making it if needed.
func (p *Pool) entry(key [sha256.Size]byte) *entry {
	for {
		p.mu.Lock()
		e := p.entries[key]
		if e == nil {
			e = &entry{pool: p, key: key, members: map[*Member]struct{}{}}
			p.entries[key] = e
		}
		p.mu.Unlock()
		e.mu.Lock()
		if !e.dead {
			return e
		}
		e.mu.Unlock()
	}
}

// Refresh asks the provider again for a republished volume, sending req
// (its fresh token and pod keys) from now on. A failure keeps the last
// good files, is counted, and is returned for logging.
func (m *Member) Refresh(ctx context.Context, req *Request) error {
	e := m.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if m.closed {
		return nil
	}
	e.seq++
	m.req, m.seq = req, e.seq
	err := e.refresh(ctx, req)
	if err != nil {
		e.failed(err)
	}
	e.schedule(req)
	return err
}

// Close leaves the entry; the last member out frees it.
func (m *Member) Close() {
	e := m.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	delete(e.members, m)
	e.dropIfEmpty()
}

// latest is the request of the most recently published member.
func (e *entry) latest() *Request {
	var best *Member
	for m := range e.members {
		if best == nil || m.seq > best.seq {
			best = m
		}
	}
	if best == nil {
		return nil
	}
	return best.req
}

// schedule (re)arms a Cache entry's timer for ttl after its last call.
func (e *entry) schedule(req *Request) {
	if req.Strategy != StrategyCache || len(e.members) == 0 {
		return
	}
	d := ttl(req) - time.Since(e.fetched)
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timer = time.AfterFunc(max(d, 0), e.tick)
}

// tick is the Cache timer: a refresh with the latest member's request.
func (e *entry) tick() {
	e.mu.Lock()
	defer e.mu.Unlock()
	req := e.latest()
	if e.dead || req == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.pool.client.opts.Timeout*2)
	defer cancel()
	if err := e.refresh(ctx, req); err != nil {
		e.failed(err)
		// Try again after a tenth of the ttl: a provider that was down
		// for a moment should not leave volumes stale for a whole ttl.
		e.fetched = time.Now().Add(-ttl(req) * 9 / 10)
	}
	e.schedule(req)
}

func (e *entry) failed(err error) {
	metrics.ProviderRefreshErrors.WithLabelValues(e.label()).Inc()
	metrics.RefreshErrors.WithLabelValues("provider").Inc()
	e.pool.log.Warn("provider refresh failed; volumes keep their last good files", "provider", e.provider, "volumes", len(e.members), "err", err)
}

// dropIfEmpty frees an entry no volume uses any more.
func (e *entry) dropIfEmpty() {
	if len(e.members) > 0 {
		return
	}
	e.dead = true
	if e.timer != nil {
		e.timer.Stop()
	}
	if e.files != nil {
		metrics.ProviderFiles.WithLabelValues(e.label()).Sub(float64(e.files.Len()))
	}
	e.files.wipe()
	e.files, e.versions = nil, nil
	p := e.pool
	p.mu.Lock()
	if p.entries[e.key] == e {
		delete(p.entries, e.key)
	}
	p.mu.Unlock()
}

func (e *entry) label() string {
	if e.provider == "" {
		return "unknown"
	}
	return e.provider
}

func ttl(r *Request) time.Duration {
	if r.TTL > 0 {
		return r.TTL
	}
	return DefaultTTL
}
