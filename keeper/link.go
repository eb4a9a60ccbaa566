package keeper

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretfs/secretfs/fusefs"
	"github.com/secretfs/secretfs/keeper/wire"
	"github.com/secretfs/secretfs/metrics"
)

// Timings of a Link.
const (
	// NoticeWait is how long a notice may wait for the keeper before the
	// server writes it itself (fusefs.FS.notify).
	NoticeWait = 100 * time.Millisecond
	// redialMax caps the backoff between dials, so that every mount is
	// registered again within a second of a new keeper accepting.
	redialMax = 400 * time.Millisecond
	// checkEvery is how often an idle connection is checked for a
	// keeper that went away.
	checkEvery = 200 * time.Millisecond
	// quietFor is how long mounts may be unprotected (a publish being
	// registered) before it is logged as an episode.
	quietFor = time.Second
)

// errNoKeeper: no keeper holds the mount now.
var errNoKeeper = errors.New("no keeper holds the mount now")

// Link keeps every mount of one server held by the keeper at a path,
// whatever the keeper does, and keeps the keeper off the server's way:
//
//   - A mount's record is its Journal: a ledger (wire.Ledger) the server
//     writes each version into before the kernel can see it, a local
//     memory write, plus a dup of its /dev/fuse descriptor.
//   - Registration is asynchronous: Journal.Attach returns at once, and
//     one goroutine (Run) registers mounts one at a time, so no publish
//     waits on the keeper and the keeper never sees a burst. A failed
//     registration is tried again until the mount is released.
//   - When the connection ends (the keeper died or was replaced), Run dials
//     again with backoff and registers every mount again; a keeper that
//     starts after the server is met the same way.
//   - Notices go to the keeper, and are written by the server itself when
//     the keeper has not taken them within NoticeWait.
//   - Mounts no keeper holds are counted (metrics.KeeperUnprotected) and
//     logged once per episode.
//
// With a keeper of protocol version 1 (the release before) the ledger's
// content is sent as blobs and every version is Put synchronously, as
// that release did: the keeper is on the update path until it is
// replaced.
type Link struct {
	path, kind string
	log        *slog.Logger

	mu       sync.Mutex
	c        *Client // the keeper connected now; nil while none is
	serial   uint64  // counts connections; a journal held on serial is registered
	vols     map[string]*Journal
	forgets  map[string]bool // released mounts the keeper may still hold
	stopping bool            // the server is terminating (Stop)
	told     uint64          // the serial the keeper was told of stopping on
	since    time.Time       // when mounts became unprotected
	logged   bool            // the episode is logged
	refused  error           // the keeper refused this server: Run ended
	wake     chan struct{}
}

