package mounted

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
)

// DefaultWindow is how long a volume of several sources waits, after the
// first change it hears, for changes of its other sources, so that a
// certificate and its key kept in two Secrets and updated together switch
// as one version.
const DefaultWindow = 100 * time.Millisecond

// Source is one source of a volume of several (Config.Sources), as one
// entry of a projected volume's `sources`.
type Source struct {
	// Spec is a Secret followed through the cache and projected with
	// its own items and optional; DefaultMode and FSGroup are the
	// volume's (its owner copies them in).
	Spec projection.Spec
	// Fed, when set, names a source whose files the owner supplies
	// (`secretProviderClass "ns/vault-db"`): Files at mount, then
	// SetPart. Spec is then unused.
	Fed   string
	Files *projection.Payload
}

// Name names the source in errors and logs: secret "ns/name", or Fed.
func (s *Source) Name() string {
	if s.Fed != "" {
		return s.Fed
	}
	return s.Spec.PartName()
}

// sources is the state of a volume of several sources: the latest known
// files of each, merged into the one version the volume shows. Every
// field is guarded by the volume's mu.
type sources struct {
	v      *Volume
	window time.Duration
	parts  []*part
	live   bool        // mounted (or taken over and following): changes may switch
	timer  *time.Timer // the window of a switch under way
}

// part is one source's state.
type part struct {
	src Source
	sub *cache.Subscription // nil for a fed source
	// files is the part's last good projection; nil until known (a
	// taken-over volume before its source answers).
	files   *projection.Payload
	last    *secret.Secret      // the Secret files was projected from
	pending *cache.State        // heard, not yet applied
	fed     *projection.Payload // supplied with SetPart, not yet applied
	changed time.Time           // when the cache saw the pending content
	// failed is why the part last failed to refresh, until it refreshes
	// again: what Config.Report hears after each flush.
	failed error
}

func newSources(v *Volume, srcs []Source, window time.Duration) *sources {
	if window <= 0 {
		window = DefaultWindow
	}
	s := &sources{v: v, window: window}
	for _, src := range srcs {
		s.parts = append(s.parts, &part{src: src})
	}
	return s
}

// mountSources is Mount for a volume of several sources: every Secret is
// read (at once, each through its shared cache entry), each part
// projected, the parts merged (projection.Merge), and the result mounted.
// The first failure in source order refuses the mount: a missing
// non-optional Secret or key (*projection.NotFoundError), an invalid
// Secret, an unreadable source, or two sources giving one path
// (*projection.ConflictError).
func mountSources(ctx context.Context, c *cache.Cache, v *Volume) (*Volume, error) {
	s := v.srcs
	states := s.subscribe(ctx, c, v.cfg.Identity)
	for i, p := range s.parts {
		var err error
		if p.src.Fed != "" {
			p.files = p.src.Files
			if p.files == nil {
				err = fmt.Errorf("%s: no files", p.src.Name())
			}
		} else if p.files, err = firstPayload(&p.src.Spec, states[i]); err == nil {
			p.last = states[i].Secret
		}
		if err != nil {
			s.close()
			return nil, err
		}
	}
	merged, err := s.merge()
	if err == nil {
		err = v.mount(merged)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	v.keepNew()
	v.mu.Lock()
	s.goLive()
	v.mu.Unlock()
	return v, nil
}

// subscribe subscribes every Secret part, all at once, and returns their
// first states (by part index), also left pending for the first flush.
func (s *sources) subscribe(ctx context.Context, c *cache.Cache, id backend.Identity) []cache.State {
	states := make([]cache.State, len(s.parts))
	var wg sync.WaitGroup
	for i, p := range s.parts {
		if p.src.Fed != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub, st := s.subscribeOne(ctx, c, i, id)
			states[i] = st
			s.v.mu.Lock()
			p.sub = sub
			if p.pending == nil { // else a change heard since is newer
				p.pending = &st
			}
			s.v.mu.Unlock()
		}()
	}
	wg.Wait()
	return states
}

// subscribeOne subscribes part i as id: its changes are heard.
func (s *sources) subscribeOne(ctx context.Context, c *cache.Cache, i int, id backend.Identity) (*cache.Subscription, cache.State) {
	spec := &s.parts[i].src.Spec
	ref := backend.Ref{Namespace: spec.Namespace, Name: spec.SecretName}
	cfg := &s.v.cfg
	return c.Subscribe(ctx, ref, id, cfg.Strategy, cfg.TTL, func(st cache.State) { s.heard(i, st) })
}

// heard notes a change of part i; the window opens if it is the first.
func (s *sources) heard(i int, st cache.State) {
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	p := s.parts[i]
	p.pending = &st
	s.arm()
}

