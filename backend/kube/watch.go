package kube

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/secretfs/secretfs/backend"
)

// Watch reports every change of the Secret to fn until ctx is done, then
// returns ctx.Err(). The first report is the current state. Failures
// (RBAC, apiserver down, an invalid Secret) are reported as Event.Err and
// retried with backoff; expired resourceVersions (410 Gone) are relisted
// and closed streams resumed, so the caller never has to restart it. It
// returns an error wrapping backend.ErrNoWatch, after reporting the state,
// when the identity may get the Secret but not list/watch it.
func (b *Backend) Watch(ctx context.Context, ref backend.Ref, fn func(backend.Event)) error {
	c, err := b.client(ref)
	if err != nil {
		return err
	}
	w := &watcher{b: b, ref: ref, fn: fn, api: c.CoreV1().Secrets(ref.Namespace),
		sel: fields.OneTermEqualSelector("metadata.name", ref.Name).String()}
	return w.run(ctx)
}

type watcher struct {
	b   *Backend
	ref backend.Ref
	fn  func(backend.Event)
	api typedcorev1.SecretInterface
	sel string

	rv    string // where the next watch resumes; "" means list first
	last  string // what fn heard last (see report), to skip repeats after a relist
	delay time.Duration
}

func (w *watcher) run(ctx context.Context) error {
	w.delay = w.b.opts.MinBackoff
	for ctx.Err() == nil {
		if w.rv == "" {
			if err := w.list(ctx); err != nil {
				if errors.Is(err, backend.ErrNoWatch) {
					return err
				}
				w.fail(ctx, err)
				continue
			}
		}
		if err := w.watch(ctx); err != nil {
			w.fail(ctx, err)
		}
	}
	return ctx.Err()
}

// list reports the current state and sets the resourceVersion to watch from.
func (w *watcher) list(ctx context.Context) error {
	l, err := w.api.List(ctx, metav1.ListOptions{FieldSelector: w.sel})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return w.getInstead(ctx, err)
		}
		return apiError(w.ref, "list", err)
	}
	w.delay = w.b.opts.MinBackoff
	w.rv = l.ResourceVersion
	if len(l.Items) == 0 {
		w.report("deleted", backend.Event{Deleted: true})
	} else {
		w.object(&l.Items[0])
	}
	return nil
}

// getInstead handles a refused list: a Role may grant get but not
// list/watch. Then the cache has to poll; otherwise the refusal stands.
func (w *watcher) getInstead(ctx context.Context, listErr error) error {
	s, err := w.b.Get(ctx, w.ref)
	switch {
	case err == nil:
		w.report("rv:"+s.ResourceVersion, backend.Event{Secret: s})
	case errors.Is(err, backend.ErrNotFound):
		w.report("deleted", backend.Event{Deleted: true})
	default:
		return apiError(w.ref, "list", listErr)
	}
	return fmt.Errorf("secret %s: %s may get but not list/watch it: %w",
		w.ref, identity(w.ref, listErr), backend.ErrNoWatch)
}

// watch follows changes from w.rv until the stream ends. A nil error with
// w.rv cleared asks for a relist.
func (w *watcher) watch(ctx context.Context) error {
	timeout := int64(w.watchTimeout().Seconds())
	wi, err := w.api.Watch(ctx, metav1.ListOptions{FieldSelector: w.sel, ResourceVersion: w.rv,
		AllowWatchBookmarks: true, TimeoutSeconds: &timeout})
	if err != nil {
		if isGone(err) {
			w.rv = ""
			return nil
		}
		return apiError(w.ref, "watch", err)
	}
	defer wi.Stop()
	start, got := time.Now(), false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-wi.ResultChan():
			if !ok {
				// Timed out, or the apiserver went away: resume from
				// w.rv. A stream that ends at once, twice in a row,
				// would spin: slow it down quietly.
				if !got && time.Since(start) < time.Second {
					w.pause(ctx)
				}
				return nil
			}
			got = true
			if err := w.event(ev); err != nil {
				return err
			}
			if w.rv == "" {
				return nil
			}
		}
	}
}

func (w *watcher) event(ev watch.Event) error {
	if ev.Type == watch.Error {
		err := apierrors.FromObject(ev.Object)
		if isGone(err) {
			w.b.log.Debug("watch expired, relisting", "secret", w.ref.String())
			w.rv = ""
			return nil
		}
		return apiError(w.ref, "watch", err)
	}
	obj, ok := ev.Object.(*corev1.Secret)
	if !ok {
		return fmt.Errorf("secret %s: watch: unexpected object %T", w.ref, ev.Object)
	}
	w.rv = obj.ResourceVersion
	w.delay = w.b.opts.MinBackoff
	switch ev.Type {
	case watch.Added, watch.Modified:
		w.object(obj)
	case watch.Deleted:
		w.report("deleted", backend.Event{Deleted: true})
	}
	return nil // Bookmark: only the resourceVersion moves
}

func (w *watcher) object(obj *corev1.Secret) {
	s, err := convert(obj)
	if err != nil {
		w.report("invalid:"+obj.ResourceVersion, backend.Event{Err: err})
		return
	}
	w.report("rv:"+obj.ResourceVersion, backend.Event{Secret: s})
}

// report tells fn unless it already heard the same thing: a relist after a
// 410 or an outage finds the object it already reported.
func (w *watcher) report(key string, ev backend.Event) {
	if key == w.last {
		return
	}
	w.last = key
	w.fn(ev)
}

// fail reports err, waits with backoff, and relists afterwards so that the
// caller hears a fresh state once the failure is over.
func (w *watcher) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	w.b.log.Debug("watch failed, retrying", "secret", w.ref.String(), "err", err, "in", w.delay)
	w.report("err:"+err.Error(), backend.Event{Err: err})
	w.rv = ""
	w.pause(ctx)
}

// pause waits for the backoff delay and doubles it. Jitter: many watches
// of one apiserver fail together and should not come back together.
func (w *watcher) pause(ctx context.Context) {
	d := w.delay/2 + rand.N(w.delay/2+1)
	w.delay = min(2*w.delay, w.b.opts.MaxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (w *watcher) watchTimeout() time.Duration {
	if t := w.b.opts.WatchTimeout; t > 0 {
		return t
	}
	return 5*time.Minute + rand.N(5*time.Minute)
}

func isGone(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}
