package mounted

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/cache"
	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/keeper"
	"github.com/secretfs/secretfs/keeper/wire"
	"github.com/secretfs/secretfs/metrics"
	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secret"
)

// ErrUnavailable is wrapped when the backend cannot be read and nothing is
// cached yet.
var ErrUnavailable = errors.New("secret source unavailable")

// Config describes one volume.
type Config struct {
	Spec     projection.Spec
	Identity backend.Identity // read as this (a pod's service account and tokens); zero = our own
	Strategy cache.Strategy
	TTL      time.Duration
	FS       fusefs.Options
	Logger   *slog.Logger
	// OnUnmount is called once the mount is gone, however it went.
	OnUnmount func()
	// Keeper, when set, holds the mount's descriptor and journal so the
	// mount survives this process (registered under Dir with Meta).
	Keeper *keeper.Link
	Meta   []byte
	// Sources, when set, make a volume of several sources (a projected
	// volume's `sources`, sources.go): each is followed and any change
	// switches the whole volume, changes within Window (default
	// DefaultWindow) in one switch. Spec then only names the volume.
	Sources []Source
	Window  time.Duration
	// Report, when set, hears the outcome of every refresh of the
	// mounted volume (package events writes them on the Pod).
	Report Reporter
}

// Reporter hears whether a mounted volume follows its source. Failed:
// a refresh failed and the volume keeps its last good version (the
// Secret deleted, invalid, its reading refused, the source unreachable);
// Followed: a refresh succeeded, so a reporter can tell a recovery.
// Neither is called before the mount exists (a first read refuses the
// mount instead). Calls may come from several goroutines.
type Reporter interface {
	Failed(err error)
	Followed()
}

// Volume is one mounted, live volume.
type Volume struct {
	cfg Config
	dir string
	fs  *fusefs.FS
	sub *cache.Subscription // nil for a volume fed by Set

	mu   sync.Mutex // orders switches
	last *secret.Secret

	journal *keeper.Journal // with a keeper: the mount's record
	taken   *wire.Ledger    // between Restore and Follow: the keeper's ledger

	srcs *sources // a volume of several sources (Config.Sources); nil otherwise
}

// Mount reads the Secret through c, checks it projects, mounts it at dir
// and follows its changes. Errors: *projection.NotFoundError for a missing
// Secret or key (not optional), *secret.InvalidError for an invalid Secret,
// ErrUnavailable (wrapped) when the source cannot be read, and the
// backend's own (e.g. backend.ErrForbidden). With cfg.Sources it mounts a
// volume of several sources (mountSources), which may also fail with a
// *projection.ConflictError.
func Mount(ctx context.Context, c *cache.Cache, dir string, cfg Config) (*Volume, error) {
	v := newVolume(dir, cfg)
	if v.srcs != nil {
		return mountSources(ctx, c, v)
	}
	ref := backend.Ref{Namespace: cfg.Spec.Namespace, Name: cfg.Spec.SecretName}
	var sub *cache.Subscription
	ready := make(chan struct{})
	sub, st := c.Subscribe(ctx, ref, cfg.Identity, cfg.Strategy, cfg.TTL, func(st cache.State) {
		<-ready // the first state is applied by Mount itself
		v.follow(st)
	})
	p, err := v.first(st)
	if err != nil {
		sub.Close()
		close(ready)
		return nil, err
	}
	v.sub = sub
	if err := v.mount(p); err != nil {
		sub.Close()
		close(ready)
		return nil, err
	}
	v.last = st.Secret
	v.keepNew()
	close(ready)
	return v, nil
}

