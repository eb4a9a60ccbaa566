package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/secretfs/secretfs/backend"
)

// Watch reports every change of the Secret to fn until ctx is done, then
// returns ctx.Err(). The first report is the current state.
//
// One Watch is one list and one watch stream of the one Secret (field
// selector metadata.name=NAME):
//  1. list reports the current state and gives the resourceVersion;
//  2. client-go's RetryWatcher follows from it, resuming from the last
//     resourceVersion whenever a request ends (WatchTimeout) or the
//     stream breaks, so a quiet Secret costs one watch request per timeout;
//  3. an expired resourceVersion (410 Gone) relists (step 1) at once.
//
// Every request after the first list and watch asks ref.Rewatch (if set)
// for the token to send: the caller's freshest then.
//
// Any other failure ends Watch with its error, after nothing was reported
// for it: the caller (the cache) retries with its own backoff, shared by
// every volume of the entry, or with another token when the error wraps
// backend.ErrForbidden. An invalid version of the Secret is reported as
// Event.Err and the watch carries on. When the identity may get the
// Secret but not list/watch it, Watch reports the state once and returns
// an error wrapping backend.ErrNoWatch.
func (b *Backend) Watch(ctx context.Context, ref backend.Ref, fn func(backend.Event)) error {
	w := &watcher{b: b, ref: ref, fn: fn, sel: fields.OneTermEqualSelector("metadata.name", ref.Name).String()}
	if err := w.use(ref.Token); err != nil {
		return err
	}
	for relist := false; ; relist = true {
		if err := w.rewatch(relist); err != nil {
			return err
		}
		rv, err := w.list(ctx)
		if err == nil {
			err = w.follow(ctx, rv)
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errRelist):
			w.b.log.Debug("watch expired, relisting", "secret", ref.String())
			continue
		}
		return err
	}
}

// errRelist ends one follow when the resourceVersion expired.
var errRelist = errors.New("resourceVersion expired")

type watcher struct {
	b   *Backend
	ref backend.Ref // Token: the one the next request sends
	fn  func(backend.Event)
	api typedcorev1.SecretInterface
	sel string

	last string // what fn heard last (see report), to skip repeats after a relist
}

// use makes the next requests send token.
func (w *watcher) use(token string) error {
	w.ref.Token = token
	c, err := w.b.client(w.ref)
	if err != nil {
		return err
	}
	w.api = c.CoreV1().Secrets(w.ref.Namespace)
	return nil
}

// rewatch switches to the caller's freshest token before a further
// request (again false: the first, which uses ref.Token).
func (w *watcher) rewatch(again bool) error {
	if !again || w.ref.Rewatch == nil {
		return nil
	}
	tok, ok := w.ref.Rewatch()
	if !ok {
		return fmt.Errorf("secret %s: %w: no token is left to watch with", w.ref, backend.ErrForbidden)
	}
	return w.use(tok)
}

// list reports the current state and returns the resourceVersion to
// watch from.
func (w *watcher) list(ctx context.Context) (string, error) {
	l, err := w.api.List(ctx, metav1.ListOptions{FieldSelector: w.sel})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return "", w.getInstead(ctx, err)
		}
		return "", apiError(w.ref, "list", err)
	}
	if len(l.Items) == 0 {
		w.report("deleted", backend.Event{Deleted: true})
	} else {
		w.object(&l.Items[0])
	}
	return l.ResourceVersion, nil
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

// follow runs a RetryWatcher from rv until ctx is done or a failure it
// must not hide: the returned error is errRelist, the API's error
// (mapped), or nil when ctx ended.
func (w *watcher) follow(ctx context.Context, rv string) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	again := false // the first watch follows the list with its token
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		if err := w.rewatch(again); err != nil {
			stop(err)
			return nil, io.EOF
		}
		again = true
		o.FieldSelector = w.sel
		timeout := int64(w.watchTimeout().Seconds())
		o.TimeoutSeconds = &timeout
		wi, err := w.api.Watch(ctx, o)
		if err != nil {
			// RetryWatcher would retry every failure here every second
			// (a 410 with the same resourceVersion forever) and log it.
			// End the watch instead; the error tells run what to do.
			// io.EOF makes RetryWatcher stop quietly, ctx being done.
			if isGone(err) {
				stop(errRelist)
			} else {
				stop(apiError(w.ref, "watch", err))
			}
			return nil, io.EOF
		}
		return wi, nil
	}}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, lw)
	if err != nil {
		return fmt.Errorf("secret %s: watch: %w", w.ref, err)
	}
	defer rw.Stop()
	for ev := range rw.ResultChan() {
		if err := w.event(ev); err != nil {
			return err
		}
	}
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// event handles one event of the RetryWatcher (bookmarks never reach it).
func (w *watcher) event(ev watch.Event) error {
	if ev.Type == watch.Error {
		err := apierrors.FromObject(ev.Object)
		if isGone(err) {
			return errRelist
		}
		return apiError(w.ref, "watch", err)
	}
	obj, ok := ev.Object.(*corev1.Secret)
	if !ok {
		return fmt.Errorf("secret %s: watch: unexpected object %T", w.ref, ev.Object)
	}
	switch ev.Type {
	case watch.Added, watch.Modified:
		w.object(obj)
	case watch.Deleted:
		w.report("deleted", backend.Event{Deleted: true})
	}
	return nil
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
// 410 finds the object it already reported.
func (w *watcher) report(key string, ev backend.Event) {
	if key == w.last {
		return
	}
	w.last = key
	w.fn(ev)
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