// SetPart replaces the files of the volume's fed source i (a provider's
// new reply); like a Secret's change, it switches at the end of the
// window, merged with the others. A volume of one source has no parts.
func (v *Volume) SetPart(i int, files *projection.Payload) error {
	if v.srcs == nil || i < 0 || i >= len(v.srcs.parts) || v.srcs.parts[i].src.Fed == "" {
		return fmt.Errorf("volume %s: no fed source %d", v.dir, i)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.srcs.parts[i].fed = files
	v.srcs.arm()
	return nil
}

// ReportPart tells how the owner's refresh of fed source i went (err
// nil: it succeeded, even with files unchanged, so no SetPart): the part
// counts as failing until then, and Config.Report hears how the whole
// volume follows.
func (v *Volume) ReportPart(i int, err error) {
	if v.srcs == nil || i < 0 || i >= len(v.srcs.parts) {
		return
	}
	v.mu.Lock()
	v.srcs.parts[i].failed = v.srcs.parts[i].fail(err)
	failing := v.srcs.failing(nil)
	v.mu.Unlock()
	v.report(failing)
}

// arm opens the window unless one is open or the volume is not live yet
// (goLive applies what was heard meanwhile).
func (s *sources) arm() {
	if !s.live || s.timer != nil {
		return
	}
	s.timer = time.AfterFunc(s.window, func() {
		s.v.mu.Lock()
		defer s.v.mu.Unlock()
		s.timer = nil
		s.flush()
	})
}

// goLive lets changes switch the volume, and applies what was heard
// before (under v.mu).
func (s *sources) goLive() {
	s.live = true
	s.flush()
}

// flush applies the changes heard since the last switch, under v.mu:
// each changed part projects its latest state (a part that fails keeps
// its last good files and the failure is reported as a failed refresh),
// then the parts merge into one version and the volume switches once. A
// merge that conflicts keeps the last good version and is reported the
// same way. It returns the failures, for Refresh.
func (s *sources) flush() error {
	if !s.live || s.v.fs == nil {
		return nil
	}
	err, failing := s.switchOnce()
	s.v.report(failing)
	return err
}

// switchOnce is flush's work. It also returns why the volume does not
// follow every source now (each failing part, or a conflict), which may
// name a part that failed in an earlier window.
func (s *sources) switchOnce() (err, failing error) {
	var errs []error
	var changed time.Time
	for _, p := range s.parts {
		if err := p.take(); err != nil {
			s.v.keepsLast(p.src.Name(), err)
			errs = append(errs, err)
		} else if !p.changed.IsZero() && (changed.IsZero() || p.changed.Before(changed)) {
			changed = p.changed
		}
		p.changed = time.Time{}
	}
	for _, p := range s.parts {
		if p.files == nil {
			return errors.Join(errs...), s.failing(nil) // taken over, a source not heard yet: show what was shown
		}
	}
	merged, err := s.merge()
	if err != nil {
		s.v.keepsLast("sources", err)
		return errors.Join(append(errs, err)...), s.failing(err)
	}
	if s.v.fs.Shows(merged) {
		return errors.Join(errs...), s.failing(nil)
	}
	if err := s.v.fs.Update(merged); err != nil {
		return errors.Join(append(errs, err)...), s.failing(err)
	}
	if !changed.IsZero() {
		metrics.UpdateSeconds.Observe(time.Since(changed).Seconds())
	}
	s.v.cfg.Logger.Info("volume updated", "mount", s.v.dir, "sources", len(s.parts), "files", len(merged.Files), "bytes", merged.Size())
	return errors.Join(errs...), s.failing(nil)
}

// fail names the part in err, for reports (nil stays nil).
func (p *part) fail(err error) error {
	if err == nil {
		return nil
	}
	return &projection.PartError{Part: p.src.Name(), Err: err}
}

// failing joins why parts fail now with err (the merge's or the switch's).
func (s *sources) failing(err error) error {
	errs := []error{err}
	for _, p := range s.parts {
		errs = append(errs, p.failed)
	}
	return errors.Join(errs...)
}

// take projects the part's pending state or fed files, if any. A state
// with an error and nothing new keeps the last good files, as a volume of
// one Secret does; a missing Secret empties an optional part and fails a
// non-optional one.
func (p *part) take() error {
	if p.fed != nil {
		p.files, p.fed, p.failed = p.fed, nil, nil
		return nil
	}
	if p.pending == nil {
		return nil
	}
	st := *p.pending
	p.pending = nil
	switch {
	case st.Secret == nil && !st.Missing:
		p.failed = p.fail(st.Err) // an error with nothing new: keep serving (the cache logged it)
		return nil
	case st.Secret != nil && p.last != nil && p.files != nil && st.Secret.SameContent(p.last):
		p.failed = nil
		return nil
	}
	files, err := projection.Project(&p.src.Spec, st.Secret)
	if p.failed = p.fail(err); err != nil {
		return err
	}
	p.files, p.last, p.changed = files, st.Secret, st.Changed
	return nil
}

// merge lays every part's files into one version.
func (s *sources) merge() (*projection.Payload, error) {
	parts := make([]projection.Part, len(s.parts))
	for i, p := range s.parts {
		parts[i] = projection.Part{Name: p.src.Name(), Payload: p.files}
	}
	return projection.Merge(parts)
}

// keepsLast reports a failure that leaves the volume on its last good
// version, as a failed refresh of a volume of one Secret is reported (log
// and metric). source names what failed.
func (v *Volume) keepsLast(source string, err error) {
	metrics.RefreshErrors.WithLabelValues(metrics.Result(err)).Inc()
	v.cfg.Logger.Error("volume keeps its last good version", "mount", v.dir, "secret", source, "err", err)
}

// refresh re-reads every Secret part as the strategy says and switches
// at once (no window: the reads are done). Failures keep the last good
// version and are returned for logging.
func (s *sources) refresh(ctx context.Context) error {
	var errs []error
	for i, p := range s.parts {
		if p.sub == nil {
			continue
		}
		st := p.sub.Refresh(ctx)
		if st.Err != nil {
			metrics.RefreshErrors.WithLabelValues(metrics.Result(st.Err)).Inc()
			errs = append(errs, fmt.Errorf("%s: %w", s.parts[i].src.Name(), st.Err))
		}
		s.v.mu.Lock()
		p.pending = &st
		s.v.mu.Unlock()
	}
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	if s.timer != nil && s.timer.Stop() {
		s.timer = nil
	}
	return errors.Join(append(errs, s.flush())...)
}

// resubscribe reads every Secret part as id from now on (see
// Volume.Resubscribe). If a part cannot be read with id, every part
// keeps its old subscription, the failure is reported (Config.Report)
// and returned.
func (s *sources) resubscribe(ctx context.Context, c *cache.Cache, id backend.Identity) error {
	type swap struct {
		p   *part
		sub *cache.Subscription
		st  cache.State
	}
	var swaps []swap
	for i, p := range s.parts {
		if p.sub == nil || p.sub.SetIdentity(id) == nil {
			continue
		}
		sub, st := s.subscribeOne(ctx, c, i, id)
		if st.Secret == nil && !st.Missing {
			// All or nothing: every part keeps its old subscription.
			sub.Close()
			for _, w := range swaps {
				w.sub.Close()
			}
			err := fmt.Errorf("%s: read with the new token: %w", p.src.Name(), st.Err)
			s.v.report(p.fail(st.Err))
			return err
		}
		swaps = append(swaps, swap{p, sub, st})
	}
	s.v.mu.Lock()
	olds := make([]*cache.Subscription, 0, len(swaps))
	for _, w := range swaps {
		olds = append(olds, w.p.sub)
		w.p.sub, w.p.pending = w.sub, &w.st
	}
	s.v.mu.Unlock()
	for _, old := range olds {
		old.Close()
	}
	s.v.cfg.Identity = id
	return s.refresh(ctx)
}

// follow subscribes every Secret part again after a takeover; the volume
// shows what the old process showed until every source is known again.
func (s *sources) follow(ctx context.Context, c *cache.Cache) {
	if c != nil {
		s.subscribe(ctx, c, s.v.cfg.Identity)
	}
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	s.seed()
	s.goLive()
}

// seed gives each part the files it gave to the version the takeover
// shows (projection.Payload.Sources, kept in the keeper's snapshot), so
// that a source failing after a takeover keeps its last good files and
// the others follow, as before it. Bytes are copied: the version's own
// go when it is retired. A snapshot without sources (a release before
// them) leaves the parts to wait for their sources. Under v.mu.
func (s *sources) seed() {
	cur := s.v.fs.Current()
	if cur.Sources == nil {
		return
	}
	files := make([]map[string]projection.File, len(s.parts))
	for path, i := range cur.Sources {
		if i < 0 || i >= len(s.parts) {
			return // not this volume's layout: wait for the sources
		}
		if files[i] == nil {
			files[i] = map[string]projection.File{}
		}
		f := cur.Files[path]
		files[i][path] = projection.File{Mode: f.Mode, Data: bytes.Clone(f.Data)}
	}
	for i, p := range s.parts {
		if p.files == nil {
			p.files = &projection.Payload{Files: files[i]}
			if p.files.Files == nil {
				p.files.Files = map[string]projection.File{}
			}
		}
	}
}

// close ends every subscription and the window (no more switches).
func (s *sources) close() {
	s.v.mu.Lock()
	subs := make([]*cache.Subscription, 0, len(s.parts))
	for _, p := range s.parts {
		if p.sub != nil {
			subs = append(subs, p.sub)
		}
	}
	s.live = false
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.v.mu.Unlock()
	for _, sub := range subs {
		sub.Close()
	}
}