// Resume takes over a mount a keeper held for a process that is gone: the
// filesystem is rebuilt from the snapshot, served on the handed-over
// descriptor, registered again and kept fresh like any other. It is where
// both takeovers (csi.Driver.Resume for the plugin, mountOrResume in
// cmd/secretfs for `secretfs mount --keeper`) meet. A takeover, in order:
//
//  1. Register: the server's keeper.Link dials the keeper (keeper.Dial:
//     each end checks the other's uid with SO_PEERCRED, and they settle
//     the protocol version and the connection's record kind, csi or
//     mount), and dials again whenever the keeper goes. Every mount made
//     with Config.Keeper has a keeper.Journal (keep): fusefs.FS.Attach
//     writes a Snapshot of every version the kernel may still reference
//     into the journal's ledger (a memfd), and the Link registers the
//     mount in the background, sending the ledger with a dup of the
//     /dev/fuse descriptor, and again to every new keeper. From then on
//     each version is written to the ledger before the kernel can see it
//     (PutVersion, a local memory write, so the keeper is never on the
//     update path) and dropped after its release (DropVersion); the
//     keeper writes the mount's notices to the kernel (Notify) when it
//     takes them within 100 ms, so this process rarely writes to its own
//     mount (the exit hazard: fusefs.Notice).
//  2. Crash or stop: the serving process dies (SIGKILL, panic) or stops
//     for an upgrade (SIGTERM: keeper.Link.Stop waits until a keeper
//     holds every mount, fusefs.Quiesce, then Handover answers what was
//     read and stops reading). The kernel keeps the connection, because
//     the keeper's descriptor holds it open; requests wait in its queue,
//     and those a crashed server had read but not answered stay in its
//     processing queue.
//  3. Reconnect: the next process lists the keeper's records of its kind
//     (keeper.Link.List: descriptor, Meta, ledger and the Snapshot read
//     from it, per mount) and calls Resume for each mount it owns
//     (csi.Driver.Resume first checks each record's target with the
//     target guard); fusefs.Restore rebuilds every version with its
//     generation and name, so every node ID the kernel holds means what
//     it meant.
//  4. RESEND: fusefs.FS.Serve writes FUSE_NOTIFY_RESEND, and the kernel
//     queues again the requests the dead server had read; a kernel before
//     6.9 has no RESEND: the mount is taken over anyway and those
//     requests are counted (fusefs countUnanswered).
//  5. Serve: a go-fuse server reads the connection again (serve; with
//     PollReads it waits in the netpoller and reads the held descriptor
//     itself, so a later crash again leaves unanswered requests to
//     resend). keep goes on with the same ledger, Reconcile replays the
//     notices of switches the dead server may not have delivered, and the
//     volume subscribes to the cache again; until the source answers it
//     shows what the old process showed. Resume is Restore (up to
//     serving) then Follow (the rest); csi.Driver.Resume restores every
//     held mount before any follows, so readers wait only for their own.
func Resume(ctx context.Context, c *cache.Cache, e keeper.Entry, cfg Config) (*Volume, error) {
	v, err := Restore(e, cfg)
	if err != nil {
		return nil, err
	}
	v.Follow(ctx, c)
	return v, nil
}

// Restore is the first half of Resume, up to serving the mount again
// (steps 3 to 5 but the last sentence). A takeover of many mounts restores
// them all first and then Follows each: readers wait only until their
// mount is served.
func Restore(e keeper.Entry, cfg Config) (*Volume, error) {
	v := newVolume(e.ID, cfg)
	fs, err := fusefs.Restore(v.cfg.FS, e.Snap)
	e.Snap.Wipe() // Restore copied what it needs
	if err != nil {
		closeFD(e.FD)
		if e.Ledger != nil {
			e.Ledger.Close()
		}
		return nil, fmt.Errorf("take over %s: %w", e.ID, err)
	}
	if err := fs.Serve(e.FD, e.ID); err != nil {
		closeFD(e.FD)
		if e.Ledger != nil {
			e.Ledger.Close()
		}
		return nil, err
	}
	v.fs = fs
	v.taken = e.Ledger
	metrics.Mounts.Inc()
	return v, nil
}

// Follow is the second half of Resume: the journal goes on with the
// keeper (the taken-over ledger), the notices the dead server may have
// missed are replayed, and the volume follows its Secret through c again
// (nil: a volume fed by Set).
func (v *Volume) Follow(ctx context.Context, c *cache.Cache) {
	v.keep(v.taken)
	v.taken = nil
	v.fs.Reconcile()
	if v.srcs != nil {
		v.srcs.follow(ctx, c)
		return
	}
	if c == nil {
		return
	}
	cfg := v.cfg
	ref := backend.Ref{Namespace: cfg.Spec.Namespace, Name: cfg.Spec.SecretName}
	ready := make(chan struct{})
	sub, st := c.Subscribe(ctx, ref, cfg.Identity, cfg.Strategy, cfg.TTL, func(st cache.State) {
		<-ready
		v.follow(st)
	})
	v.sub = sub
	close(ready)
	// What the old process showed stays until the source answers; a
	// failure here is the backend being unreachable, not a reason to drop
	// a mount that Pods are reading.
	v.follow(st)
}

// keepNew is keep for a new mount: it also waits (keeper.PublishWait at
// most, and only for a keeper that answers) until the keeper holds it, so
// that a publish answered OK is safe from a crash of this process a
// moment later.
func (v *Volume) keepNew() {
	v.keep(nil)
	v.mu.Lock()
	j := v.journal
	v.mu.Unlock()
	if j != nil {
		j.WaitHeld(keeper.PublishWait)
	}
}

// keep gives the mount a journal and has the keeper hold it, if there is
// a keeper; ledger is a takeover's (nil: a new one).
func (v *Volume) keep(ledger *wire.Ledger) {
	k := v.cfg.Keeper
	if k == nil {
		return
	}
	j, err := k.Journal(v.dir, v.cfg.Meta, ledger)
	if err == nil {
		err = v.fs.Attach(j.Attach(v.fs.FD()))
	}
	if err != nil {
		v.cfg.Logger.Warn("no journal for the keeper; this mount will not survive a restart", "mount", v.dir, "err", err)
		if j != nil {
			j.Release()
		}
		return
	}
	v.mu.Lock()
	v.journal = j
	v.mu.Unlock()
}

