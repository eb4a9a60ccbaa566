package file

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/secretfs/secretfs/backend"
)

const (
	// debounce coalesces the events of one save (truncate+write, or
	// create+write+rename) into one rescan; maxDelay bounds it under a
	// steady stream of events.
	debounce = 2 * time.Millisecond
	maxDelay = 50 * time.Millisecond
	// settle is how long a Secret must stay gone before Deleted is
	// reported: "cp" over a file truncates it first, and some editors
	// unlink before writing; neither is a deletion.
	settle = 100 * time.Millisecond
	// retry bounds re-adding the watch after the folder vanished.
	minRetry = 10 * time.Millisecond
	maxRetry = time.Second
)

// loop is one run of the shared watcher; it lives while anybody watches.
type loop struct {
	w    *fsnotify.Watcher
	kick chan struct{} // a watcher joined and wants its first report
	stop chan struct{} // the last watcher left
	done chan struct{}
	err  error // why the loop ended by itself; read after done

	logged map[string]string // problem (file or folder) → error text last logged
}

func (b *Backend) join(s *sub) (*loop, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.loop == nil {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			// Out of inotify instances: the cache falls back to polling.
			return nil, fmt.Errorf("file source %s: %w: %w", b.dir, backend.ErrNoWatch, err)
		}
		b.loop = &loop{w: w, kick: make(chan struct{}, 1), stop: make(chan struct{}),
			done: make(chan struct{}), logged: map[string]string{}}
		go b.run(b.loop)
	}
	b.subs[s] = struct{}{}
	select {
	case b.loop.kick <- struct{}{}:
	default:
	}
	return b.loop, nil
}

func (b *Backend) leave(s *sub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, s)
	if len(b.subs) == 0 && b.loop != nil {
		close(b.loop.stop)
		b.loop = nil
	}
}

// run owns the fsnotify watcher: events are debounced into rescans of the
// whole folder, and each scan is compared with what every watcher last saw.
func (b *Backend) run(l *loop) {
	defer close(l.done)
	defer l.w.Close()

	var (
		snap               *scan
		dirty              = true // no scan yet, or events since the last one
		burst              time.Time
		retry              = minRetry
		debT, confT, retrT = stopped(), stopped(), stopped()
	)
	watched := l.w.Add(b.dir) == nil
	if !watched {
		retrT.Reset(retry)
	}
	rescan := func() {
		snap, dirty = b.readDir(), false
		l.logProblems(snap)
		if due := b.report(snap, time.Now()); !due.IsZero() {
			confT.Reset(time.Until(due))
		}
	}
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
			if dirty || !watched {
				rescan()
			} else {
				b.report(snap, time.Now()) // reports only to newcomers
			}
		case _, ok := <-l.w.Events:
			if !ok {
				l.fail(b, errors.New("fsnotify watcher closed"))
				return
			}
			now := time.Now()
			if !dirty {
				dirty, burst = true, now
			}
			debT.Reset(min(debounce, burst.Add(maxDelay).Sub(now)))
		case err, ok := <-l.w.Errors:
			if !ok {
				l.fail(b, errors.New("fsnotify watcher closed"))
				return
			}
			// Typically a queue overflow: events were lost, so rescan.
			slog.Warn("file source: watch error, rescanning", "dir", b.dir, "err", err)
			dirty = true
			debT.Reset(debounce)
		case <-debT.C:
			rescan()
			// The folder was removed or moved away: inotify dropped the
			// watch. Keep trying to add it back.
			if watched && len(l.w.WatchList()) == 0 {
				watched, retry = false, minRetry
				retrT.Reset(retry)
			}
		case <-confT.C:
			rescan()
		case <-retrT.C:
			if l.w.Add(b.dir) == nil {
				watched = true
			} else {
				retry = min(2*retry, maxRetry)
				retrT.Reset(retry)
			}
			rescan()
		}
	}
}

func stopped() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// fail ends the loop by itself; the Watch calls return err.
func (l *loop) fail(b *Backend, err error) {
	l.err = err
	b.mu.Lock()
	if b.loop == l {
		b.loop = nil
	}
	b.mu.Unlock()
}

// report tells every watcher whose Secret changed. A Secret that vanished
// is reported as Deleted only once it has stayed gone for settle; report
// returns when to look again for that (zero: no need).
func (b *Backend) report(s *scan, now time.Time) (recheck time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sb := range b.subs {
		v := newView(s.lookup(sb.ref))
		if !v.missing {
			sb.goneSince = time.Time{}
		}
		if sb.reported && v.same(sb.last) {
			continue
		}
		if sb.reported && v.missing {
			if sb.goneSince.IsZero() {
				sb.goneSince = now
			}
			if due := sb.goneSince.Add(settle); now.Before(due) {
				if recheck.IsZero() || due.Before(recheck) {
					recheck = due
				}
				continue
			}
		}
		sb.last, sb.reported = v, true
		sb.post(v.event())
	}
	return recheck
}

// logProblems logs an unreadable folder or broken manifest once per
// change. Messages name files and reasons; parse errors never carry values.
func (l *loop) logProblems(s *scan) {
	now := map[string]string{}
	if s.dirErr != nil {
		now[s.dir] = s.dirErr.Error()
	}
	for f, err := range s.broken {
		now[f] = err.Error()
	}
	for f, msg := range now {
		if l.logged[f] != msg {
			slog.Warn("file source: cannot read manifests; Secrets there keep their last good version", "file", f, "err", msg)
		}
	}
	for f := range l.logged {
		if _, ok := now[f]; !ok {
			slog.Info("file source: manifests readable again", "file", f)
		}
	}
	l.logged = now
}
