//go:build linux

// The control plane of these tests (sanity/cluster) runs Linux builds of
// kube-apiserver and etcd.

package kube

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/sanity/cluster"
)

// grant gives namespace/sa the verbs on the one Secret name, as a pod's
// Role typically does (resourceNames).
func (e *env) grant(t *testing.T, ns, sa, name string, verbs ...string) {
	t.Helper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{name}, Verbs: verbs}}}
	if _, err := e.api.RbacV1().Roles(ns).Create(e.ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}
	if _, err := e.api.RbacV1().RoleBindings(ns).Create(e.ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The apiserver's authorizer learns of the binding through its own
	// watch: wait until every verb is allowed (a watch started at once
	// was once refused list while get was already allowed).
	for _, verb := range verbs {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			r, err := e.api.AuthorizationV1().SubjectAccessReviews().Create(e.ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{User: "system:serviceaccount:" + ns + ":" + sa,
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: "secrets", Name: name}}},
				metav1.CreateOptions{})
			if err == nil && r.Status.Allowed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/%s may not %s secret %s 10 s after the grant (%v)", ns, sa, verb, name, err)
			}
		}
	}
}

func (e *env) token(t *testing.T, ns, sa string) string {
	t.Helper()
	tok, err := e.c.TokenFor(e.ctx, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func wantForbidden(t *testing.T, err error, secret, who string) {
	t.Helper()
	if !errors.Is(err, backend.ErrForbidden) || !strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), who) {
		t.Fatalf("got %v, want ErrForbidden naming %s and %s", err, secret, who)
	}
}

func TestForbidden(t *testing.T) {
	e := start(t)
	e.put(t, "default", "db", "password", "x")
	tok := e.token(t, "default", "nobody")
	r := backend.Ref{Namespace: "default", Name: "db", Token: tok}

	_, err := e.b.Get(e.ctx, r)
	wantForbidden(t, err, "default/db", "service account default/nobody")
	t.Logf("get: %v", err)
	if strings.Contains(err.Error(), tok) {
		t.Fatal("the error carries the token")
	}

	// Watch ends with the refusal, having reported nothing: the cache
	// decides what next (another token, or backoff).
	var evs []backend.Event
	err = e.b.Watch(e.ctx, r, func(ev backend.Event) { evs = append(evs, ev) })
	wantForbidden(t, err, "default/db", "service account default/nobody")
	if len(evs) != 0 {
		t.Fatalf("a refused watch reported %+v", evs)
	}
	t.Logf("watch: %v", err)

	// Granted later: the same token watches.
	e.grant(t, "default", "nobody", "db", "get", "list", "watch")
	ch, _ := e.watch(t, r)
	wantData(t, next(t, ch, 10*time.Second), "password", "x")
	e.put(t, "default", "db", "password", "y")
	wantData(t, next(t, ch, 5*time.Second), "password", "y")
}