// setMeta replaces what the keeper holds about the volume.
func (v *Volume) setMeta(meta []byte) {
	v.mu.Lock()
	v.cfg.Meta = meta
	j := v.journal
	v.mu.Unlock()
	if j != nil {
		j.SetMeta(meta)
	}
}

// release ends the volume's keeper record (the mount is gone).
func (v *Volume) release() {
	v.mu.Lock()
	j := v.journal
	v.journal = nil
	v.mu.Unlock()
	if j != nil {
		v.fs.DropJournal()
		j.Release()
	}
}

// MountStatic mounts a Secret that its owner supplies and updates with Set
// (the CSI request's own `secrets`); nil means missing.
func MountStatic(dir string, cfg Config, s *secret.Secret) (*Volume, error) {
	v := newVolume(dir, cfg)
	p, err := projection.Project(&cfg.Spec, s)
	if err != nil {
		return nil, err
	}
	if err := v.mount(p); err != nil {
		return nil, err
	}
	v.last = s
	v.keepNew()
	return v, nil
}

func newVolume(dir string, cfg Config) *Volume {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.FS.Logger = cfg.Logger
	v := &Volume{dir: dir}
	gone := cfg.OnUnmount
	cfg.FS.OnUnmount = func() {
		metrics.Mounts.Dec()
		v.release()
		if gone != nil {
			gone()
		}
	}
	v.cfg = cfg
	if len(cfg.Sources) > 0 {
		v.srcs = newSources(v, cfg.Sources, cfg.Window)
	}
	return v
}

func (v *Volume) mount(p *projection.Payload) error {
	fs, err := fusefs.New(v.cfg.FS, p)
	if err != nil {
		return err
	}
	if err := fs.Mount(v.dir); err != nil {
		return err
	}
	v.fs = fs
	metrics.Mounts.Inc()
	return nil
}

// first turns the first cache state into the payload to mount, or the
// error that refuses the mount.
func (v *Volume) first(st cache.State) (*projection.Payload, error) {
	return firstPayload(&v.cfg.Spec, st)
}

// firstPayload projects spec's first cache state, or says why it cannot.
func firstPayload(spec *projection.Spec, st cache.State) (*projection.Payload, error) {
	var invalid *secret.InvalidError
	switch {
	case st.Secret != nil:
		return projection.Project(spec, st.Secret)
	case st.Missing:
		return projection.Project(spec, nil) // empty if optional, else NotFoundError
	case errors.As(st.Err, &invalid), errors.Is(st.Err, backend.ErrForbidden):
		return nil, st.Err
	case st.Err != nil:
		return nil, fmt.Errorf("secret %q: %w: %w", spec.Ref(), ErrUnavailable, st.Err)
	}
	return nil, fmt.Errorf("secret %q: %w", spec.Ref(), ErrUnavailable)
}

// follow applies what the cache tells: a change, a new error of the
// entry (the cache counted and logged it) or its recovery.
func (v *Volume) follow(st cache.State) {
	if v.fs == nil {
		return // the mount failed; the subscription is closing
	}
	if st.Err != nil {
		v.report(st.Err)
		return
	}
	switched, err := v.apply(st.Secret, st.Missing)
	if err != nil {
		v.cfg.Logger.Error("volume keeps its last good version", "mount", v.dir, "secret", v.cfg.Spec.Ref(), "err", err)
	}
	v.report(err)
	if switched && !st.Changed.IsZero() {
		metrics.UpdateSeconds.Observe(time.Since(st.Changed).Seconds())
	}
}

// report tells Config.Report how a refresh went (err nil: it succeeded).
func (v *Volume) report(err error) {
	switch r := v.cfg.Report; {
	case r == nil:
	case err != nil:
		r.Failed(err)
	default:
		r.Followed()
	}
}

// apply switches to the version of s and says whether it did. A missing
// Secret empties an optional volume; a non-optional one keeps its last
// good version and the error is returned.
func (v *Volume) apply(s *secret.Secret, missing bool) (switched bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s == nil && !missing {
		return false, nil // an error with nothing new: keep serving
	}
	if s != nil && v.last != nil && s.SameContent(v.last) {
		return false, nil
	}
	p, err := projection.Project(&v.cfg.Spec, s)
	if err != nil {
		metrics.RefreshErrors.WithLabelValues(metrics.Result(err)).Inc()
		return false, err
	}
	if v.fs.Shows(p) {
		v.last = s
		return false, nil // e.g. a taken-over mount already showing this
	}
	if err := v.fs.Update(p); err != nil {
		return false, err
	}
	v.last = s
	v.cfg.Logger.Info("volume updated", "mount", v.dir, "secret", v.cfg.Spec.Ref(), "files", len(p.Files), "bytes", p.Size())
	return true, nil
}

