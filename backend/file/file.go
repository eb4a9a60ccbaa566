package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/secret"
)

// Backend reads Secrets from the manifests directly in one folder.
type Backend struct {
	dir string

	parsed parsedFiles
	warned warnings
	scans  scans // Gets share folder reads

	mu   sync.Mutex
	subs map[*sub]struct{}
	loop *loop // nil while nobody watches
}

var _ backend.Backend = (*Backend)(nil)

// New returns the source for dir, which must be a folder now; later it may
// vanish and come back (that reads as "unreachable" meanwhile).
func New(dir string) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("file source: empty folder name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file source %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("file source %s: not a folder", abs)
	}
	return &Backend{dir: abs, subs: map[*sub]struct{}{}}, nil
}

// Get reads the folder now. The Secret found once is returned (or its
// *secret.InvalidError); twice is an error wrapping ErrDuplicate naming both
// files; not found is backend.ErrNotFound only when the folder was read and
// every manifest parsed, otherwise ErrUnreachable naming the culprit.
func (b *Backend) Get(ctx context.Context, ref backend.Ref) (*secret.Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return b.freshScan().lookup(ref)
}

// Watch reports the state of ref to fn, first the current one and then
// every change, until ctx is done (it then returns ctx.Err()). A broken
// manifest or a vanished folder is reported as Event.Err, never as Deleted.
// If inotify is unavailable it returns an error wrapping backend.ErrNoWatch.
func (b *Backend) Watch(ctx context.Context, ref backend.Ref, fn func(backend.Event)) error {
	s := &sub{ref: ref, wake: make(chan struct{}, 1)}
	l, err := b.join(s)
	if err != nil {
		return err
	}
	defer b.leave(s)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			return fmt.Errorf("file source %s: %w", b.dir, l.err)
		case <-s.wake:
			// fn runs here, in the watcher's own goroutine, so a slow
			// consumer delays nobody else; the loop only leaves a note.
			if ev, ok := s.take(); ok && ctx.Err() == nil {
				fn(ev)
			}
		}
	}
}

// sub is one Watch call. last and reported belong to the loop (under
// Backend.mu); pending is the mailbox between the loop and Watch.
type sub struct {
	ref       backend.Ref
	last      view
	reported  bool
	goneSince time.Time // first scan that found it missing, not yet reported

	wake    chan struct{}
	mu      sync.Mutex
	pending *backend.Event
}

// post leaves ev for the Watch goroutine; an unread older state is
// replaced, since only the latest state matters.
func (s *sub) post(ev backend.Event) {
	s.mu.Lock()
	s.pending = &ev
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sub) take() (backend.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.pending
	s.pending = nil
	if ev == nil {
		return backend.Event{}, false
	}
	return *ev, true
}

// view is what one Secret looks like in one scan.
type view struct {
	sec     *secret.Secret
	missing bool
	err     error
}

func newView(sec *secret.Secret, err error) view {
	if errors.Is(err, backend.ErrNotFound) {
		return view{missing: true}
	}
	return view{sec: sec, err: err}
}

func (v view) same(o view) bool {
	return v.missing == o.missing && errText(v.err) == errText(o.err) && v.sec.SameContent(o.sec)
}

func (v view) event() backend.Event {
	return backend.Event{Secret: v.sec, Deleted: v.missing, Err: v.err}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