// The Role goes while a watch runs: the open stream is not cut (the
// apiserver authorizes a watch when it starts), but the next watch
// request after WatchTimeout is refused and Watch ends with the refusal.
func TestWatchEndsWhenRoleDeleted(t *testing.T) {
	e := start(t)
	b, err := New(e.c.RestConfig(), Options{WatchTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, "default", "db", "password", "x")
	e.grant(t, "default", "app", "db", "get", "list", "watch")
	r := backend.Ref{Namespace: "default", Name: "db", Token: e.token(t, "default", "app")}
	done := make(chan error, 1)
	evs := make(chan backend.Event, 16)
	go func() { done <- b.Watch(e.ctx, r, func(ev backend.Event) { evs <- ev }) }()
	if ev := <-evs; ev.Secret == nil {
		t.Fatalf("first event %+v", ev)
	}
	if err := e.api.RbacV1().Roles("default").Delete(e.ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		wantForbidden(t, err, "default/db", "service account default/app")
		t.Logf("watch ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the watch went on after its Role was deleted")
	}
}

// A Role with resourceNames covers a watch with the metadata.name field
// selector: that is what makes per-Secret watches work with pod tokens.
func TestWatchWithPodToken(t *testing.T) {
	e := start(t)
	e.put(t, "default", "db", "password", "x")
	e.grant(t, "default", "app", "db", "get", "list", "watch")
	r := backend.Ref{Namespace: "default", Name: "db", Token: e.token(t, "default", "app")}
	if _, err := e.b.Get(e.ctx, r); err != nil {
		t.Fatal(err)
	}
	ch, _ := e.watch(t, r)
	wantData(t, next(t, ch, 10*time.Second), "password", "x")
	e.put(t, "default", "db", "password", "y")
	wantData(t, next(t, ch, 5*time.Second), "password", "y")
	// Another Secret stays out of reach.
	_, err := e.b.Get(e.ctx, backend.Ref{Namespace: "default", Name: "other", Token: r.Token})
	wantForbidden(t, err, "default/other", "service account default/app")
}

// get without list/watch: Watch reports the state once and hands over to
// polling (ErrNoWatch) instead of failing forever.
func TestWatchGetOnlyFallsBackToPolling(t *testing.T) {
	e := start(t)
	e.put(t, "default", "db", "password", "x")
	e.grant(t, "default", "getter", "db", "get")
	r := backend.Ref{Namespace: "default", Name: "db", Token: e.token(t, "default", "getter")}
	var evs []backend.Event
	err := e.b.Watch(e.ctx, r, func(ev backend.Event) { evs = append(evs, ev) })
	if !errors.Is(err, backend.ErrNoWatch) || len(evs) != 1 || evs[0].Secret == nil {
		t.Fatalf("Watch = %v after %d events, want ErrNoWatch after the Secret", err, len(evs))
	}
	t.Logf("%v", err)
}

// Each request after the first list and watch sends the token Rewatch
// gives: a watch resumed after its timeout moves to it without a relist,
// and a refused one ends Watch with the refusal naming who was refused.
func TestWatchRewatchToken(t *testing.T) {
	e := start(t)
	b, err := New(e.c.RestConfig(), Options{WatchTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, "default", "db", "password", "x")
	e.grant(t, "default", "first", "db", "get", "list", "watch")
	e.grant(t, "default", "second", "db", "get", "list", "watch")
	second, nobody := e.token(t, "default", "second"), e.token(t, "default", "nobody")
	var mu sync.Mutex
	next := second
	r := backend.Ref{Namespace: "default", Name: "db", Token: e.token(t, "default", "first"),
		Rewatch: func() (string, bool) { mu.Lock(); defer mu.Unlock(); return next, true }}
	done := make(chan error, 1)
	evs := make(chan backend.Event, 16)
	go func() { done <- b.Watch(e.ctx, r, func(ev backend.Event) { evs <- ev }) }()
	if ev := <-evs; ev.Secret == nil {
		t.Fatalf("first event %+v", ev)
	}
	if _, err := e.c.WaitAudit(e.ctx, cluster.AuditEvent{Verb: "watch", User: "system:serviceaccount:default:second"}, 1); err != nil {
		t.Fatal(err)
	}
	e.put(t, "default", "db", "password", "y")
	if ev := <-evs; ev.Secret == nil || string(ev.Secret.Data["password"]) != "y" {
		t.Fatalf("event after the token moved %+v", ev)
	}
	lists, _ := e.c.CountAudit(cluster.AuditEvent{Verb: "list", Resource: "secrets", Name: "db"})
	if lists != 1 {
		t.Errorf("%d lists, want 1: a new token resumes, it does not relist", lists)
	}
	mu.Lock()
	next = nobody
	mu.Unlock()
	select {
	case err := <-done:
		wantForbidden(t, err, "default/db", "service account default/nobody")
	case <-time.After(15 * time.Second):
		t.Fatal("the watch went on with a refused token")
	}
}