// NewLink makes a link to the keeper at path for records of kind; Run
// connects it.
func NewLink(path, kind string, log *slog.Logger) *Link {
	if log == nil {
		log = slog.Default()
	}
	return &Link{path: path, kind: kind, log: log, vols: map[string]*Journal{},
		forgets: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// Path is the keeper's socket.
func (l *Link) Path() string { return l.path }

// Run connects to the keeper and keeps every mount registered until ctx
// ends, dialling again with backoff whenever the connection ends. A keeper
// that refuses this server (another uid, no common protocol) ends it: the
// mounts stay unprotected and say so.
func (l *Link) Run(ctx context.Context) {
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil {
		c, err := Dial(l.path, l.kind)
		if err != nil {
			var refused *RefusedError
			if errors.As(err, &refused) {
				l.log.Error("the keeper refuses this server: mounts will not survive a restart", "err", err)
				l.mu.Lock()
				l.refused = err
				l.mu.Unlock()
				return
			}
			l.count(err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, redialMax)
			continue
		}
		backoff = 20 * time.Millisecond
		metrics.KeeperConnects.Inc()
		l.mu.Lock()
		l.c = c
		l.serial++
		serial := l.serial
		l.mu.Unlock()
		l.log.Debug("keeper connected", "protocol", c.Version())
		l.serve(ctx, c, serial)
		l.mu.Lock()
		l.c = nil
		l.mu.Unlock()
		c.Close()
		l.count(errors.New("keeper connection ended"))
	}
}

// serve registers and forgets mounts on c until it breaks or ctx ends.
func (l *Link) serve(ctx context.Context, c *Client, serial uint64) {
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	retry := map[*Journal]time.Time{} // failed registrations wait a moment
	for ctx.Err() == nil {
		if !c.alive() {
			return
		}
		job, forget, tell := l.next(serial, retry)
		switch {
		case tell:
			if err := c.stopping(); err != nil {
				continue // alive() tells whether the connection is over
			}
			l.mu.Lock()
			l.told = serial
			l.mu.Unlock()
		case forget != "":
			if err := c.Forget(forget); err == nil {
				l.mu.Lock()
				delete(l.forgets, forget)
				l.mu.Unlock()
			}
		case job != nil:
			err := job.register(c, serial)
			if err != nil {
				metrics.KeeperRegistrations.WithLabelValues("error").Inc()
				retry[job] = time.Now().Add(redialMax)
				l.log.Debug("keeper registration failed; trying again", "mount", job.id, "err", err)
			} else {
				metrics.KeeperRegistrations.WithLabelValues("ok").Inc()
				delete(retry, job)
			}
			l.count(err)
		default:
			select {
			case <-ctx.Done():
			case <-l.wake:
			case <-tick.C:
				l.count(nil)
			}
		}
	}
}

// next picks the next job on connection serial: telling the keeper the
// server is stopping, a forget, then a mount not held yet.
func (l *Link) next(serial uint64, retry map[*Journal]time.Time) (*Journal, string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping && l.told != serial {
		return nil, "", true
	}
	for id := range l.forgets {
		return nil, id, false
	}
	now := time.Now()
	for _, j := range l.vols {
		if j.held != serial && now.After(retry[j]) {
			return j, "", false
		}
	}
	return nil, "", false
}

// poke wakes Run's goroutine.
func (l *Link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Unprotected counts the mounts no keeper holds now.
func (l *Link) Unprotected() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unprotected()
}

func (l *Link) unprotected() int {
	n := 0
	for _, j := range l.vols {
		if l.c == nil || j.held != l.serial {
			n++
		}
	}
	return n
}

// count updates the gauge and logs an episode of unprotected mounts once,
// when it has lasted quietFor, and its end; why says what broke.
func (l *Link) count(why error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.unprotected()
	metrics.KeeperUnprotected.Set(float64(n))
	switch {
	case n == 0:
		if l.logged {
			l.log.Info("every mount is held by the keeper again", "mounts", len(l.vols))
		}
		l.since, l.logged = time.Time{}, false
	case l.since.IsZero():
		l.since = time.Now()
	case !l.logged && time.Since(l.since) > quietFor:
		l.logged = true
		l.log.Warn("mounts no keeper holds: they would not survive a restart of this process until it is back",
			"unprotected", n, "keeper", l.path, "err", why)
	}
}

// List lists the mounts the keeper holds for this kind, waiting up to
// wait for a keeper: at start, before any mount of this process exists,
// so a takeover can serve them again. Run must be running.
func (l *Link) List(ctx context.Context, wait time.Duration) ([]Entry, error) {
	deadline := time.Now().Add(wait)
	for {
		l.mu.Lock()
		c, refused := l.c, l.refused
		l.mu.Unlock()
		if c != nil {
			return c.List()
		}
		if refused != nil {
			return nil, refused
		}
		if time.Now().After(deadline) {
			return nil, errors.New("no keeper at " + l.path + " within " + wait.String())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop is the server's half of a stop that loses no mount (the keeper's is
// at Keeper.drain): it tells the keeper this server is stopping, then
// waits until a keeper, even a stopping one, holds every mount, or ctx
// ends. It reports whether every mount is held.
func (l *Link) Stop(ctx context.Context) bool {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.poke()
	for {
		l.mu.Lock()
		done := l.unprotected() == 0 && l.told == l.serial && l.c != nil
		l.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// notify hands notices to the keeper within NoticeWait, or fails: a keeper
// that is slow, stopped or gone must not hold back an update.
func (l *Link) notify(j *Journal, ns []fusefs.Notice) error {
	// A mount being registered (just published or taken over) waits for
	// it, within the same bound: the keeper, not this process, should
	// write its notices (the exit hazard, fusefs.Notice).
	if !j.WaitHeld(NoticeWait) {
		return errNoKeeper
	}
	l.mu.Lock()
	c, held := l.c, l.c != nil && j.held == l.serial
	l.mu.Unlock()
	if !held {
		return errNoKeeper
	}
	if c.slow() {
		return errors.New("the keeper is slow to answer")
	}
	done := make(chan error, 1)
	go func() { done <- c.notify(j.id, ns) }()
	t := time.NewTimer(NoticeWait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errors.New("the keeper took no notice within " + NoticeWait.String())
	}
}

// legacy is the connection if it speaks only protocol version 1 and holds
// j: it must get every version as a Put.
func (l *Link) legacy(j *Journal) *Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil || l.c.Version() >= 2 || j.held != l.serial {
		return nil
	}
	return l.c
}

// unhold marks j as not held (a Put to a version 1 keeper failed): it is
// registered again whole.
func (l *Link) unhold(j *Journal) {
	l.mu.Lock()
	j.held = 0
	l.mu.Unlock()
	l.poke()
}

// Journal is one mount's record: a ledger written ahead of every switch,
// and the mount's registration with the keeper (fusefs.Journal).
type Journal struct {
	l    *Link
	id   string
	held uint64 // the Link's serial it is registered on; under l.mu

	mu     sync.Mutex // orders ledger writes and registrations that read it
	ledger *wire.Ledger
	head   wire.Head
	meta   []byte
	fd     int // our dup of the mount's /dev/fuse descriptor; -1 until Attach
}

// Journal makes the record of the mount id: with ledger (a takeover's, from
// Entry.Ledger, now the journal's) or a new one. Attach starts it.
func (l *Link) Journal(id string, meta []byte, ledger *wire.Ledger) (*Journal, error) {
	if ledger == nil {
		var err error
		if ledger, err = wire.NewLedger(); err != nil {
			return nil, err
		}
	}
	return &Journal{l: l, id: id, meta: meta, ledger: ledger, fd: -1}, nil
}

// Attach is for fusefs.FS.Attach: under the filesystem's lock it writes
// the snapshot to the ledger and hands the journal to the filesystem; the
// Link registers the mount (fd, of which it keeps a dup) in the background.
func (j *Journal) Attach(fd int) func(fusefs.Snapshot) (fusefs.Journal, error) {
	return func(s fusefs.Snapshot) (fusefs.Journal, error) {
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.fd < 0 {
			dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return nil, err
			}
			j.fd = dup
		}
		j.head = wire.HeadOf(&s)
		ps := []wire.Part{{Data: j.head.Encode()}}
		for i := range s.Versions {
			blob := wire.EncodeVersion(&s.Versions[i])
			defer clear(blob)
			ps = append(ps, wire.Part{Gen: s.Versions[i].Gen, Data: blob})
		}
		if err := j.ledger.Write(ps); err != nil {
			return nil, err
		}
		l := j.l
		l.mu.Lock()
		l.vols[j.id] = j
		delete(l.forgets, j.id) // registering replaces the record anyway
		j.held = 0
		l.mu.Unlock()
		l.poke()
		return j, nil
	}
}

// PublishWait bounds how long a new mount waits for its registration
// (Journal.WaitHeld): with a keeper that answers, registration takes about
// a millisecond, and a mount handed back to kubelet already held is safe
// from a crash a moment later; a keeper that is gone or slow is not waited
// for at all.
const PublishWait = 200 * time.Millisecond

// WaitHeld waits up to wait until the keeper holds the mount, as long as a
// keeper is connected and answering; it reports whether it does.
func (j *Journal) WaitHeld(wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		l := j.l
		l.mu.Lock()
		c, held := l.c, l.c != nil && j.held == l.serial
		l.mu.Unlock()
		switch {
		case held:
			return true
		case c == nil, time.Now().After(deadline):
			return false
		}
		if c.slow() {
			return false // a keeper slow to answer is not waited for
		}
		time.Sleep(time.Millisecond)
	}
}

// SetMeta replaces what the keeper holds about the mount besides its
// versions; the mount is registered again.
func (j *Journal) SetMeta(meta []byte) {
	j.mu.Lock()
	j.meta = meta
	j.mu.Unlock()
	j.l.unhold(j)
}

// Release ends the record: the mount is gone (unmounted on purpose, or from
// outside). The keeper is told to forget it, and the ledger is wiped.
func (j *Journal) Release() {
	l := j.l
	l.mu.Lock()
	if l.vols[j.id] == j {
		delete(l.vols, j.id)
		l.forgets[j.id] = true
	}
	l.mu.Unlock()
	l.poke()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fd >= 0 {
		unix.Close(j.fd)
		j.fd = -1
	}
	if j.ledger != nil {
		j.ledger.Wipe()
		j.ledger.Close()
		j.ledger = nil
	}
}

// register hands the mount to the keeper on c. In protocol version 2 only
// descriptors go (dups, so a Release meanwhile cannot close what is sent),
// and the journal stays free for switches; in version 1 the ledger's
// content goes as blobs under the journal's lock.
func (j *Journal) register(c *Client, serial uint64) error {
	j.mu.Lock()
	if j.ledger == nil {
		j.mu.Unlock()
		return nil // released
	}
	var err error
	if c.Version() >= 2 {
		fd, ferr := unix.FcntlInt(uintptr(j.fd), unix.F_DUPFD_CLOEXEC, 0)
		lfd, lerr := unix.FcntlInt(uintptr(j.ledger.FD()), unix.F_DUPFD_CLOEXEC, 0)
		meta := j.meta
		j.mu.Unlock()
		if err = errors.Join(ferr, lerr); err == nil {
			err = c.registerLedger(j.id, meta, fd, lfd)
		}
		closeFD(fd)
		closeFD(lfd)
	} else {
		err = c.register(j.id, j.meta, j.fd, j.ledger.Parts())
		j.mu.Unlock()
	}
	if err != nil {
		return err
	}
	l := j.l
	l.mu.Lock()
	if l.vols[j.id] == j {
		j.held = serial
	}
	l.mu.Unlock()
	return nil
}

// PutVersion writes v into the ledger with the versions it holds, before
// the kernel can see a node of v (write-ahead): a takeover then never
// meets a node it cannot rebuild, and never shows an older version.
//
// A ledger that cannot take the version (over MaxLedger, no memory) ends
// the record: the keeper forgets the mount rather than hand a later server
// a snapshot that lacks what the kernel may ask for.
func (j *Journal) PutVersion(v fusefs.VersionState) error {
	err := j.put(v)
	if err != nil {
		j.Release()
	}
	return err
}

func (j *Journal) put(v fusefs.VersionState) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ledger == nil {
		return errors.New("journal released")
	}
	blob := wire.EncodeVersion(&v)
	defer clear(blob)
	j.head.Current = v.Gen
	for name := range v.Files {
		j.head.Link(name)
	}
	head := j.head.Encode()
	ps := []wire.Part{{Data: head}}
	for _, p := range j.ledger.Parts()[1:] {
		if p.Gen != v.Gen {
			ps = append(ps, p)
		}
	}
	if err := j.ledger.Write(append(ps, wire.Part{Gen: v.Gen, Data: blob})); err != nil {
		return err
	}
	if c := j.l.legacy(j); c != nil {
		if err := c.put(j.id, v.Gen, blob, head); err != nil {
			j.l.unhold(j)
		}
	}
	return nil
}

// DropVersion removes a version the kernel no longer references.
func (j *Journal) DropVersion(gen uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ledger == nil {
		return
	}
	var ps []wire.Part
	for _, p := range j.ledger.Parts() {
		if p.Gen != gen || p.Gen == 0 {
			ps = append(ps, p)
		}
	}
	if err := j.ledger.Write(ps); err != nil {
		j.l.log.Warn("journal write failed", "mount", j.id, "err", err)
	}
	if c := j.l.legacy(j); c != nil {
		if c.drop(j.id, gen) != nil {
			j.l.unhold(j)
		}
	}
}

// Notify hands notices to the keeper within NoticeWait (see Link).
func (j *Journal) Notify(ns []fusefs.Notice) error { return j.l.notify(j, ns) }

// Forget has the keeper forget a record this server will not serve (a
// takeover that failed), at once when a keeper is connected: the mount's
// connection then ends and the stale-mount cleaning finds it dead.
func (l *Link) Forget(id string) {
	l.mu.Lock()
	c := l.c
	if l.vols[id] != nil {
		l.mu.Unlock()
		return // served again meanwhile
	}
	l.mu.Unlock()
	if c != nil && c.Forget(id) == nil {
		return
	}
	l.mu.Lock()
	l.forgets[id] = true
	l.mu.Unlock()
	l.poke()
}

// Flush waits up to wait until the keeper has heard of every released
// mount (a process that unmounts and exits).
func (l *Link) Flush(wait time.Duration) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		left := len(l.forgets)
		l.mu.Unlock()
		if left == 0 {
			return
		}
		l.poke()
		time.Sleep(5 * time.Millisecond)
	}
}

// Close lets go of a listed record this server does not serve: its
// descriptors and the bytes of its snapshot.
func (e *Entry) Close() {
	closeFD(e.FD)
	e.FD = -1
	if e.Ledger != nil {
		e.Ledger.Close()
		e.Ledger = nil
	}
	e.Snap.Wipe()
}

// slow reports a request to the keeper under way for over half of
// NoticeWait: nothing more is queued behind it.
func (c *Client) slow() bool {
	b := c.busy.Load()
	return b != 0 && time.Since(time.Unix(0, b)) > NoticeWait/2
}