// Refresh re-reads the Secret as the strategy says (Get: now; Cache: if
// the TTL expired; Watch: nothing to do) and applies it. On failure the
// last good version stays and the error is returned for logging; either
// way Config.Report hears the outcome.
func (v *Volume) Refresh(ctx context.Context) error {
	if v.srcs != nil {
		return v.srcs.refresh(ctx) // flush reports
	}
	if v.sub == nil {
		return nil
	}
	err := v.refresh(ctx)
	v.report(err)
	return err
}

func (v *Volume) refresh(ctx context.Context) error {
	st := v.sub.Refresh(ctx)
	if _, err := v.apply(st.Secret, st.Missing); err != nil {
		return err
	}
	if st.Err != nil {
		metrics.RefreshErrors.WithLabelValues(metrics.Result(st.Err)).Inc()
		return st.Err
	}
	return nil
}

// Resubscribe reads the Secret as id from now on (a pod's fresh tokens)
// and applies what the entry holds; meta replaces what the keeper holds
// about the volume. Tokens of the same service account replace this
// volume's in its cache entry (no second entry or watch); only another
// identity subscribes anew, the old subscription ending. Config.Report
// hears the outcome.
func (v *Volume) Resubscribe(ctx context.Context, c *cache.Cache, id backend.Identity, meta []byte) error {
	if v.srcs != nil {
		if meta != nil {
			v.setMeta(meta)
		}
		return v.srcs.resubscribe(ctx, c, id) // flush reports
	}
	err := v.resubscribe(ctx, c, id, meta)
	v.report(err)
	return err
}

func (v *Volume) resubscribe(ctx context.Context, c *cache.Cache, id backend.Identity, meta []byte) error {
	if v.sub != nil {
		if err := v.sub.SetIdentity(id); err == nil {
			v.cfg.Identity = id
			if meta != nil {
				v.setMeta(meta)
			}
			return v.refresh(ctx)
		}
	}
	ref := backend.Ref{Namespace: v.cfg.Spec.Namespace, Name: v.cfg.Spec.SecretName}
	ready := make(chan struct{})
	sub, st := c.Subscribe(ctx, ref, id, v.cfg.Strategy, v.cfg.TTL, func(st cache.State) {
		<-ready
		v.follow(st)
	})
	if st.Secret == nil && !st.Missing {
		sub.Close()
		close(ready)
		return fmt.Errorf("read with the new token: %w", st.Err)
	}
	old := v.sub
	v.sub, v.cfg.Identity = sub, id
	close(ready)
	if old != nil {
		old.Close()
	}
	if meta != nil {
		v.setMeta(meta)
	}
	_, err := v.apply(st.Secret, st.Missing)
	return err
}

// Set replaces the Secret of a volume mounted with MountStatic;
// Config.Report hears the outcome.
func (v *Volume) Set(s *secret.Secret) error {
	_, err := v.apply(s, s == nil)
	v.report(err)
	return err
}

// Report tells Config.Report how a refresh made by the volume's owner
// went (err nil: it succeeded): a provider's refresh of a MountPayload
// volume, whose equal files cause no SetPayload, or a republish whose
// nodePublishSecretRef data is not a valid Secret. A failed one left the
// last good version.
func (v *Volume) Report(err error) { v.report(err) }

// Unmount stops following the Secret and detaches the filesystem (lazily
// when busy; the data goes when the last open file closes).
func (v *Volume) Unmount() error {
	v.stopFollowing()
	err := v.fs.Unmount()
	v.release() // the keeper forgets it (Link: in the background)
	return err
}

// Abandon stops following the Secret without unmounting, for a planned
// restart with a keeper: the next process takes the mount over. Handover
// then stops serving it.
func (v *Volume) Abandon() { v.stopFollowing() }

func (v *Volume) stopFollowing() {
	if v.sub != nil {
		v.sub.Close()
	}
	if v.srcs != nil {
		v.srcs.close()
	}
}

// Handover stops serving the mount for the next process, answering every
// request read (fusefs.FS.Handover); call fusefs.Quiesce first.
func (v *Volume) Handover(wait time.Duration) bool { return v.fs.Handover(wait) }

// Done is closed once the mount is gone, however it went.
func (v *Volume) Done() <-chan struct{} { return v.fs.Done() }

// Dir is where the volume is mounted.
func (v *Volume) Dir() string { return v.dir }

func closeFD(fd int) {
	if fd >= 0 {
		syscall.Close(fd)
	}
}
