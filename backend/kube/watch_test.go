//go:build linux

// The control plane of these tests (sanity/cluster) runs Linux builds of
// kube-apiserver and etcd.

package kube

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfs/secretfs/backend"
	"github.com/secretfs/secretfs/secret"
)

func TestWatchLifecycle(t *testing.T) {
	e := start(t)
	ch, _ := e.watch(t, ref("default", "s"))
	wantDeleted(t, next(t, ch, 10*time.Second)) // first event: absent

	e.put(t, "default", "s", "k", "1")
	wantData(t, next(t, ch, 5*time.Second), "k", "1")
	t0 := time.Now()
	e.put(t, "default", "s", "k", "2")
	ev := next(t, ch, 5*time.Second)
	wantData(t, ev, "k", "2")
	t.Logf("update seen after %v", ev.at.Sub(t0))

	e.del(t, "default", "s")
	wantDeleted(t, next(t, ch, 5*time.Second))
	e.put(t, "default", "s", "k", "3")
	wantData(t, next(t, ch, 5*time.Second), "k", "3")

	// An unrelated Secret of the namespace is not our business.
	e.put(t, "default", "other", "k", "x")
	quiet(t, ch, 300*time.Millisecond)
}

func TestWatchFirstEventIsCurrent(t *testing.T) {
	e := start(t)
	e.put(t, "default", "s", "k", "now")
	ch, _ := e.watch(t, ref("default", "s"))
	wantData(t, next(t, ch, 10*time.Second), "k", "now")
	quiet(t, ch, 300*time.Millisecond)
}

func TestWatchNamespacesApart(t *testing.T) {
	e := start(t)
	e.namespace(t, "a")
	e.namespace(t, "b")
	e.put(t, "a", "same", "k", "A")
	e.put(t, "b", "same", "k", "B")
	cha, _ := e.watch(t, ref("a", "same"))
	chb, _ := e.watch(t, ref("b", "same"))
	wantData(t, next(t, cha, 10*time.Second), "k", "A")
	wantData(t, next(t, chb, 10*time.Second), "k", "B")

	e.put(t, "a", "same", "k", "A2")
	wantData(t, next(t, cha, 5*time.Second), "k", "A2")
	quiet(t, chb, 300*time.Millisecond)
	e.del(t, "b", "same")
	wantDeleted(t, next(t, chb, 5*time.Second))
	quiet(t, cha, 300*time.Millisecond)

	if s, err := e.b.Get(e.ctx, ref("a", "same")); err != nil || string(s.Data["k"]) != "A2" {
		t.Fatalf("get a/same: %v", err)
	}
}

// An invalid version is reported and the watch carries on to the next one.
func TestWatchInvalid(t *testing.T) {
	e := start(t)
	name := "bootstrap-token-abcdef"
	ch, _ := e.watch(t, ref("default", name))
	wantDeleted(t, next(t, ch, 10*time.Second))

	obj := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Type:       "bootstrap.kubernetes.io/token",
		Data:       map[string][]byte{"token-id": []byte("abcdef")},
	}
	obj, err := e.api.CoreV1().Secrets("default").Create(e.ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, ch, 5*time.Second)
	var inv *secret.InvalidError
	if !errors.As(ev.Err, &inv) || !strings.Contains(ev.Err.Error(), `"token-secret"`) {
		t.Fatalf("event %+v, want an InvalidError naming token-secret", ev.Event)
	}
	obj.Data["token-secret"] = []byte("0123456789abcdef")
	if _, err := e.api.CoreV1().Secrets("default").Update(e.ctx, obj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantData(t, next(t, ch, 5*time.Second), "token-id", "abcdef")
}

// The apiserver goes away under a watch: Watch ends with an
// "unreachable" error, never a deletion or data it did not see; a Watch
// after the restart reports the current state and follows again (the
// cache runs that loop with its backoff).
func TestWatchEndsWhenAPIServerGoes(t *testing.T) {
	e := start(t)
	e.put(t, "default", "s", "k", "1")
	done := make(chan error, 1)
	evs := make(chan backend.Event, 16)
	go func() { done <- e.b.Watch(e.ctx, ref("default", "s"), func(ev backend.Event) { evs <- ev }) }()
	if ev := <-evs; ev.Secret == nil || string(ev.Secret.Data["k"]) != "1" {
		t.Fatalf("first event %+v", ev)
	}
	// With our watch open the apiserver outlives its SIGTERM grace and
	// is killed: the harsher case, which is fine here.
	if err := e.c.StopAPIServer(); err != nil {
		t.Logf("stop: %v", err)
	}
	select {
	case err := <-done:
		if err == nil || errors.Is(err, backend.ErrForbidden) || errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("Watch ended with %v, want the API unreachable", err)
		}
		t.Logf("watch ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not end with the apiserver gone")
	}
	select {
	case ev := <-evs:
		t.Fatalf("reported while going down: %+v", ev)
	default:
	}
	if err := e.c.StartAPIServer(e.ctx); err != nil {
		t.Fatal(err)
	}
	ch, _ := e.watch(t, ref("default", "s"))
	wantData(t, next(t, ch, 10*time.Second), "k", "1")
	e.put(t, "default", "s", "k", "2")
	wantData(t, next(t, ch, 5*time.Second), "k", "2")
}

// Each watch request ends after WatchTimeout; the watch resumes from its
// resourceVersion without relisting and without repeating itself.
func TestWatchResumesAfterTimeout(t *testing.T) {
	e := start(t)
	cfg := e.c.RestConfig()
	cfg.UserAgent = "secretfs-resume"
	b, err := New(cfg, Options{WatchTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	e.put(t, "default", "s", "k", "0")
	ch, _ := e.watch(t, ref("default", "s"))
	wantData(t, next(t, ch, 10*time.Second), "k", "0")
	for i := 1; i <= 3; i++ {
		time.Sleep(1500 * time.Millisecond)
		e.put(t, "default", "s", "k", val(i))
		wantData(t, next(t, ch, 5*time.Second), "k", val(i))
	}
	quiet(t, ch, 1500*time.Millisecond)
	evs, err := e.c.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	verbs := map[string]int{}
	for _, ev := range evs {
		if strings.HasPrefix(ev.UserAgent, "secretfs-resume") {
			verbs[ev.Verb]++
		}
	}
	if verbs["list"] != 1 || verbs["watch"] < 4 {
		t.Fatalf("requests %v, want 1 list and a watch per second", verbs)
	}
	t.Logf("requests: %v", verbs)
}
